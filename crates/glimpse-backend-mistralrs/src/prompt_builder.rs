//! Prompt → chat messages for the engine, with each image's placeholder where the client put the image.
//!
//! The engine's chat handling for Qwen-VL flattens message content to text, so placeholders are written into
//! the text here (mistralrs's prefixer would move every image to the front of its message). Families whose chat
//! template renders only typed content (SmolVLM) get the same text cut into text and image parts.

use std::sync::Arc;

use either::Either;
use glimpse_core::grounding::ImageGeometry;
use glimpse_core::media::{ImageSource, PixelCache};
use glimpse_core::{GlimpseError, Part, Prompt, Role};
use image::DynamicImage;
use indexmap::IndexMap;
use mistralrs::{MessageContent, TextMessageRole};
use serde_json::Value;

use crate::family::{Family, ImagePlan};

pub struct PreparedPrompt {
    /// Original (width, height) of each image, in prompt order.
    pub original_sizes: Vec<(u32, u32)>,
    /// Role and text of each message, system first.
    pub messages: Vec<(TextMessageRole, String)>,
    /// Images in prompt order, still undecoded: counting needs only their plans.
    sources: Vec<Arc<ImageSource>>,
    pub plans: Vec<ImagePlan>,
    /// The image placeholder to split messages on, for families that take typed content.
    typed_content: Option<&'static str>,
}

impl PreparedPrompt {
    /// The last image as sent and as the model sees it: what a detection answer's boxes refer to.
    /// The size of image `index` as sent and as the model saw it (what its boxes are converted with).
    pub fn image_geometry(&self, index: usize) -> Option<ImageGeometry> {
        let plan = self.plans.get(index)?;
        Some(ImageGeometry { original: *self.original_sizes.get(index)?, model_input: (plan.width, plan.height) })
    }

    pub fn image_tokens(&self) -> u32 {
        self.plans.iter().map(|p| p.tokens).sum()
    }

    /// The images at their planned sizes, decoded no larger than needed and kept in `cache` for the next
    /// request with the same bytes (CPU work: call from a blocking thread).
    pub fn render_images(&self, cache: &PixelCache) -> Result<Vec<DynamicImage>, GlimpseError> {
        self.sources
            .iter()
            .zip(&self.plans)
            .map(|(source, plan)| {
                let pixels = cache.pixels(source, plan.width, plan.height)?;
                Ok(DynamicImage::ImageRgb8(pixels.as_ref().clone()))
            })
            .collect()
    }

    /// The messages as the engine gets them, for generation and for counting alike: one string each, or, for
    /// families whose chat template wants typed content, text and image parts in the client's order.
    pub fn engine_messages(&self) -> Vec<IndexMap<String, MessageContent>> {
        self.messages
            .iter()
            .map(|(role, text)| {
                let content = match self.typed_content {
                    Some(placeholder) => Either::Right(typed_parts(text, placeholder)),
                    None => Either::Left(text.clone()),
                };
                IndexMap::from([("role".to_string(), Either::Left(role.to_string())), ("content".to_string(), content)])
            })
            .collect()
    }
}

/// `text<placeholder>text` → `[{"type":"text",…}, {"type":"image"}, {"type":"text",…}]`, empty texts left out.
fn typed_parts(text: &str, placeholder: &str) -> Vec<IndexMap<String, Value>> {
    let mut parts = Vec::new();
    for (n, piece) in text.split(placeholder).enumerate() {
        if n > 0 {
            parts.push(IndexMap::from([("type".to_string(), Value::from("image"))]));
        }
        if !piece.is_empty() {
            parts.push(IndexMap::from([("type".to_string(), Value::from("text")), ("text".to_string(), Value::from(piece))]));
        }
    }
    parts
}

/// Builds the messages and plans every image from its dimensions (no pixel is decoded). Each image gets the
/// client's `media_resolution` budget, else the processor's own maximum (detection requests too: a model is
/// sized by its processor config for the resolution it was trained to ground at).
pub fn prepare(prompt: &Prompt, family: &Family) -> Result<PreparedPrompt, GlimpseError> {
    let check = |text: &str| -> Result<(), GlimpseError> {
        match family.reserved_markers().iter().find(|m| text.contains(**m)) {
            Some(marker) => Err(GlimpseError::invalid(format!(
                "Text parts may not contain the model's reserved image token {marker}."
            ))),
            None => Ok(()),
        }
    };
    let mut messages = Vec::with_capacity(prompt.turns.len() + 1);
    if let Some(system) = &prompt.system {
        check(system)?;
        messages.push((TextMessageRole::System, system.clone()));
    }
    let mut sources = Vec::new();
    let mut plans = Vec::new();
    let mut original_sizes = Vec::new();
    for turn in &prompt.turns {
        let mut text = String::new();
        for part in &turn.parts {
            match part {
                Part::Text(t) => {
                    check(t)?;
                    text.push_str(t);
                }
                Part::Image(input) => {
                    let budget = prompt.budget_for(input);
                    let (width, height) = (input.source.width(), input.source.height());
                    let plan = family.plan_image(width, height, budget)?;
                    sources.push(input.source.clone());
                    original_sizes.push((width, height));
                    plans.push(plan);
                    text.push_str(family.image_placeholder());
                }
            }
        }
        let role = match turn.role {
            Role::User => TextMessageRole::User,
            Role::Model => TextMessageRole::Assistant,
        };
        messages.push((role, text));
    }
    let typed_content = family.typed_content().then(|| family.image_placeholder());
    Ok(PreparedPrompt { messages, sources, plans, original_sizes, typed_content })
}
