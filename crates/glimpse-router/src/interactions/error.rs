//! Interactions errors carry a lowercase string code (spec §5.8) instead of Google's numeric code + status;
//! the same body is the payload of an `error` event in a stream.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::{ApiError, JSON_CONTENT_TYPE};

pub struct InteractionError(pub ApiError);

impl<E: Into<ApiError>> From<E> for InteractionError {
    fn from(e: E) -> Self {
        InteractionError(e.into())
    }
}

impl InteractionError {
    pub fn code(&self) -> &'static str {
        let err = &self.0;
        match err.status {
            "INVALID_ARGUMENT" => "invalid_request",
            "FAILED_PRECONDITION" => "failed_precondition",
            "UNAUTHENTICATED" => "authentication",
            "PERMISSION_DENIED" => "permission_denied",
            "NOT_FOUND" if err.message.contains("models/") => "model_not_found",
            "NOT_FOUND" => "not_found",
            "ALREADY_EXISTS" => "already_exists",
            "RESOURCE_EXHAUSTED" => "quota_exceeded",
            "CANCELLED" => "cancelled",
            "UNIMPLEMENTED" => "unimplemented",
            "UNAVAILABLE" => "service_unavailable",
            "DEADLINE_EXCEEDED" => "deadline_exceeded",
            _ => "api_error",
        }
    }

    /// `{"error":{"code":"not_found","message":…}}`
    pub fn to_json(&self) -> Value {
        json!({"error": {"code": self.code(), "message": self.0.message}})
    }
}

impl IntoResponse for InteractionError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)], self.to_json().to_string()).into_response()
    }
}
