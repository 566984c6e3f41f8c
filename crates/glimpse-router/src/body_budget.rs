//! The memory budget for request bodies in flight (`--max-inflight-bytes`): a request is admitted only while
//! the bodies being read and worked on fit in it, else it is answered `429 RESOURCE_EXHAUSTED` with
//! `Retry-After` before its body is read. A body's cost is its `Content-Length` (the body cap when the client
//! sends none), held until the handler has answered.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use glimpse_core::GlimpseError;
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::http::max_body_bytes;
use crate::AppState;

/// Budget units: KiB (a semaphore counts in `u32`-sized batches).
const UNIT: u64 = 1024;

#[derive(Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    units: u32,
}

impl BodyBudget {
    pub fn new(bytes: u64) -> BodyBudget {
        let units = (bytes / UNIT).clamp(1, u32::MAX as u64 >> 4) as u32;
        BodyBudget { permits: Arc::new(Semaphore::new(units as usize)), units }
    }
}

pub async fn admit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(budget) = &state.body_budget else { return next.run(request).await };
    let cap = max_body_bytes(&state.limits) as u64;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes = declared.unwrap_or(cap).min(cap);
    let units = bytes.div_ceil(UNIT).clamp(1, budget.units as u64) as u32;
    match budget.permits.clone().try_acquire_many_owned(units) {
        Ok(permit) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(_) => {
            metrics::counter!("glimpse_requests_refused_total", "model" => "", "reason" => "request bodies over --max-inflight-bytes")
                .increment(1);
            ApiError::from(GlimpseError::Overloaded(
                "The server is busy (the request bodies it is working on fill its memory budget); retry after a short wait."
                    .into(),
            ))
            .into_response()
        }
    }
}
