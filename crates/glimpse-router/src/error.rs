//! The single mapping from [`GlimpseError`] to Google's error envelope
//! `{"error":{"code","message","status"}}` with `application/json; charset=UTF-8` (the JS SDK parses an error
//! body only when the content type says JSON).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use glimpse_core::{Code, GlimpseError};
use serde_json::json;

pub const JSON_CONTENT_TYPE: &str = "application/json; charset=UTF-8";

/// What an overloaded server asks clients to wait before retrying.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The HTTP status of each canonical code (the one place Glimpse maps codes to HTTP).
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::InvalidArgument | Code::FailedPrecondition => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists => 409,
        Code::ResourceExhausted => 429,
        Code::Cancelled => 499,
        Code::Internal => 500,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
    }
}

/// What a failure is beyond its code, for surfaces that name it (the Interactions API's `model_not_found`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    ModelNotFound,
}

#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    /// Usually `http_status(code)`; 413 and 405 keep their own status with Google's code.
    pub http_status: u16,
    pub reason: Option<Reason>,
    pub message: String,
    /// `google.rpc` detail objects (e.g. `ErrorInfo`), omitted when empty.
    pub details: Vec<serde_json::Value>,
    /// Seconds for a `Retry-After` header (an overloaded server's 429).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError { code, http_status: http_status(code), reason: None, message, details: Vec::new(), retry_after: None }
    }

    pub fn model_not_found(message: impl Into<String>) -> Self {
        ApiError { reason: Some(Reason::ModelNotFound), ..ApiError::new(Code::NotFound, message) }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(Code::InvalidArgument, message)
    }

    /// The body is larger than the server will read at all: HTTP 413, still with a JSON Google error.
    pub fn body_too_large(limit: usize) -> Self {
        ApiError {
            http_status: 413,
            ..ApiError::new(Code::InvalidArgument, format!("Request payload size exceeds the limit: {limit} bytes."))
        }
    }

    /// The client stopped sending its body for longer than `--read-timeout`: HTTP 408 (the client's
    /// slowness, not the server's), with Google's code for a deadline.
    pub fn body_stalled(timeout: std::time::Duration) -> Self {
        ApiError {
            http_status: 408,
            ..ApiError::new(
                Code::DeadlineExceeded,
                format!("The request body stopped arriving: nothing was received for {:.0?}.", timeout),
            )
        }
    }

    /// An HTTP answer carrying `body` (this error in some surface's format) with this error's status and
    /// `Retry-After`.
    pub fn respond_with(&self, body: serde_json::Value) -> Response {
        let status = StatusCode::from_u16(self.http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)], body.to_string()).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }

    /// The failure as a `google.rpc.Status` inside a resource (a batch request's `error`): the rpc code number.
    pub fn to_status_json(&self) -> serde_json::Value {
        json!({"code": self.code.number(), "message": self.message})
    }

    /// The envelope as JSON, also used for `data: {"error":…}` events mid-stream.
    pub fn to_json(&self) -> serde_json::Value {
        let mut error = json!({"code": self.http_status, "message": self.message, "status": self.code.as_str()});
        if !self.details.is_empty() {
            error["details"] = json!(self.details);
        }
        json!({ "error": error })
    }
}

impl From<GlimpseError> for ApiError {
    /// A server-side failure is logged in full and answered without its detail: a storage failure names what
    /// failed in the client's terms (its detail can hold file paths or SQL), an engine failure its first line
    /// (candle's errors carry a backtrace when `RUST_BACKTRACE` is set). Both carry the request id.
    fn from(err: GlimpseError) -> Self {
        let id = crate::request_id::current().unwrap_or_else(|| "-".into());
        match err {
            GlimpseError::Storage(detail) => {
                tracing::error!(request_id = %id, error = %detail, "storage failure");
                ApiError::new(
                    Code::Internal,
                    format!("The server's file storage failed (request id {id}). Retry later; if it persists, give the operator this id."),
                )
            }
            err if err.code() == Code::Internal => {
                let message = err.to_string();
                tracing::error!(request_id = %id, error = %message, "engine failure");
                let first_line = message.lines().next().unwrap_or_default().trim_end();
                ApiError::new(Code::Internal, format!("{first_line} (request id {id})"))
            }
            GlimpseError::Overloaded(message) => {
                ApiError { retry_after: Some(RETRY_AFTER_SECONDS), ..ApiError::new(Code::ResourceExhausted, message) }
            }
            err => ApiError::new(err.code(), err.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.respond_with(self.to_json())
    }
}

/// Unknown routes answer like Google's front end: 404 NOT_FOUND in the error envelope.
pub async fn not_found_route(uri: Uri) -> ApiError {
    ApiError::new(Code::NotFound, format!("The requested URL {} was not found on this server.", uri.path()))
}

/// The longest plain-text error body the envelope layer reads (axum's own rejections are one line).
const PLAIN_ERROR_LIMIT: usize = 4096;
/// The longest client-facing message taken from such a body.
const PLAIN_MESSAGE_CHARS: usize = 300;

/// The outermost layer: an error answer that did not come from [`ApiError`] — axum's own 405 (empty body), an
/// extractor's `text/plain` rejection (a path segment that is not UTF-8) — is rewritten into the Google envelope
/// with the same HTTP status. A server error's text is logged, never sent.
pub async fn google_envelope(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, PLAIN_ERROR_LIMIT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let message = format!("Method {method} is not allowed on {path}; this route accepts {allowed}.");
            ApiError { http_status: 405, ..ApiError::new(Code::Unimplemented, message) }
        }
        s if s.is_server_error() => {
            tracing::error!(%status, %path, body = %text, "plain-text server error");
            ApiError { http_status: s.as_u16(), ..ApiError::new(Code::Internal, "Internal error encountered.") }
        }
        s => {
            let code = match s.as_u16() {
                401 => Code::Unauthenticated,
                403 => Code::PermissionDenied,
                404 => Code::NotFound,
                409 => Code::AlreadyExists,
                429 => Code::ResourceExhausted,
                _ => Code::InvalidArgument,
            };
            let message: String = match text.is_empty() {
                true => s.canonical_reason().unwrap_or("Bad request").to_string(),
                false => text.chars().take(PLAIN_MESSAGE_CHARS).collect(),
            };
            ApiError { http_status: s.as_u16(), ..ApiError::new(code, message) }
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    Response::from_parts(parts, Body::from(error.to_json().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_failure_answers_without_its_backtrace() {
        let err = GlimpseError::Engine("shape mismatch in cat\n   0: candle_core::error::Error::bt\n".into());
        let api = ApiError::from(err);
        assert_eq!((api.http_status, api.code, api.message.as_str()), (500, Code::Internal, "shape mismatch in cat (request id -)"));
    }

    #[test]
    fn a_storage_failure_answers_without_its_detail() {
        let api = ApiError::from(GlimpseError::Storage("reading /srv/glimpse/blobs/k1/abc: No such file".into()));
        assert_eq!((api.http_status, api.code), (500, Code::Internal));
        assert!(!api.message.contains("/srv"), "{}", api.message);
        assert!(api.message.contains("file storage failed"), "{}", api.message);
    }

    #[test]
    fn a_client_error_keeps_its_whole_message() {
        let api = ApiError::from(GlimpseError::invalid("first line\nsecond line"));
        assert_eq!((api.http_status, api.message.as_str()), (400, "first line\nsecond line"));
    }
}
