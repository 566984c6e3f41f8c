//! What an operator watches: `GET /metrics` (Prometheus text, from the recorder the server installed), `GET
//! /healthz` (the process answers) and `GET /readyz` (models loaded, database and blob store reachable, not
//! draining; 503 otherwise). None of them needs an API key. Every API request is counted by route, method,
//! status and model, and timed until its response starts (a stream's first bytes).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use glimpse_core::Code;

use crate::error::ApiError;
use crate::http::json_response;
use crate::AppState;

/// Renders the metrics for `/metrics` (the Prometheus recorder's handle, installed by the binary).
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Set when the process starts draining (SIGTERM): readiness fails so load balancers stop sending requests.
#[derive(Default)]
pub struct Draining(AtomicBool);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a request turned out to call, known only once its handler has parsed the path.
#[derive(Default)]
struct Call {
    /// The model it resolved to (the `model` label).
    model: Option<String>,
    /// The method after `:` in `models/{model}:method` (noted only once it is known to exist: labels must
    /// stay few).
    method: Option<String>,
}

tokio::task_local! {
    static CALL: RefCell<Call>;
}

/// Records which model, and which of its methods, the current request uses (called where model names are
/// resolved).
pub fn note_model(id: &str, method: &str) {
    let call = Call { model: Some(id.to_string()), method: Some(method.to_string()) };
    let _ = CALL.try_with(|current| *current.borrow_mut() = call);
}

/// Middleware on the API routes: counts and times each request.
pub async fn record(request: Request, next: Next) -> Response {
    let mut route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    let method = request.method().to_string();
    let start = Instant::now();
    let (response, call) = CALL
        .scope(RefCell::new(Call::default()), async {
            let response = next.run(request).await;
            (response, CALL.with(|c| c.take()))
        })
        .await;
    let status = response.status().as_u16().to_string();
    // `/{version}/models/{model}` carries the method after a colon: `…/{model}:generateContent`.
    if let Some(rpc) = call.method.filter(|_| route.ends_with("{model}")) {
        route = format!("{route}:{rpc}");
    }
    let model = call.model.unwrap_or_default();
    metrics::counter!("glimpse_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status, "model" => model)
        .increment(1);
    metrics::histogram!("glimpse_http_request_duration_seconds", "route" => route, "method" => method)
        .record(start.elapsed().as_secs_f64());
    response
}

pub fn describe() {
    metrics::describe_counter!("glimpse_http_requests_total", "API requests by route, method, status and model.");
    metrics::describe_histogram!(
        "glimpse_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Until the response starts (for a stream: its first bytes)."
    );
}

const READINESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// `/metrics`, `/healthz`, `/readyz` (at the root, whatever `--path-prefix`).
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics_text)).route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(render) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], render()).into_response(),
        None => ApiError::new(Code::NotFound, "Metrics are served on the --metrics-addr listener.").into_response(),
    }
}

async fn healthz() -> Response {
    json_response(&serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let unready = |why: &str| ApiError::new(Code::Unavailable, format!("Not ready: {why}.")).into_response();
    if state.draining.is_draining() {
        return unready("draining before shutdown");
    }
    if state.registry.engines().is_empty() {
        return unready("no model is loaded");
    }
    for engine in state.registry.engines() {
        match tokio::time::timeout(READINESS_TIMEOUT, engine.ready()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return unready(&format!("the engine serving model {} does not answer", engine.info().id)),
        }
    }
    if let Some(files) = &state.files {
        // A probe must answer quickly: storage slower than this counts as unreachable.
        match tokio::time::timeout(READINESS_TIMEOUT, files.check()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: storage check failed");
                return unready("the database or the blob store cannot be reached");
            }
            Err(_) => return unready("the database or the blob store did not answer in time"),
        }
    }
    json_response(&serde_json::json!({"status": "ready", "models": state.registry.engines().len()}))
}
