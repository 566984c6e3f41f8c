//! The engine trait every backend implements (mistralrs in-process, the built-in toolkit).

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

use crate::error::GlimpseError;
use crate::prompt::{GenerateRequest, Prompt};

/// What `GET models` says about a loaded model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The id clients can always use (the model folder's name).
    pub id: String,
    pub display_name: String,
    pub description: String,
    /// Architecture family, e.g. `qwen2_5_vl`.
    pub family: String,
    pub input_token_limit: u32,
    pub output_token_limit: u32,
    /// Generations the engine works on at once (its batch); more wait in the admission queue.
    pub concurrency: usize,
}

impl ModelInfo {
    /// The output tokens a generation may take: what the client asked for (else the model's limit), within
    /// the model's output limit and the room the prompt leaves in its context. A prompt that fills the context
    /// is refused before any work.
    pub fn output_budget(&self, prompt: PromptTokens, requested: Option<u32>) -> Result<u32, GlimpseError> {
        let limit = self.input_token_limit;
        if prompt.total() >= limit {
            return Err(GlimpseError::PromptTooLong { count: prompt.total(), limit });
        }
        Ok(requested.unwrap_or(self.output_token_limit).min(self.output_token_limit).min(limit - prompt.total()))
    }
}

/// Prompt tokens split by modality, as the model really consumes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromptTokens {
    pub text: u32,
    pub image: u32,
}

impl PromptTokens {
    pub fn total(&self) -> u32 {
        self.text + self.image
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: PromptTokens,
    pub output: u32,
    /// Of the prompt's tokens, those that came from a stored `cachedContent` (`cachedContentTokenCount`).
    pub cached_prompt: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// End of turn, or a stop sequence.
    Stop,
    /// `maxOutputTokens` or the context window was reached.
    MaxTokens,
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// New output text (a delta).
    Text(String),
    /// The last event of every successful stream.
    Done { finish: FinishReason, usage: Usage },
}

pub type GenerationStream = Pin<Box<dyn Stream<Item = Result<GenerationEvent, GlimpseError>> + Send>>;

#[async_trait]
pub trait Engine: Send + Sync {
    fn info(&self) -> &ModelInfo;

    /// The prompt tokens `generate` would consume for this prompt, without running the model.
    async fn count_tokens(&self, prompt: &Prompt) -> Result<PromptTokens, GlimpseError>;

    /// Whether the engine can take requests now (`/readyz`): an in-process model always can once loaded; a
    /// model served by another engine only while that engine answers.
    async fn ready(&self) -> Result<(), GlimpseError> {
        Ok(())
    }

    /// Starts generating. Errors found before the first token (validation, context length) come back here,
    /// not inside the stream, so the router can still answer with a plain HTTP error.
    async fn generate(&self, request: GenerateRequest) -> Result<GenerationStream, GlimpseError>;
}
