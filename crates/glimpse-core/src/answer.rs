//! One driver for every streamed answer: whatever a backend's stream does (empty deltas, an error, ending
//! without `Done`), each front door sees text deltas that are never empty, then exactly one end — finished or
//! failed — and nothing after it. Surfaces only encode these events.

use futures::stream::{self, Stream, StreamExt};

use crate::engine::{FinishReason, GenerationEvent, GenerationStream, Usage};
use crate::error::GlimpseError;

#[derive(Debug)]
pub enum AnswerEvent {
    /// New output text; never empty.
    Delta(String),
    /// The answer is complete (always the last event when nothing failed).
    Finished { finish: FinishReason, usage: Usage },
    /// The answer broke off (always the last event when it did).
    Failed(GlimpseError),
}

/// The message of a stream that ended without its `Done` event.
const CUT_SHORT: &str = "the model stopped before finishing its answer";

/// Drives `stream` into [`AnswerEvent`]s. Dropping the result drops the engine stream (ending generation).
pub fn answer_events(stream: GenerationStream) -> impl Stream<Item = AnswerEvent> + Send {
    stream::unfold(Some(stream), |state| async move {
        let mut stream = state?;
        loop {
            return match stream.next().await {
                Some(Ok(GenerationEvent::Text(delta))) if delta.is_empty() => continue,
                Some(Ok(GenerationEvent::Text(delta))) => Some((AnswerEvent::Delta(delta), Some(stream))),
                Some(Ok(GenerationEvent::Done { finish, usage })) => Some((AnswerEvent::Finished { finish, usage }, None)),
                Some(Err(e)) => Some((AnswerEvent::Failed(e), None)),
                None => Some((AnswerEvent::Failed(GlimpseError::Engine(CUT_SHORT.into())), None)),
            };
        }
    })
}

/// Drains a stream into the full text, finish reason and usage (the unary answers).
pub async fn collect(stream: GenerationStream) -> Result<(String, FinishReason, Usage), GlimpseError> {
    let mut events = std::pin::pin!(answer_events(stream));
    let mut text = String::new();
    while let Some(event) = events.next().await {
        match event {
            AnswerEvent::Delta(delta) => text.push_str(&delta),
            AnswerEvent::Finished { finish, usage } => return Ok((text, finish, usage)),
            AnswerEvent::Failed(e) => return Err(e),
        }
    }
    Err(GlimpseError::Engine(CUT_SHORT.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(items: Vec<Result<GenerationEvent, GlimpseError>>) -> Vec<AnswerEvent> {
        let stream: GenerationStream = Box::pin(stream::iter(items));
        futures::executor::block_on(answer_events(stream).collect())
    }

    fn done() -> Result<GenerationEvent, GlimpseError> {
        Ok(GenerationEvent::Done { finish: FinishReason::Stop, usage: Usage::default() })
    }

    fn text(t: &str) -> Result<GenerationEvent, GlimpseError> {
        Ok(GenerationEvent::Text(t.into()))
    }

    #[test]
    fn empty_deltas_are_dropped_and_done_ends_the_answer() {
        let got = events(vec![text(""), text("a"), text(""), done(), text("after")]);
        assert!(matches!(&got[..], [AnswerEvent::Delta(a), AnswerEvent::Finished { .. }] if a == "a"));
    }

    #[test]
    fn a_stream_ending_without_done_fails() {
        let got = events(vec![text("a")]);
        assert!(matches!(&got[..], [AnswerEvent::Delta(_), AnswerEvent::Failed(GlimpseError::Engine(m))] if m == CUT_SHORT));
    }

    #[test]
    fn an_error_is_the_last_event() {
        let got = events(vec![text("a"), Err(GlimpseError::Unavailable("gone".into())), done()]);
        assert!(matches!(&got[..], [AnswerEvent::Delta(_), AnswerEvent::Failed(GlimpseError::Unavailable(_))]));
    }

    #[test]
    fn collect_returns_the_text_or_the_failure() {
        let ok: GenerationStream = Box::pin(stream::iter(vec![text("a"), text(""), text("b"), done()]));
        let (got, finish, _) = futures::executor::block_on(collect(ok)).unwrap();
        assert_eq!((got.as_str(), finish), ("ab", FinishReason::Stop));
        let cut: GenerationStream = Box::pin(stream::iter(vec![text("a")]));
        assert!(futures::executor::block_on(collect(cut)).is_err());
    }
}
