//! The playground page at `/`: one static HTML file (no build step, nothing fetched from elsewhere) that talks to
//! this server's public Gemini API like any client, with the key the user enters (kept in the browser's storage).

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const PAGE: &str = include_str!("index.html");

/// The tab's icon, as SVG (browsers take it at /favicon.ico too): a magnifier over a box.
const ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect x="3" y="3" width="18" height="18" rx="2" fill="none" stroke="#1a73e8" stroke-width="3"/><circle cx="19" cy="19" r="6" fill="#fff" stroke="#1d1d1f" stroke-width="3"/><path d="M23.5 23.5 29 29" stroke="#1d1d1f" stroke-width="3" stroke-linecap="round"/></svg>"##;

/// Outside the API's key check: the page itself is public, its API calls carry the key.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(page)).route("/playground", get(page)).route("/favicon.ico", get(icon))
}

async fn icon() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "max-age=86400")], ICON)
}

async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], PAGE)
}
