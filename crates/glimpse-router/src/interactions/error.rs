//! Interactions errors carry a lowercase string code (`{"error":{"code":"not_found","message":…}}`, as the
//! google-genai SDK's `interactions` client reads them) instead of Google's numeric code + status; the same
//! body is the payload of an `error` event in a stream.

use axum::response::{IntoResponse, Response};
use glimpse_core::Code;
use serde_json::{json, Value};

use crate::error::{ApiError, Reason};

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
        self.0.respond_with(self.to_json())
    }
}
