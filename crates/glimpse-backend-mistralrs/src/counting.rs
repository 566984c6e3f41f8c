//! Prompt tokens as the model will consume them, counted without decoding a pixel: the chat template applied,
//! each image placeholder expanded the way the family's processor expands it (from the image's plan, made
//! from its header), then tokenized again (what mistralrs's input processors do).

use std::sync::Arc;

use either::Either;
use glimpse_core::{GlimpseError, PromptTokens};
use indexmap::IndexMap;
use mistralrs::{MessageContent, Request};
use mistralrs_core::TokenizationRequest;

use crate::engine::{Inner, MistralRsEngine};
use crate::prompt_builder::PreparedPrompt;

impl MistralRsEngine {
    /// Counts the prompt as the engine will see it: the chat template applied, then each image placeholder
    /// expanded the way the family's processor expands it, then tokenized again (which is what mistralrs's
    /// input processors do).
    pub(crate) async fn count_prepared(&self, prepared: &PreparedPrompt) -> Result<PromptTokens, GlimpseError> {
        let model = self.inner.model();
        let failed = |e| self.inner.restart_after_failure(format!("tokenization failed: {e}"));
        let family = &self.inner.folder.family;
        let ids = self.inner.tokenize_messages(prepared.engine_messages()).await?;
        if prepared.plans.is_empty() {
            return Ok(PromptTokens { text: ids.len() as u32, image: 0 });
        }
        let templated = model.detokenize(ids, false).await.map_err(failed)?;
        let expanded = family.expand_placeholders(&templated, &prepared.plans)?;
        let ids = model.tokenize(Either::Right(expanded), None, false, false, None).await.map_err(failed)?;
        let image = ids.iter().filter(|t| **t == self.inner.image_token_id).count() as u32;
        Ok(PromptTokens { text: ids.len() as u32 - image, image })
    }
}

impl Inner {
    /// The chat template applied to `messages` and tokenized by the engine's own processor: the same path a
    /// generation request takes (mistralrs's `Model::tokenize` accepts only plain-string messages).
    async fn tokenize_messages(self: &Arc<Self>, messages: Vec<IndexMap<String, MessageContent>>) -> Result<Vec<u32>, GlimpseError> {
        let (response, mut answer) = tokio::sync::mpsc::channel(1);
        let request = Request::Tokenize(TokenizationRequest {
            text: Either::Left(messages),
            tools: None,
            add_generation_prompt: true,
            add_special_tokens: false,
            enable_thinking: None,
            reasoning_effort: None,
            response,
        });
        self.submit(request).await?;
        match answer.recv().await {
            Some(Ok(ids)) => Ok(ids),
            Some(Err(e)) => Err(GlimpseError::Engine(format!("tokenization failed: {e}"))),
            None => Err(self.restart_after_failure("the engine dropped a tokenization request".into())),
        }
    }
}
