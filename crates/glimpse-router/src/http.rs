//! Plumbing every surface (Gemini, File API, Interactions, OpenAI) shares: the API version in the path, model
//! names, JSON answers, the body cap, page sizes, and starting a generation from a Gemini request.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use glimpse_core::{Code, Engine, GenerateRequest, GenerationEvent, GenerationStream, RequestLimits};

use crate::auth::Caller;
use crate::error::{ApiError, JSON_CONTENT_TYPE};
use crate::gemini::{convert_generate_request, GenerateContentRequest};
use crate::AppState;

const VERSIONS: &[&str] = &["v1", "v1beta", "v1alpha"];

pub fn check_version(version: &str) -> Result<(), ApiError> {
    if VERSIONS.contains(&version) {
        Ok(())
    } else {
        Err(ApiError::new(Code::NotFound, format!("API version {version} is not served here; use v1, v1beta or v1alpha.")))
    }
}

/// The `{version}` segment of the route, checked (`v1`, `v1beta`, `v1alpha`; anything else is 404).
pub struct ApiVersion(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ApiVersion {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(format!("Invalid URL: {}", e.body_text())))?;
        let version = params.iter().find(|(name, _)| *name == "version").map(|(_, v)| v.to_string()).unwrap_or_default();
        check_version(&version)?;
        Ok(ApiVersion(version))
    }
}

pub use glimpse_core::registry::bare_model_name;

/// The engine serving `model`, noted for the request's metrics; Google's 404 wording otherwise.
pub fn resolve_model(state: &AppState, model: &str, version: &str, method: &str) -> Result<Arc<dyn Engine>, ApiError> {
    let Some(engine) = state.registry.resolve(model) else {
        return Err(ApiError::model_not_found(format!(
            "models/{} is not found for API version {version}, or is not supported for {method}. \
             Call ListModels to see the list of available models and their supported methods.",
            bare_model_name(model)
        )));
    };
    crate::observability::note_model(&engine.info().id, method);
    Ok(engine)
}

/// Convert (media, files, URLs, limits) and put a named `cachedContent` in front: a Gemini request as `engine`
/// will run it, with the cached part's token count (0 without a cache).
pub async fn prepare_request(
    state: &AppState,
    caller: &Caller,
    engine: &Arc<dyn Engine>,
    mut request: GenerateContentRequest,
) -> Result<(GenerateRequest, u32), ApiError> {
    let cached_content = request.cached_content.take().filter(|name| !name.is_empty());
    if cached_content.is_some() && request.system_instruction.is_some() {
        return Err(ApiError::invalid(
            "CachedContent can not be used with GenerateContent request setting system_instruction, tools or \
             tool_config.\n\nProposed fix: move those values to CachedContent from GenerateContent request.",
        ));
    }
    let mut converted = convert_generate_request(request, &state.limits, &state.remote_media(caller)).await?;
    converted.caller = Some(caller.project.clone());
    let cached_tokens = match cached_content {
        Some(name) => crate::caches::apply_cached_content(state, caller, engine, &name, &mut converted).await?,
        None => 0,
    };
    Ok((converted, cached_tokens))
}

/// Resolve → prepare → generate: how every surface starts an answer.
pub async fn start_generation(
    state: &AppState,
    caller: &Caller,
    model: &str,
    version: &str,
    method: &str,
    request: GenerateContentRequest,
) -> Result<(Arc<dyn Engine>, GenerationStream), ApiError> {
    let engine = resolve_model(state, model, version, method)?;
    let (request, cached_tokens) = prepare_request(state, caller, &engine, request).await?;
    let stream = generate_prepared(&engine, request, cached_tokens).await?;
    Ok((engine, stream))
}

/// Runs a prepared request: stop sequences applied, the cached part's tokens noted in the usage.
pub async fn generate_prepared(
    engine: &Arc<dyn Engine>,
    request: GenerateRequest,
    cached_tokens: u32,
) -> Result<GenerationStream, ApiError> {
    let stops = request.sampling.stop_sequences.clone();
    let stream = engine.generate(request).await?;
    let stream = glimpse_core::stop_sequences::until_stop_sequence(stream, &stops);
    if cached_tokens == 0 {
        return Ok(stream);
    }
    Ok(Box::pin(stream.map(move |event| match event {
        Ok(GenerationEvent::Done { finish, mut usage }) => {
            usage.cached_prompt = cached_tokens.min(usage.prompt.total());
            Ok(GenerationEvent::Done { finish, usage })
        }
        other => other,
    })))
}

pub fn json_response(value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => ([(header::CONTENT_TYPE, JSON_CONTENT_TYPE)], body).into_response(),
        Err(e) => ApiError::new(Code::Internal, format!("response serialisation failed: {e}")).into_response(),
    }
}

/// The raw HTTP body cap: base64 inflates inline images by 4/3, JSON and text need some room on top.
pub fn max_body_bytes(limits: &RequestLimits) -> usize {
    limits.max_inline_bytes / 3 * 4 + 4 * 1024 * 1024
}

/// `pageSize` (or `page_size`) of a list call: a number (the SDKs may send `10.0`), absent when not given.
pub fn page_size(query: &HashMap<String, String>) -> Result<Option<u32>, ApiError> {
    match query.get("pageSize").or_else(|| query.get("page_size")).map(|s| s.trim()) {
        Some(s) => match s.parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => Ok(Some(n.min(u32::MAX as f64) as u32)),
            _ => Err(ApiError::invalid(format!("Invalid pageSize: {s}"))),
        },
        None => Ok(None),
    }
}

/// `pageToken` (or `page_token`), absent when empty.
pub fn page_token(query: &HashMap<String, String>) -> Option<&str> {
    query.get("pageToken").or_else(|| query.get("page_token")).map(String::as_str).filter(|t| !t.is_empty())
}
