//! A request id for every request, in the `x-request-id` response header, in the message of a server-side
//! failure and in the request's tracing span (so every log line the request causes carries it), so that an
//! operator can find in the log what a client saw (the log has the detail; the client gets the id). A client's
//! own `x-request-id` is kept when it is a short token.

use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{MakeSpan, TraceLayer};

tokio::task_local! {
    static REQUEST_ID: String;
}

const HEADER: &str = "x-request-id";

fn acceptable(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Middleware: runs the request with its id in scope and returns the id in the response.
pub async fn assign(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable(id))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let mut response = REQUEST_ID.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// A `request` span per request (method, path and request id; the query string is left out: it may hold a
/// key), with tower-http's response and failure events at DEBUG (`RUST_LOG=tower_http=debug` shows them).
pub fn trace_layer() -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, impl MakeSpan<Body> + Clone> {
    TraceLayer::new_for_http().make_span_with(|request: &Request| {
        let id = current().unwrap_or_default();
        tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
    })
}

/// `work` with the current request's id in scope, for tasks a request spawns (a stream's producer), whose
/// errors must name the same id.
pub fn carried<F: std::future::Future>(work: F) -> impl std::future::Future<Output = F::Output> {
    REQUEST_ID.scope(current().unwrap_or_default(), work)
}

/// The id of the request this task is serving, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok().filter(|id| !id.is_empty())
}
