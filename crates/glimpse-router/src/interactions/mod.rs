//! The Interactions API (`POST /{v}/interactions`, spec §5), unary creation.
//!
//! A request is translated into the equivalent generateContent request ([`translate`]) and goes through the
//! same conversion, limits, File API / URL resolution and engine path; the answer is the `steps` schema.
//! Not built yet (answered with a clear 400): `stream`, `previous_interaction_id`, `background`; nothing is
//! stored, so GET/DELETE of an interaction are 404.

mod translate;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use glimpse_core::engine::collect;
use glimpse_core::{FinishReason, PromptTokens, Usage};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::body::read_limited;
use crate::error::{ApiError, JSON_CONTENT_TYPE};
use crate::gemini::{check_version, convert_generate_request, json_response, resolve_engine};
use crate::AppState;

pub use translate::translate;

pub fn routes() -> Router<AppState> {
    Router::new().route("/{version}/interactions", post(create))
}

/// Interactions errors carry a lowercase string code (spec §5.8) instead of Google's numeric code + status.
struct InteractionError(ApiError);

impl<E: Into<ApiError>> From<E> for InteractionError {
    fn from(e: E) -> Self {
        InteractionError(e.into())
    }
}

impl IntoResponse for InteractionError {
    fn into_response(self) -> Response {
        let err = self.0;
        let code = match err.status {
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
        };
        let status = StatusCode::from_u16(err.http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"error": {"code": code, "message": err.message}}).to_string();
        (status, [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)], body).into_response()
    }
}

async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(version): Path<String>,
    body: Body,
) -> Result<Response, InteractionError> {
    check_version(&version)?;
    let bytes = read_limited(body, state.limits.max_body_bytes()).await?;
    let request: Value =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("Invalid JSON payload received. {e}")))?;
    let translated = translate(&request)?;
    let engine = resolve_engine(&state, &translated.model, &version, "interactions")?;
    let remote = state.remote_media(&caller);
    let generate = convert_generate_request(translated.request, &state.limits, &remote).await?;
    let (text, finish, usage) = collect(engine.generate(generate).await?).await?;
    let now = glimpse_files::record::rfc3339_seconds(glimpse_files::record::now_ms());
    Ok(json_response(&json!({
        "id": format!("v1_{}", uuid::Uuid::new_v4().simple()),
        "status": if finish == FinishReason::MaxTokens { "incomplete" } else { "completed" },
        "model": translated.model,
        "created": now,
        "updated": now,
        "steps": [{"type": "model_output", "content": [{"type": "text", "text": text}]}],
        "usage": usage_json(usage),
    })))
}


/// The Interactions usage object; the same counts as usageMetadata and countTokens.
pub fn usage_json(usage: Usage) -> Value {
    let PromptTokens { text, image } = usage.prompt;
    let mut by_modality = Vec::new();
    if text > 0 {
        by_modality.push(json!({"modality": "text", "tokens": text}));
    }
    if image > 0 {
        by_modality.push(json!({"modality": "image", "tokens": image}));
    }
    json!({
        "total_input_tokens": usage.prompt.total(),
        "total_output_tokens": usage.output,
        "total_thought_tokens": 0,
        "total_tokens": usage.prompt.total() + usage.output,
        "input_tokens_by_modality": by_modality,
        "output_tokens_by_modality": [{"modality": "text", "tokens": usage.output}],
    })
}
