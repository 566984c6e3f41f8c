//! Interactions errors carry a lowercase string code (`{"error":{"code":"not_found","message":…}}`, as the
//! google-genai SDK's `interactions` client reads them) instead of Google's numeric code + status; the same
//! body is the payload of an `error` event in a stream.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use glimpse_core::Code;

use crate::error::{ApiError, Reason, JSON_CONTENT_TYPE};

pub struct InteractionError(pub ApiError);

impl<E: Into<ApiError>> From<E> for InteractionError {
    fn from(e: E) -> Self {
        InteractionError(e.into())
    }
}

impl InteractionError {
    pub fn code(&self) -> &'static str {
        let err = &self.0;
        match err.code {
            _ if err.reason == Some(Reason::ModelNotFound) => "model_not_found",
            Code::InvalidArgument => "invalid_request",
            Code::FailedPrecondition => "failed_precondition",
            Code::Unauthenticated => "authentication",
            Code::PermissionDenied => "permission_denied",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::ResourceExhausted => "quota_exceeded",
            Code::Cancelled => "cancelled",
            Code::Unimplemented => "unimplemented",
            Code::Unavailable => "service_unavailable",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::Internal => "api_error",
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
        let mut response = (status, [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)], self.to_json().to_string()).into_response();
        if let Some(seconds) = self.0.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
