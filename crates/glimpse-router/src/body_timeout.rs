//! Slow senders (`--read-timeout`): every request body is read through tower-http's `TimeoutBody`, so a
//! client that sends nothing for longer than the timeout — before its first byte or midway — has its request
//! ended, whatever the handler was doing with the body (a JSON read, an upload stream, a multipart part).
//! The answer is `408` with Google's envelope (`DEADLINE_EXCEEDED`), the connection is closed, and what the
//! request held (its place in the body budget, an upload chunk's partial blob) is released at once. The
//! timeout is between pieces, not for the whole body (as nginx's `client_body_timeout`), so a large upload on a
//! slow but steady link is never cut; the body budget bounds what steady tricklers can hold.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody};
use http_body::{Frame, SizeHint};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tower_http::timeout::{TimeoutBody, TimeoutError};

use crate::error::ApiError;
use crate::AppState;

pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(timeout) = state.body_read_timeout else { return next.run(request).await };
    let stalled = Arc::new(AtomicBool::new(false));
    let seen = stalled.clone();
    let request = request.map(|body| {
        let hint = body.size_hint();
        let timed = TimeoutBody::new(timeout, body).map_err(move |e| {
            if e.is::<TimeoutError>() {
                seen.store(true, Ordering::Relaxed);
            }
            e
        });
        Body::new(KeepsSizeHint { hint, body: Box::pin(timed) })
    });
    let response = next.run(request).await;
    if !stalled.load(Ordering::Relaxed) {
        return response;
    }
    metrics::counter!("glimpse_requests_refused_total", "model" => "", "reason" => "request body stalled past --read-timeout")
        .increment(1);
    let mut response = ApiError::body_stalled(timeout).into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// tower-http's `TimeoutBody` does not pass on its body's size hint (the `Content-Length`); this keeps it, so
/// a declared length over a limit is still refused before any byte is read (`body::read_limited`).
struct KeepsSizeHint<B> {
    hint: SizeHint,
    body: Pin<Box<B>>,
}

impl<B: HttpBody> HttpBody for KeepsSizeHint<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.body.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.hint.clone()
    }
}
