//! Engine responses as Glimpse's event stream.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use glimpse_core::{FinishReason, GenerationEvent, GenerationStream, GlimpseError, PromptTokens, Usage};
use mistralrs::Response;
use tokio::sync::mpsc;

use crate::engine::Inner;

/// Engine responses → Glimpse events. A channel that closes before the final chunk means the engine thread
/// died with this request; the model is reloaded for the next one.
pub(crate) fn response_stream(
    rx: mpsc::Receiver<Response>,
    inner: Arc<Inner>,
    counted: PromptTokens,
    image_tokens: u32,
) -> GenerationStream {
    struct State {
        rx: mpsc::Receiver<Response>,
        inner: Arc<Inner>,
        counted: PromptTokens,
        image_tokens: u32,
        generated: u32,
        queued: VecDeque<Result<GenerationEvent, GlimpseError>>,
        finished: bool,
    }
    let state = State { rx, inner, counted, image_tokens, generated: 0, queued: VecDeque::new(), finished: false };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.queued.pop_front() {
                return Some((event, st));
            }
            if st.finished {
                return None;
            }
            let Some(response) = st.rx.recv().await else {
                st.finished = true;
                let err = st.inner.restart_after_failure("the engine stopped while answering".into());
                return Some((Err(err), st));
            };
            match response {
                Response::Chunk(chunk) => {
                    for choice in chunk.choices {
                        if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                            st.queued.push_back(Ok(GenerationEvent::Text(text)));
                        }
                        st.generated += 1;
                        if let Some(reason) = choice.finish_reason {
                            let usage = match &chunk.usage {
                                Some(u) => Usage {
                                    prompt: PromptTokens {
                                        text: (u.prompt_tokens as u32).saturating_sub(st.image_tokens),
                                        image: st.image_tokens,
                                    },
                                    output: u.completion_tokens as u32,
                                    cached_prompt: 0,
                                },
                                None => Usage { prompt: st.counted, output: st.generated, cached_prompt: 0 },
                            };
                            let finish = match reason.as_str() {
                                "stop" => FinishReason::Stop,
                                "length" => FinishReason::MaxTokens,
                                _ => FinishReason::Other,
                            };
                            st.queued.push_back(Ok(GenerationEvent::Done { finish, usage }));
                            st.finished = true;
                        }
                    }
                }
                Response::Done(done) => {
                    let text = done.choices.first().and_then(|c| c.message.content.clone()).unwrap_or_default();
                    if !text.is_empty() {
                        st.queued.push_back(Ok(GenerationEvent::Text(text)));
                    }
                    let usage = Usage { prompt: st.counted, output: done.usage.completion_tokens as u32, cached_prompt: 0 };
                    st.queued.push_back(Ok(GenerationEvent::Done { finish: FinishReason::Stop, usage }));
                    st.finished = true;
                }
                Response::ValidationError(e) => {
                    st.finished = true;
                    return Some((Err(GlimpseError::InvalidArgument(e.to_string())), st));
                }
                Response::ModelError(message, _) => {
                    st.finished = true;
                    return Some((Err(GlimpseError::Engine(message)), st));
                }
                Response::InternalError(e) => {
                    st.finished = true;
                    return Some((Err(GlimpseError::Engine(e.to_string())), st));
                }
                _ => {
                    st.finished = true;
                    return Some((Err(GlimpseError::Engine("unexpected engine response".into())), st));
                }
            }
        }
    })
    .boxed()
}
