//! The Gemini REST surface: generateContent, streamGenerateContent, countTokens, models.

mod convert;
mod handlers;
mod response;
pub mod types;

use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

pub use convert::convert_generate_request;
pub use types::GenerateContentRequest;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{version}/models", get(handlers::list_models))
        .route("/{version}/models/{model}", get(handlers::get_model).post(handlers::model_method))
        .route("/{version}/tunedModels", get(handlers::list_tuned_models))
        .route("/{version}/tunedModels/{model}", post(handlers::model_method))
}
