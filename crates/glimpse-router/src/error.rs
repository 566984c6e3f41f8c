//! The single mapping from [`GlimpseError`] to Google's error envelope
//! `{"error":{"code","message","status"}}` with `application/json; charset=UTF-8` (the JS SDK parses an error
//! body only when the content type says JSON).

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use glimpse_core::{Code, GlimpseError};
use serde_json::json;

pub const JSON_CONTENT_TYPE: &str = "application/json; charset=UTF-8";

#[derive(Debug)]
pub struct ApiError {
    pub http_status: u16,
    pub status: &'static str,
    pub message: String,
    /// `google.rpc` detail objects (e.g. `ErrorInfo`), omitted when empty.
    pub details: Vec<serde_json::Value>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError { http_status: code.http_status(), status: code.as_str(), message: message.into(), details: Vec::new() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(Code::InvalidArgument, message)
    }

    /// The body is larger than the server will read at all: HTTP 413, still with a JSON Google error.
    pub fn body_too_large(limit: usize) -> Self {
        ApiError {
            http_status: 413,
            status: Code::InvalidArgument.as_str(),
            message: format!("Request payload size exceeds the limit: {limit} bytes."),
            details: Vec::new(),
        }
    }

    /// The envelope as JSON, also used for `data: {"error":…}` events mid-stream.
    pub fn to_json(&self) -> serde_json::Value {
        let mut error = json!({"code": self.http_status, "message": self.message, "status": self.status});
        if !self.details.is_empty() {
            error["details"] = json!(self.details);
        }
        json!({ "error": error })
    }
}

impl From<GlimpseError> for ApiError {
    fn from(err: GlimpseError) -> Self {
        if err.code() == Code::Internal {
            tracing::error!(error = %err, "engine failure");
        }
        ApiError::new(err.code(), err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)], self.to_json().to_string()).into_response()
    }
}

/// Unknown routes answer like Google's front end: 404 NOT_FOUND in the error envelope.
pub async fn not_found_route(uri: Uri) -> ApiError {
    ApiError::new(Code::NotFound, format!("The requested URL {} was not found on this server.", uri.path()))
}
