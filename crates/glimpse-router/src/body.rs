//! Reading a JSON request body under the size cap, with Google-format errors for every failure.

use axum::body::{Body, HttpBody};
use glimpse_core::GlimpseError;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::json_keys;

/// Reads at most `limit` bytes; a larger body is refused with 413 before it is buffered. A body that ends
/// early (the client went away, or stopped sending: see `body_timeout`) is `CANCELLED`.
pub async fn read_limited(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    // A declared length over the limit is refused at once, not after the limit's worth has been sent.
    if body.size_hint().lower() > limit as u64 {
        return Err(ApiError::body_too_large(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if e.into_inner().is::<http_body_util::LengthLimitError>() {
            ApiError::body_too_large(limit)
        } else {
            GlimpseError::BodyInterrupted("The request body ended before all of it arrived.".into()).into()
        }
    })
}

/// Parses a Gemini (proto-JSON) body: keys normalised to camelCase outside free-form maps, then typed.
pub fn parse_gemini<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    gemini_from_value(parse_json(bytes)?)
}

/// Any JSON request body (Gemini, Interactions, OpenAI), with the Google error for empty or broken JSON.
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::invalid("Request contains an invalid argument: the request body is empty."));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("Invalid JSON payload received. {e}")))
}

/// Bodies from this size up are parsed on the parsing pool ([`parse_pool`]). Parsing a request with a megapixel photo in
/// it (JSON, then the keys, then base64) takes milliseconds; a burst of them on the async workers made light
/// requests (`GET models`, health checks) wait hundreds of milliseconds behind them. Below it, the hop to the
/// pool costs more than it frees.
pub const PARSE_OFF_RUNTIME_FROM: usize = 64 * 1024;

/// Large parses run on a pool of their own, one thread per core, at compute priority (glimpse_core::priority): on
/// tokio's blocking pool, 200 requests arriving at once were parsed on 200 threads at the same moment, every
/// parse's copies held at once (3 GB in scripts/bench/load.py, against 1.6 GB for the same parses on the async
/// workers).
fn parse_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .thread_name(|i| format!("glimpse-parse-{i}"))
            .start_handler(|_| glimpse_core::priority::lower_current_thread())
            .build()
            .expect("the parsing threads start")
    })
}

/// Runs `work` on the parsing pool when `size` is at least [`PARSE_OFF_RUNTIME_FROM`], else in place.
pub async fn off_runtime_if_large<T: Send + 'static>(size: usize, work: impl FnOnce() -> T + Send + 'static) -> Result<T, GlimpseError> {
    if size < PARSE_OFF_RUNTIME_FROM {
        return Ok(work());
    }
    let (done, result) = tokio::sync::oneshot::channel();
    // A panic is caught here: rayon would abort the process on it.
    parse_pool().spawn(move || {
        let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
    });
    match result.await {
        Ok(Ok(value)) => Ok(value),
        _ => Err(GlimpseError::Engine("parsing the request failed unexpectedly".into())),
    }
}

/// [`parse_gemini`] of a whole body, off the async workers when it is large.
pub async fn parse_gemini_body<T: DeserializeOwned + Send + 'static>(bytes: axum::body::Bytes) -> Result<T, ApiError> {
    off_runtime_if_large(bytes.len(), move || parse_gemini(&bytes)).await?
}

/// [`parse_json`] of a whole body, off the async workers when it is large.
pub async fn parse_json_body(bytes: axum::body::Bytes) -> Result<serde_json::Value, ApiError> {
    off_runtime_if_large(bytes.len(), move || parse_json(&bytes)).await?
}

/// A JSON object body read under the size cap (the Interactions and OpenAI requests).
pub async fn read_json_object(body: Body, limit: usize) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    match parse_json_body(read_limited(body, limit).await?).await? {
        serde_json::Value::Object(object) => Ok(object),
        _ => Err(ApiError::invalid("The request body must be a JSON object.")),
    }
}

/// A Gemini request held as JSON, typed (keys normalised first).
pub(crate) fn gemini_from_value<T: DeserializeOwned>(mut value: serde_json::Value) -> Result<T, ApiError> {
    json_keys::normalize_gemini(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        ApiError::invalid(format!("Invalid JSON payload received. Invalid value at '{}': {}", e.path(), e.inner()))
    })
}
