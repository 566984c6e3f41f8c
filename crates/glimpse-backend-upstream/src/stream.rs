//! The engine's SSE stream of `chat.completion.chunk`s as Glimpse's generation events: text deltas, then one
//! `Done` with the finish reason and usage (the local processor's prompt count; the engine's completion count
//! where it sends usage, else the answer counted locally). Dropping the stream drops the HTTP response, which
//! closes the connection: vLLM, SGLang and llama-server stop generating for a client that went away.

use std::sync::Arc;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use glimpse_backend_mistralrs::LocalProcessor;
use glimpse_core::{FinishReason, GenerationEvent, GenerationStream, GlimpseError, PromptTokens, Usage};
use serde::Deserialize;

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<ChunkUsage>,
    /// Some engines report an error inside a started stream.
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct ChunkUsage {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

struct State {
    events: futures::stream::BoxStream<'static, Result<eventsource_stream::Event, String>>,
    model: String,
    processor: Arc<LocalProcessor>,
    prompt: PromptTokens,
    text: String,
    finish: Option<FinishReason>,
    completion_tokens: Option<u32>,
    done: bool,
}

pub(crate) fn events(response: reqwest::Response, model: String, processor: Arc<LocalProcessor>, prompt: PromptTokens) -> GenerationStream {
    let events = response.bytes_stream().eventsource().map(|e| e.map_err(|e| e.to_string())).boxed();
    let state = State { events, model, processor, prompt, text: String::new(), finish: None, completion_tokens: None, done: false };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let event = match st.events.next().await {
                Some(Ok(event)) => event,
                Some(Err(e)) => {
                    st.done = true;
                    tracing::warn!(model = st.model, error = %e, "upstream stream broke");
                    let error = GlimpseError::Unavailable(format!("The engine serving model {} stopped answering.", st.model));
                    return Some((Err(error), st));
                }
                None => {
                    st.done = true;
                    return Some((st.finish(), st));
                }
            };
            if event.data.trim() == "[DONE]" {
                st.done = true;
                return Some((st.finish(), st));
            }
            let chunk: Chunk = match serde_json::from_str(&event.data) {
                Ok(chunk) => chunk,
                Err(e) => {
                    tracing::warn!(model = st.model, error = %e, "upstream sent a chunk that is not a chat.completion.chunk");
                    continue;
                }
            };
            if let Some(error) = chunk.error {
                st.done = true;
                let message = crate::failure::engine_message(error.to_string().as_bytes());
                tracing::warn!(model = st.model, message, "upstream engine failed inside a stream");
                let error = GlimpseError::Unavailable(format!("The engine serving model {} failed while answering.", st.model));
                return Some((Err(error), st));
            }
            if let Some(usage) = chunk.usage {
                st.completion_tokens = usage.completion_tokens;
                // Usage reports the local processor's count (what countTokens answered); a difference says the
                // engine's processor expanded the prompt differently, which operators should see.
                if usage.prompt_tokens.is_some_and(|n| n != st.prompt.total()) {
                    tracing::info!(model = st.model, engine = usage.prompt_tokens, local = st.prompt.total(), "the engine counted the prompt differently");
                }
            }
            let mut delta = String::new();
            for choice in chunk.choices {
                delta.push_str(choice.delta.content.as_deref().unwrap_or_default());
                if let Some(reason) = choice.finish_reason {
                    st.finish = Some(match reason.as_str() {
                        "stop" => FinishReason::Stop,
                        "length" => FinishReason::MaxTokens,
                        _ => FinishReason::Other,
                    });
                }
            }
            if !delta.is_empty() {
                st.text.push_str(&delta);
                return Some((Ok(GenerationEvent::Text(delta)), st));
            }
        }
    })
    .boxed()
}

impl State {
    /// The last event: a stream that ends without a finish reason was cut off.
    fn finish(&self) -> Result<GenerationEvent, GlimpseError> {
        let Some(finish) = self.finish else {
            tracing::warn!(model = self.model, "upstream stream ended without a finish reason");
            return Err(GlimpseError::Unavailable(format!("The engine serving model {} stopped answering.", self.model)));
        };
        let output = match self.completion_tokens {
            Some(tokens) => tokens,
            None => self.processor.count_text(&self.text)?,
        };
        Ok(GenerationEvent::Done { finish, usage: Usage { prompt: self.prompt, output, cached_prompt: 0 } })
    }
}
