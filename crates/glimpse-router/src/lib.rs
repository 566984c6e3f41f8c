//! Glimpse's HTTP front door on `v1`, `v1beta` and `v1alpha`: the Gemini API (models, File API), the
//! Interactions API and the OpenAI-compatible layer, plus the operator's endpoints.
//!
//! Handlers parse leniently (snake_case or camelCase keys, numbers as strings, as the SDKs send them), convert
//! to `glimpse_core` types, call the engine, and map every failure once through [`error::ApiError`] to
//! Google's error envelope.

pub mod auth;
pub mod batches;
mod body;
pub mod body_budget;
pub mod body_timeout;
pub mod caches;
mod error;
mod files;
mod gemini;
mod http;
mod interactions;
mod json_keys;
pub mod lenient;
pub mod observability;
mod openai;
mod playground;
mod remote_media;
mod request_id;
mod sse;

use std::sync::Arc;

use axum::{middleware, Router};
use glimpse_core::{ModelRegistry, RequestLimits};
use glimpse_fetch::Fetcher;
use glimpse_files::FileStore;

use crate::auth::{Auth, Caller};
use crate::remote_media::RemoteMedia;

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<ModelRegistry>,
    pub limits: Arc<RequestLimits>,
    pub auth: Arc<Auth>,
    /// The File API's storage; `None` disables the File API.
    pub files: Option<Arc<FileStore>>,
    /// Fetching of http(s) image URLs; `None` refuses them.
    pub fetcher: Option<Arc<Fetcher>>,
    /// How clients reach this server (e.g. `https://glimpse.example.com` behind a proxy); upload URLs and file
    /// URIs are built from it. `None`: from each request's `Host`.
    pub public_url: Option<String>,
    /// The path prefix the API is served under (`""` or e.g. `/gemini`).
    pub path_prefix: String,
    /// `/metrics` on this listener; `None` when served elsewhere (`--metrics-addr`) or not at all.
    pub metrics: Option<observability::RenderMetrics>,
    pub draining: Arc<observability::Draining>,
    /// `--max-inflight-bytes`; `None`: request bodies are not budgeted.
    pub body_budget: Option<body_budget::BodyBudget>,
    /// `--read-timeout`: the longest a request body may send nothing; `None`: no limit.
    pub body_read_timeout: Option<std::time::Duration>,
    /// Caches prepared on this replica (`cachedContents`), kept within a byte budget.
    pub prepared_caches: Arc<caches::PreparedCaches>,
    /// The fewest tokens a cache may hold (`--cache-min-tokens`; Gemini's is 1,024 on Flash models).
    pub cache_min_tokens: u32,
    /// Wakes this replica's batch runner when a job is made here.
    pub batch_wakeup: Arc<tokio::sync::Notify>,
    /// Generations batch jobs may run at once per model (`--max-batch-concurrent`; admission enforces it).
    pub batch_share: usize,
}

impl AppState {
    pub fn remote_media<'a>(&'a self, caller: &'a Caller) -> RemoteMedia<'a> {
        RemoteMedia { files: self.files.as_deref(), fetcher: self.fetcher.as_deref(), project: &caller.project }
    }
}

/// The whole API, optionally under a path prefix (e.g. `/gemini` behind a gateway).
pub fn app(state: AppState) -> Router {
    // Authentication is decided by the matched route: every API route needs a key, except the upload route's
    // continuations, which its own layer admits by upload id.
    let api = gemini::routes()
        .merge(files::routes())
        .merge(caches::routes())
        .merge(batches::routes())
        .merge(interactions::routes())
        .merge(openai::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), body_budget::admit))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_caller))
        .merge(
            files::upload_routes()
                .route_layer(middleware::from_fn_with_state(state.clone(), body_budget::admit))
                .route_layer(middleware::from_fn_with_state(state.clone(), auth::upload_caller)),
        )
        .route_layer(middleware::from_fn(observability::record))
        .merge(playground::routes())
        .with_state(state.clone());
    let prefix = state.path_prefix.trim_end_matches('/');
    let app = if prefix.is_empty() { api } else { Router::new().nest(prefix, api) };
    app.merge(observability::routes().with_state(state.clone()))
        .fallback(error::not_found_route)
        .layer(middleware::from_fn_with_state(state.clone(), body_timeout::enforce))
        .layer(middleware::from_fn(error::google_envelope))
        .layer(request_id::trace_layer())
        .layer(middleware::from_fn(request_id::assign))
}
