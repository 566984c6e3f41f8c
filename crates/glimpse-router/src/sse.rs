//! Server-sent event streams fed by a producer task.
//!
//! The producer owns the engine stream and writes events into a bounded channel that the response body
//! drains; when the client goes away the channel closes, `send` returns false and the producer stops (dropping
//! the engine stream ends the generation). The task also lets a stream finish with work of its own (storing an
//! interaction) before its last event.

use std::convert::Infallible;
use std::future::Future;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use glimpse_core::{GenerationStream, GlimpseError};

/// Events in flight between the producer and a slow client.
const BUFFER: usize = 32;

pub struct SseSender {
    tx: mpsc::Sender<Event>,
}

impl SseSender {
    /// Sends one event; false when the client has gone.
    pub async fn send(&mut self, event: Event) -> bool {
        self.tx.send(event).await.is_ok()
    }

    /// `data: [DONE]`, the end marker of the Interactions and OpenAI streams.
    pub async fn done(&mut self) -> bool {
        self.send(Event::default().data("[DONE]")).await
    }
}

/// A `text/event-stream` response whose events `producer` sends.
pub fn spawn_sse<F, Fut>(producer: F) -> Response
where
    F: FnOnce(SseSender) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(crate::request_id::carried(producer(SseSender { tx })));
    Sse::new(rx.map(Ok::<_, Infallible>)).into_response()
}

/// Waits for the engine's first event, so that a failure before any output is still answered with a plain
/// HTTP error status rather than a 200 stream holding an error event.
pub async fn start(mut stream: GenerationStream) -> Result<GenerationStream, GlimpseError> {
    match stream.next().await {
        Some(Err(e)) => Err(e),
        Some(Ok(first)) => Ok(futures::stream::iter([Ok(first)]).chain(stream).boxed()),
        None => Ok(stream),
    }
}
