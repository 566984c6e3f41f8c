//! Numerics probe: greedy tokens with their log-probabilities and the first position's raw logits, straight
//! from the engine. This is what the parity tests compare against Hugging Face transformers, and what a user
//! can run to check a model folder loads with the numerics they expect.

use std::f32::consts::LN_10;
use std::sync::Arc;

use glimpse_core::{GlimpseError, Prompt, SamplingOptions};
use mistralrs::{Constraint, Response};
use tokio::sync::mpsc;

use crate::engine::MistralRsEngine;
use crate::request::{engine_request, EngineOutput};
use crate::sampling::{sampling_params, GenerationDefaults};

#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Each greedily generated token, as the tokenizer decodes it on its own.
    pub tokens: Vec<String>,
    /// The natural-log probability of each generated token.
    pub logprobs: Vec<f32>,
    /// Logits over the vocabulary at the first generated position.
    pub first_logits: Vec<f32>,
    /// The prompt as the engine tokenized it, image placeholders expanded.
    pub prompt_ids: Vec<u32>,
    pub finish_reason: String,
}

/// mistralrs's greedy sampler reports base-10 log-probabilities; the probe converts them to natural logs.
impl MistralRsEngine {
    pub async fn probe(&self, prompt: &Prompt, max_tokens: u32) -> Result<Probe, GlimpseError> {
        let greedy = SamplingOptions { temperature: Some(0.0), ..Default::default() };
        let params = sampling_params(&greedy, &GenerationDefaults::default(), max_tokens as usize);

        let (tx, mut rx) = mpsc::channel(64);
        let prepared = Arc::new(self.prepare(prompt)?);
        let images = self.render_images(&prepared).await?;
        let request = engine_request(&prepared, images.clone(), params.clone(), Constraint::None, tx, EngineOutput::Logprobs);
        self.inner.submit(request).await?;
        let (mut tokens, mut logprobs, mut finish_reason) = (Vec::new(), Vec::new(), String::new());
        match rx.recv().await {
            Some(Response::Done(done)) => {
                for choice in done.choices {
                    for lp in choice.logprobs.and_then(|l| l.content).unwrap_or_default() {
                        tokens.push(lp.token);
                        logprobs.push(lp.logprob * LN_10);
                    }
                    finish_reason = choice.finish_reason;
                }
            }
            Some(other) => return Err(unexpected(other)),
            None => return Err(GlimpseError::Engine("the engine closed the channel".into())),
        }

        let (tx, mut rx) = mpsc::channel(4);
        self.inner.submit(engine_request(&prepared, images, params, Constraint::None, tx, EngineOutput::RawLogits)).await?;
        let (first_logits, prompt_ids) = match rx.recv().await {
            Some(Response::Raw { logits_chunks, tokens }) => {
                let last = logits_chunks.last().ok_or_else(|| GlimpseError::Engine("no logits returned".into()))?;
                let flat = last.flatten_all().map_err(|e| GlimpseError::Engine(e.to_string()))?;
                let flat = flat.to_dtype(mistralrs::DType::F32).map_err(|e| GlimpseError::Engine(e.to_string()))?;
                let values: Vec<f32> = flat.to_vec1().map_err(|e| GlimpseError::Engine(e.to_string()))?;
                // A chunk may hold several positions; the first generated token comes from the last one.
                let vocab = last.dims().last().copied().unwrap_or(values.len());
                (values[values.len() - vocab..].to_vec(), tokens)
            }
            Some(other) => return Err(unexpected(other)),
            None => return Err(GlimpseError::Engine("the engine closed the channel".into())),
        };
        Ok(Probe { tokens, logprobs, first_logits, prompt_ids, finish_reason })
    }
}

fn unexpected(response: Response) -> GlimpseError {
    match response {
        Response::InternalError(e) | Response::ValidationError(e) => GlimpseError::Engine(e.to_string()),
        Response::ModelError(message, _) => GlimpseError::Engine(message),
        _ => GlimpseError::Engine("unexpected engine response".into()),
    }
}

