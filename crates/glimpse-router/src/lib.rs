//! Glimpse's HTTP front door: the Gemini wire format on `v1`, `v1beta` and `v1alpha`.
//!
//! Handlers parse leniently (spec §1.4), convert to `glimpse_core` types, call the engine, and map every
//! failure once through [`error::ApiError`] to Google's error envelope.

pub mod body;
pub mod error;
pub mod gemini;
pub mod json_keys;
pub mod lenient;

use std::sync::Arc;

use axum::Router;
use glimpse_core::{ModelRegistry, RequestLimits};

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<ModelRegistry>,
    pub limits: Arc<RequestLimits>,
}

/// The whole API, optionally under a path prefix (e.g. `/gemini` behind a gateway).
pub fn app(state: AppState, path_prefix: &str) -> Router {
    let api = gemini::routes().with_state(state);
    let prefix = path_prefix.trim_end_matches('/');
    let app = if prefix.is_empty() { api } else { Router::new().nest(prefix, api) };
    app.fallback(error::not_found_route)
}
