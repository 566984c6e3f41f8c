//! The toolkit behind the engine trait: one answer per request, computed off the async runtime, streamed as
//! a single delta.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use glimpse_core::engine::{FinishReason, GenerationEvent, GenerationStream, ModelInfo, PromptTokens, Usage};
use glimpse_core::media::ImageSource;
use glimpse_core::{Engine, GenerateRequest, GlimpseError, Part, Prompt};

use crate::error::ToolkitError;
use crate::task::Task;
use crate::toolkit::Toolkit;

/// What the toolkit is called in `GET models` when no name is given.
pub const DEFAULT_NAME: &str = "toolkit";
/// Image tokens per image: the detector's 512×512 input ends in a 16×16 grid of stride-32 cells, the units it
/// reasons over (README: "The toolkit backend").
pub const IMAGE_TOKENS: u32 = 256;
const INPUT_TOKEN_LIMIT: u32 = 1 << 20;
const OUTPUT_TOKEN_LIMIT: u32 = 8192;

pub struct ToolkitEngine {
    info: ModelInfo,
    toolkit: Arc<Toolkit>,
}

impl ToolkitEngine {
    pub fn load(dir: &Path, name: Option<String>) -> Result<Self, ToolkitError> {
        let toolkit = Arc::new(Toolkit::load(dir)?);
        Ok(Self::new(toolkit, name))
    }

    pub fn new(toolkit: Arc<Toolkit>, name: Option<String>) -> Self {
        let id = name.unwrap_or_else(|| DEFAULT_NAME.to_string());
        let info = ModelInfo {
            display_name: "Glimpse toolkit".into(),
            description: format!(
                "Built-in vision toolkit: CenterNet COCO detector, EfficientNet-Lite0 ImageNet classifier, PP-OCRv5 text reader, ISNet masks ({})",
                toolkit.runtime().name()
            ),
            family: "toolkit".into(),
            input_token_limit: INPUT_TOKEN_LIMIT,
            output_token_limit: OUTPUT_TOKEN_LIMIT,
            // Each answer is CPU-bound work of its own: one per core keeps them all busy, no more.
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            id,
        };
        ToolkitEngine { info, toolkit }
    }

    pub fn toolkit(&self) -> &Arc<Toolkit> {
        &self.toolkit
    }
}

/// Text tokens are words (whitespace-separated), a fixed and documented unit since no tokenizer is involved.
fn count_words(text: &str) -> u32 {
    text.split_whitespace().count() as u32
}

fn prompt_tokens(prompt: &Prompt) -> PromptTokens {
    let mut tokens = PromptTokens { text: prompt.system.as_deref().map_or(0, count_words), image: 0 };
    for part in prompt.turns.iter().flat_map(|t| &t.parts) {
        match part {
            Part::Text(text) => tokens.text += count_words(text),
            Part::Image(_) => tokens.image += IMAGE_TOKENS,
        }
    }
    tokens
}

/// The image a question is about (the rule every backend shares: [`Prompt::subject_image`]).
fn subject_image(prompt: &Prompt) -> Option<Arc<ImageSource>> {
    prompt.subject_image().map(|(_, image)| image.source.clone())
}

/// Cuts the answer at the first stop sequence and at `max_words`.
fn limit(mut text: String, stops: &[String], max_words: Option<u32>) -> (String, FinishReason) {
    if let Some(at) = stops.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min() {
        text.truncate(at);
    }
    if let Some(max) = max_words {
        if count_words(&text) > max {
            let kept: Vec<&str> = text.split_whitespace().take(max as usize).collect();
            return (kept.join(" "), FinishReason::MaxTokens);
        }
    }
    (text, FinishReason::Stop)
}

#[async_trait]
impl Engine for ToolkitEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    async fn count_tokens(&self, prompt: &Prompt) -> Result<PromptTokens, GlimpseError> {
        Ok(prompt_tokens(prompt))
    }

    async fn generate(&self, request: GenerateRequest) -> Result<GenerationStream, GlimpseError> {
        let prompt_tokens = prompt_tokens(&request.prompt);
        let task = Task::of(&request.prompt);
        let question = request.prompt.last_user_text();
        let text = match subject_image(&request.prompt) {
            None => format!(
                "Send an image with your question: the built-in toolkit answers questions about images only. {}",
                "For text-only conversations, serve a vision-language model: glimpse serve --model /path/to/Qwen2.5-VL-3B-Instruct."
            ),
            Some(source) => {
                let toolkit = self.toolkit.clone();
                let constraint = request.constraint.clone();
                let answer = move || toolkit.answer(&task, &question, &source.decode()?, &constraint);
                glimpse_core::priority::spawn_compute("the toolkit stopped", answer).await?
            }
        };
        let (text, finish) = limit(text, &request.sampling.stop_sequences, request.sampling.max_output_tokens);
        let usage = Usage { prompt: prompt_tokens, output: count_words(&text), cached_prompt: 0 };
        let events = vec![Ok(GenerationEvent::Text(text)), Ok(GenerationEvent::Done { finish, usage })];
        Ok(Box::pin(futures::stream::iter(events)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_cut_answers() {
        let (text, finish) = limit("one two three. four".into(), &[".".into()], None);
        assert_eq!((text.as_str(), finish), ("one two three", FinishReason::Stop));
        let (text, finish) = limit("one two three".into(), &[], Some(2));
        assert_eq!((text.as_str(), finish), ("one two", FinishReason::MaxTokens));
    }
}
