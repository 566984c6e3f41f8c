//! The playground page at `/`: one static HTML file (no build step, nothing fetched from elsewhere) that talks to
//! this server's public Gemini API like any client, with the key the user enters (kept in the browser's storage).

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const PAGE: &str = include_str!("index.html");

/// Outside the API's key check: the page itself is public, its API calls carry the key.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(page)).route("/playground", get(page))
}

async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], PAGE)
}
