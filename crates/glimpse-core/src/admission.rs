//! Admission control per model: at most `concurrency` generations work at once (each holds decoded pixels,
//! tensors and an engine slot); up to `max_queue` more wait, each at most `max_wait`; anything beyond is
//! refused at once with [`GlimpseError::Overloaded`] (429 with `Retry-After`), before any pixel is decoded.
//! Waiting requests are served in arrival order (tokio's semaphore is fair). A generation keeps its slot
//! until its stream ends or is dropped (a client gone frees it). A generation still running `request_timeout`
//! after it arrived is stopped and ends with [`GlimpseError::DeadlineExceeded`] (504, or an error event in a
//! stream that has started).
//!
//! Requests of batch jobs ([`Priority::Batch`]) go behind interactive ones: one takes a slot only while no
//! interactive request waits, batch requests hold at most `max_batch_concurrent` slots together (default: one),
//! and they are never refused: the job waits for room instead.
//!
//! With `max_concurrent_per_key`, each caller (API key) has its own line in front of the model's: a key holds
//! at most that many slots and places in the model's queue, so one key sending hundreds of requests waits
//! behind itself, and another key's request is served after at most that many of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::engine::{Engine, GenerationStream, ModelInfo, PromptTokens};
use crate::error::GlimpseError;
use crate::prompt::{GenerateRequest, Priority, Prompt};

/// The server's admission settings (the same for every model; the slot count is each model's own).
#[derive(Debug, Clone, Copy)]
pub struct AdmissionConfig {
    /// Generations a model works on at once; `None`: what the engine says it can batch.
    pub max_concurrent: Option<usize>,
    /// Requests that may wait for a slot, per model.
    pub max_queue: usize,
    /// How long a request may wait for a slot.
    pub max_wait: Duration,
    /// How long a generation may take from its arrival (waiting included) to its last token.
    pub request_timeout: Duration,
    /// Slots (running or waiting in the model's queue) one caller may hold per model; `None`: no per-key line.
    pub max_concurrent_per_key: Option<usize>,
    /// Slots batch requests may hold together per model; `None`: one. On a CPU, a second sequence in the engine's
    /// batch slows every other (measured: `shapes` answered an interactive request in 41 ms alone and 436 ms beside
    /// eight batch requests, for no gain in throughput); an operator with a GPU raises it.
    pub max_batch_concurrent: Option<usize>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_concurrent: None,
            max_queue: 256,
            max_wait: Duration::from_secs(60),
            request_timeout: Duration::from_secs(600),
            max_concurrent_per_key: None,
            max_batch_concurrent: None,
        }
    }
}

pub struct Admitted {
    inner: Arc<dyn Engine>,
    slots: Arc<Semaphore>,
    /// The batch share of `slots`: a batch request holds one of these as well as its slot.
    batch_slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    config: AdmissionConfig,
    /// Each caller's line (with `max_concurrent_per_key`); a line nobody holds or waits in is dropped.
    lines: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Admitted {
    pub fn wrap(inner: Arc<dyn Engine>, config: AdmissionConfig) -> Arc<dyn Engine> {
        let slots = config.max_concurrent.unwrap_or(inner.info().concurrency).max(1);
        let batch_slots = config.max_batch_concurrent.unwrap_or(1).clamp(1, slots);
        let (slots, batch_slots) = (Arc::new(Semaphore::new(slots)), Arc::new(Semaphore::new(batch_slots)));
        Arc::new(Admitted { inner, slots, batch_slots, waiting: AtomicUsize::new(0), config, lines: Mutex::default() })
    }

    fn deadline_exceeded(&self) -> GlimpseError {
        GlimpseError::DeadlineExceeded(format!(
            "The request took longer than this server allows for one request ({} s); it was stopped.",
            self.config.request_timeout.as_secs_f64()
        ))
    }

    fn refuse(&self, why: &str) -> GlimpseError {
        let model = self.inner.info().id.clone();
        metrics::counter!("glimpse_requests_refused_total", "model" => model, "reason" => why.to_string()).increment(1);
        GlimpseError::Overloaded(format!(
            "The server is busy ({why} for model {}); retry after a short wait.",
            self.inner.info().id
        ))
    }
}

/// `stream` until `deadline`: then `exceeded` is its last event and the engine stream is dropped (which stops
/// the generation).
fn until_deadline(stream: GenerationStream, deadline: tokio::time::Instant, exceeded: GlimpseError) -> GenerationStream {
    let sleep = Box::pin(tokio::time::sleep_until(deadline));
    Box::pin(futures::stream::unfold(Some((stream, sleep, exceeded)), |state| async move {
        let (mut stream, mut sleep, exceeded) = state?;
        tokio::select! {
            event = stream.next() => event.map(|event| (event, Some((stream, sleep, exceeded)))),
            _ = &mut sleep => Some((Err(exceeded), None)),
        }
    }))
}

/// Counts a waiting request for as long as it waits (its future may be dropped: a client gone).
struct Waiting<'a>(&'a Admitted);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!("glimpse_queue_depth", "model" => self.0.inner.info().id.clone()).decrement(1.0);
    }
}

#[async_trait]
impl Engine for Admitted {
    fn info(&self) -> &ModelInfo {
        self.inner.info()
    }

    async fn count_tokens(&self, prompt: &Prompt) -> Result<PromptTokens, GlimpseError> {
        self.inner.count_tokens(prompt).await
    }

    async fn ready(&self) -> Result<(), GlimpseError> {
        self.inner.ready().await
    }

    async fn generate(&self, request: GenerateRequest) -> Result<GenerationStream, GlimpseError> {
        if request.priority == Priority::Batch {
            let (share, permit) = self.take_for_batch().await?;
            let deadline = tokio::time::Instant::now() + self.config.request_timeout;
            return self.start(request, deadline, HeldSlots { _model: permit, _caller: Some(share) }).await;
        }
        let now = tokio::time::Instant::now();
        let deadline = now + self.config.request_timeout;
        let wait_until = now + self.config.max_wait.min(self.config.request_timeout);
        // The caller's own line first (holding a place in it), then the model's.
        let line = self.line_of(request.caller.as_deref());
        let in_line = match &line {
            Some(line) => Some(self.take(line, wait_until).await?),
            None => None,
        };
        let permit = self.take(&self.slots, wait_until).await?;
        self.start(request, deadline, HeldSlots { _model: permit, _caller: in_line }).await
    }
}

impl Admitted {
    /// Runs `request` on the engine holding `held` until its stream ends, stopped at `deadline`.
    async fn start(
        &self,
        request: GenerateRequest,
        deadline: tokio::time::Instant,
        held_slots: HeldSlots,
    ) -> Result<GenerationStream, GlimpseError> {
        let stream = match tokio::time::timeout_at(deadline, self.inner.generate(request)).await {
            Ok(started) => started?,
            Err(_) => return Err(self.deadline_exceeded()),
        };
        let exceeded = self.deadline_exceeded();
        let held = stream.map(move |event| {
            let _slots = &held_slots;
            event
        });
        Ok(until_deadline(Box::pin(held), deadline, exceeded))
    }
}

/// What a running generation holds until its stream ends. Fields drop in order: the model's slot before the
/// caller's place (or the batch share), so a request of another caller already waiting for the model goes
/// before this caller's next.
struct HeldSlots {
    _model: OwnedSemaphorePermit,
    _caller: Option<OwnedSemaphorePermit>,
}

impl Admitted {
    /// A place in the batch share, then a model slot taken only at a moment when no interactive request waits
    /// (checked every 2 ms: a batch request starts at most that late after a slot frees).
    async fn take_for_batch(&self) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), GlimpseError> {
        let closed = |_| GlimpseError::Unavailable("The model is shutting down.".into());
        let share = self.batch_slots.clone().acquire_owned().await.map_err(closed)?;
        loop {
            if self.waiting.load(Ordering::SeqCst) == 0 {
                if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                    return Ok((share, permit));
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A permit of `slots`, waiting (as one of the model's `max_queue`) until `until` at most.
    async fn take(&self, slots: &Arc<Semaphore>, until: tokio::time::Instant) -> Result<OwnedSemaphorePermit, GlimpseError> {
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.config.max_queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(self.refuse("the queue is full"));
        }
        metrics::gauge!("glimpse_queue_depth", "model" => self.inner.info().id.clone()).increment(1.0);
        let _waiting = Waiting(self);
        match tokio::time::timeout_at(until, slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(GlimpseError::Unavailable("The model is shutting down.".into())),
            Err(_) => Err(self.refuse("no slot freed up in time")),
        }
    }

    /// The caller's line, made on first use; lines no request holds are dropped on the way (a server that
    /// has seen many keys keeps only the busy ones).
    fn line_of(&self, caller: Option<&str>) -> Option<Arc<Semaphore>> {
        let (per_key, caller) = (self.config.max_concurrent_per_key?, caller?);
        let mut lines = self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        lines.retain(|_, line| Arc::strong_count(line) > 1 || line.available_permits() < per_key);
        Some(lines.entry(caller.to_string()).or_insert_with(|| Arc::new(Semaphore::new(per_key.max(1)))).clone())
    }
}

/// Describes this module's metrics.
pub fn describe() {
    metrics::describe_gauge!("glimpse_queue_depth", "Requests waiting for a model's generation slot.");
    metrics::describe_counter!(
        "glimpse_requests_refused_total",
        "Requests refused with 429 because a model's queue was full or its wait ran out."
    );
}
