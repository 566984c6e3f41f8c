//! The mistralrs request for a prepared prompt, its images and sampling.

use mistralrs::{Constraint, NormalRequest, Request, RequestMessage, Response};
use tokio::sync::mpsc;

use crate::prompt_builder::PreparedPrompt;

/// What the engine should send back for a request.
pub(crate) enum EngineOutput {
    /// Streamed text chunks.
    Stream,
    /// One final response carrying the log-probability of each sampled token.
    Logprobs,
    /// The raw logits of the first generated position.
    RawLogits,
}

pub(crate) fn engine_request(
    prepared: &PreparedPrompt,
    images: Vec<image::DynamicImage>,
    sampling_params: mistralrs::SamplingParams,
    constraint: Constraint,
    response: mpsc::Sender<Response>,
    output: EngineOutput,
) -> Request {
    let messages = prepared.engine_messages();
    let message = if images.is_empty() {
        RequestMessage::Chat { messages, enable_thinking: None, reasoning_effort: None }
    } else {
        RequestMessage::MultimodalChat {
            images,
            audios: Vec::new(),
            videos: Vec::new(),
            messages,
            enable_thinking: None,
            reasoning_effort: None,
        }
    };
    Request::Normal(Box::new(NormalRequest {
        messages: message,
        sampling_params,
        response,
        return_logprobs: matches!(output, EngineOutput::Logprobs),
        is_streaming: matches!(output, EngineOutput::Stream),
        id: 0,
        constraint,
        suffix: None,
        tools: None,
        tool_choice: None,
        logits_processors: None,
        return_raw_logits: matches!(output, EngineOutput::RawLogits),
        web_search_options: None,
        model_id: None,
        truncate_sequence: false,
    }))
}
