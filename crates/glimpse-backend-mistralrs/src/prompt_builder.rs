//! Prompt → chat messages for the engine, with each image's placeholder where the client put the image.
//!
//! The engine's chat handling for Qwen-VL flattens message content to text, so placeholders are written into
//! the text here (mistralrs's prefixer would move every image to the front of its message).

use either::Either;
use glimpse_core::media::resize_exact;
use glimpse_core::{GlimpseError, Part, Prompt, Role};
use image::DynamicImage;
use indexmap::IndexMap;
use mistralrs::{MessageContent, TextMessageRole, TextMessages};

use crate::family::{Family, ImagePlan};

pub struct PreparedPrompt {
    /// Role and text of each message, system first.
    pub messages: Vec<(TextMessageRole, String)>,
    /// Images in prompt order, already at their planned size.
    pub images: Vec<DynamicImage>,
    pub plans: Vec<ImagePlan>,
}

impl PreparedPrompt {
    pub fn image_tokens(&self) -> u32 {
        self.plans.iter().map(|p| p.tokens).sum()
    }

    /// For the engine's tokenizer (token counting).
    pub fn text_messages(&self) -> TextMessages {
        self.messages.iter().fold(TextMessages::new(), |acc, (role, text)| acc.add_message(role.clone(), text))
    }

    /// For the engine's chat request.
    pub fn engine_messages(&self) -> Vec<IndexMap<String, MessageContent>> {
        self.messages
            .iter()
            .map(|(role, text)| {
                IndexMap::from([
                    ("role".to_string(), Either::Left(role.to_string())),
                    ("content".to_string(), Either::Left(text.clone())),
                ])
            })
            .collect()
    }
}

/// Builds the messages and resizes every image (CPU work: call from a blocking thread).
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
    let mut images = Vec::new();
    let mut plans = Vec::new();
    for turn in &prompt.turns {
        let mut text = String::new();
        for part in &turn.parts {
            match part {
                Part::Text(t) => {
                    check(t)?;
                    text.push_str(t);
                }
                Part::Image(input) => {
                    let plan = family.plan_image(input.image.width(), input.image.height(), prompt.budget_for(input))?;
                    images.push(resize_exact(&input.image, plan.width, plan.height));
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
    Ok(PreparedPrompt { messages, images, plans })
}
