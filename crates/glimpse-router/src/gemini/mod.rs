//! The Gemini REST surface: generateContent, streamGenerateContent, countTokens, models.

mod convert;
mod handlers;
pub mod response;
pub mod types;

use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

pub use convert::{convert_contents, convert_generate_request, system_text};
pub use types::GenerateContentRequest;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{version}/models", get(handlers::list_models))
        .route("/{version}/models/{model}", get(handlers::get_model).post(handlers::model_method))
        .route("/{version}/tunedModels", get(handlers::list_tuned_models))
        .route("/{version}/tunedModels/{model}", post(handlers::model_method))
}
