//! Runs batch jobs in the background: each replica claims one runnable job at a time (a lease in the database,
//! renewed every second), reads a file job's input, runs the requests without a result through the model at
//! batch priority, records each result once, and finishes the job (writing a results file for a file job).
//!
//! A job whose runner died is taken over once its lease is stale and goes on from its first request without a
//! result. Cancelling or deleting a job ends its lease: the runner notices within a second and drops the
//! requests in flight (which stops their generation).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use glimpse_core::{collect, Code, Engine, GlimpseError, Priority};
use glimpse_files::batches::{BatchRecord, BatchState, BATCH_LEASE_MS};
use glimpse_files::record::now_ms;
use glimpse_files::store::JSONL_MIME;
use glimpse_files::FileStore;

use super::resource::results_line;
use crate::auth::Caller;
use crate::body::parse_gemini;
use crate::error::ApiError;
use crate::gemini::response::GenerateContentResponse;
use crate::gemini::GenerateContentRequest;
use crate::http::{generate_prepared, max_body_bytes, prepare_request};
use crate::AppState;

/// How often an idle runner looks for work (a job made on this replica wakes it at once).
const POLL: Duration = Duration::from_millis(500);
/// How often a runner renews its lease and so notices a cancelled or deleted job.
const RENEW: Duration = Duration::from_secs(1);
/// Requests read from the database at a time.
const PAGE: usize = 64;

/// Starts this replica's batch runner; it stops claiming jobs once the server drains.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(store) = state.files.clone() else { return };
        while !state.draining.is_draining() {
            let now = now_ms();
            match store.batch_db().claim_batch(now, now - BATCH_LEASE_MS).await {
                Ok(Some(job)) => {
                    let lease = Lease { store: store.clone(), id: job.id.clone(), stamp: AtomicI64::new(now) };
                    tokio::select! {
                        outcome = run(&state, &store, &job) => {
                            if let Err(e) = outcome {
                                tracing::warn!(batch = %job.id, error = %e, "batch job interrupted; it will be taken up again");
                            }
                        }
                        () = lease.hold() => tracing::info!(batch = %job.id, "batch job cancelled or deleted; its requests in flight were stopped"),
                    }
                    lease.release().await;
                }
                Ok(None) => {
                    let _ = tokio::time::timeout(POLL, state.batch_wakeup.notified()).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "looking for batch jobs failed");
                    tokio::time::sleep(POLL * 4).await;
                }
            }
        }
    })
}

/// A runner's claim on a job.
struct Lease {
    store: Arc<FileStore>,
    id: String,
    stamp: AtomicI64,
}

impl Lease {
    /// Renews the lease every [`RENEW`]; returns when it is lost (the job was cancelled, deleted or taken over).
    async fn hold(&self) {
        loop {
            tokio::time::sleep(RENEW).await;
            let (stamp, now) = (self.stamp.load(Ordering::SeqCst), now_ms());
            match self.store.batch_db().renew_batch_lease(&self.id, stamp, now).await {
                Ok(true) => self.stamp.store(now, Ordering::SeqCst),
                Ok(false) => return,
                // The database is unreachable: keep working; the lease is tried again next time.
                Err(e) => tracing::warn!(batch = %self.id, error = %e, "renewing a batch lease failed"),
            }
        }
    }

    /// Gives the job up at once (another replica may take an unfinished job without waiting for staleness).
    async fn release(&self) {
        let stamp = self.stamp.load(Ordering::SeqCst);
        let _ = self.store.batch_db().renew_batch_lease(&self.id, stamp, 0).await;
    }
}

/// Runs `job` to its end (or until the process drains): Err when it was interrupted and should be resumed.
async fn run(state: &AppState, store: &FileStore, job: &BatchRecord) -> Result<(), GlimpseError> {
    let db = store.batch_db();
    let caller = Caller { project: job.project.clone() };
    if job.state == BatchState::Pending {
        let mut count = job.request_count;
        if let Some(file) = &job.input_file {
            // Read the input afresh: a runner that died while reading it left part of it.
            db.clear_batch_requests(&job.id).await?;
            match store.stream_active(&job.project, file).await {
                Ok((_, body)) => count = super::input::read_file(db, &job.id, body, max_body_bytes(&state.limits)).await?,
                Err(e) => {
                    let message = format!("The input file files/{file} cannot be read: {}", ApiError::from(e).message);
                    db.set_batch_state(&job.id, BatchState::Failed, None, None, Some(&message)).await?;
                    return Ok(());
                }
            }
        }
        db.set_batch_state(&job.id, BatchState::Running, Some(count), None, None).await?;
        tracing::info!(batch = %job.id, requests = count, "batch job running");
    }
    let Some(engine) = state.registry.resolve(&job.model) else {
        let message = format!("{} is no longer served here.", job.model);
        db.set_batch_state(&job.id, BatchState::Failed, None, None, Some(&message)).await?;
        return Ok(());
    };
    // The batch share of the model's slots, plus one request read and checked ahead (admission enforces the
    // share; more in flight would only hold their images while they wait).
    let concurrency = state.batch_share.clamp(1, engine.info().concurrency.max(1)) + 1;
    loop {
        if state.draining.is_draining() {
            return Err(GlimpseError::Unavailable("the server is draining".into()));
        }
        let pending = db.pending_batch_requests(&job.id, PAGE).await?;
        if pending.is_empty() {
            break;
        }
        let mut retry_later = false;
        let mut results = futures::stream::iter(pending)
            .map(|(index, request)| {
                let (engine, caller) = (&engine, &caller);
                async move { (index, run_one(state, caller, engine, &request).await) }
            })
            .buffer_unordered(concurrency);
        while let Some((index, outcome)) = results.next().await {
            let recorded = match &outcome {
                Ok(response) => db.record_batch_result(&job.id, index, Ok(response)).await,
                // The engine is restarting or unreachable: the request stays pending and runs again.
                Err(e) if e.code == Code::Unavailable => {
                    retry_later = true;
                    continue;
                }
                Err(e) => db.record_batch_result(&job.id, index, Err(&e.to_status_json().to_string())).await,
            };
            recorded?;
        }
        if retry_later {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let responses_file = match &job.input_file {
        Some(_) => Some(write_results(store, job).await?),
        None => None,
    };
    db.set_batch_state(&job.id, BatchState::Succeeded, None, responses_file.as_deref(), None).await?;
    tracing::info!(batch = %job.id, "batch job succeeded");
    Ok(())
}

/// One request of a job: its `GenerateContentResponse` JSON, or why it failed.
async fn run_one(state: &AppState, caller: &Caller, engine: &Arc<dyn Engine>, request: &str) -> Result<String, ApiError> {
    let request: GenerateContentRequest = parse_gemini(request.as_bytes())?;
    let (mut prepared, cached_tokens) = prepare_request(state, caller, engine, request).await?;
    prepared.priority = Priority::Batch;
    let stream = generate_prepared(engine, prepared, cached_tokens).await?;
    let (text, finish, usage) = collect(stream).await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let response = GenerateContentResponse::text(text, Some(finish), Some(usage), &engine.info().id, &id);
    serde_json::to_string(&response).map_err(|e| ApiError::new(Code::Internal, format!("serialising a response: {e}")))
}

/// Writes a file job's results as a JSONL file of the job's project (`{"key", "response" | "error"}` per
/// request, in input order), read from the database page by page; its id.
async fn write_results(store: &FileStore, job: &BatchRecord) -> Result<String, GlimpseError> {
    const RESULTS_PAGE: usize = 500;
    let db = store.batch_db();
    let pages = futures::stream::try_unfold(Some(0u64), move |from| async move {
        let Some(from) = from else { return Ok(None) };
        let page = db.batch_results(&job.id, from, RESULTS_PAGE).await?;
        let next = page.last().map(|last| last.index + 1).filter(|_| page.len() == RESULTS_PAGE);
        let text: String = page.iter().filter_map(results_line).collect();
        Ok::<_, GlimpseError>(if page.is_empty() { None } else { Some((Bytes::from(text), next)) })
    });
    let name = format!("{} results", job.display_name.as_deref().unwrap_or(&format!("batches/{}", job.id)));
    let file = store.publish_generated(&job.project, Some(name), JSONL_MIME, Box::pin(pages)).await?;
    Ok(file.id)
}
