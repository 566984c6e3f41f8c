//! A generation request once the wire format is gone: turns of text and decoded images, sampling options and
//! an output constraint.

use std::sync::Arc;

use crate::media::ImageSource;
use crate::media_resolution::MediaResolution;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Model,
}

/// A validated image (checked from its header; decoded when a model needs its pixels) and how much detail the
/// client asked for.
#[derive(Debug, Clone)]
pub struct ImageInput {
    pub source: Arc<ImageSource>,
    /// Per-part resolution; overrides the request-wide one.
    pub resolution: Option<MediaResolution>,
}

impl ImageInput {
    pub fn new(source: ImageSource) -> ImageInput {
        ImageInput { source: Arc::new(source), resolution: None }
    }
}

#[derive(Debug, Clone)]
pub enum Part {
    Text(String),
    Image(ImageInput),
}

#[derive(Debug, Clone)]
pub struct Turn {
    pub role: Role,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, Default)]
pub struct Prompt {
    pub system: Option<String>,
    pub turns: Vec<Turn>,
    /// Request-wide resolution (`generationConfig.mediaResolution`).
    pub media_resolution: Option<MediaResolution>,
}

impl Prompt {
    pub fn images(&self) -> impl Iterator<Item = &ImageInput> {
        self.turns.iter().flat_map(|t| t.parts.iter()).filter_map(|p| match p {
            Part::Image(img) => Some(img),
            Part::Text(_) => None,
        })
    }

    /// The image a detection (or any single-image reading of a prompt) is about, with its index among
    /// [`Prompt::images`]: the last image a user turn holds. Every backend answers boxes for this one.
    pub fn subject_image(&self) -> Option<(usize, &ImageInput)> {
        let mut index = 0;
        let mut subject = None;
        for turn in &self.turns {
            for part in &turn.parts {
                if let Part::Image(image) = part {
                    if turn.role == Role::User {
                        subject = Some((index, image));
                    }
                    index += 1;
                }
            }
        }
        subject
    }

    /// The text of the last user turn (its text parts joined by spaces): what rule-based readings of a prompt
    /// (detection prompts, the toolkit's tasks) look at.
    pub fn last_user_text(&self) -> String {
        let Some(turn) = self.turns.iter().rev().find(|t| t.role == Role::User) else { return String::new() };
        turn.parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                Part::Image(_) => None,
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The image-token budget that applies to one image: its own level, else the request's, else the model's.
    pub fn budget_for(&self, image: &ImageInput) -> Option<u32> {
        image.resolution.or(self.media_resolution).and_then(MediaResolution::token_budget)
    }
}

/// Sampling options as the client set them; `None` means "the model's defaults" (its generation_config.json).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplingOptions {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub seed: Option<u64>,
    pub max_output_tokens: Option<u32>,
    pub stop_sequences: Vec<String>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutputConstraint {
    None,
    /// The output must be JSON matching this JSON Schema (constrained decoding).
    JsonSchema(serde_json::Value),
    /// The output must be exactly one of these strings (`text/x.enum`).
    Choice(Vec<String>),
}

impl OutputConstraint {
    /// What decoding is held to for a request whose detection prompt has the family's native box-list schema
    /// `detection`: that schema, unless the client gave a schema of its own (`{}` counts as none). The native
    /// form makes the answer always parse, with its box convention known.
    pub fn or_detection_schema(self, detection: Option<serde_json::Value>) -> OutputConstraint {
        match (self, detection) {
            (OutputConstraint::None, Some(schema)) => OutputConstraint::JsonSchema(schema),
            (OutputConstraint::JsonSchema(own), Some(schema)) if own == serde_json::json!({}) => OutputConstraint::JsonSchema(schema),
            (other, _) => other,
        }
    }

    /// A regular expression that matches exactly one of `options`, for engines that constrain by regex.
    pub fn choice_regex(options: &[String]) -> String {
        let escaped: Vec<String> = options
            .iter()
            .map(|option| {
                let mut out = String::with_capacity(option.len());
                for c in option.chars() {
                    if "\\.+*?()|[]{}^$#&-~".contains(c) {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out
            })
            .collect();
        format!("({})", escaped.join("|"))
    }
}

#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub prompt: Prompt,
    pub sampling: SamplingOptions,
    pub constraint: OutputConstraint,
    /// Who asks (the API key's project): admission's per-key line. `None`: a request of the server itself.
    pub caller: Option<String>,
    /// Whether someone waits for the answer now ([`Priority::Interactive`]) or it is one request of a batch job.
    pub priority: Priority,
}

/// How admission orders a request against others for the same model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Priority {
    /// A client waits for it: served in arrival order, refused with 429 when the queue is full.
    #[default]
    Interactive,
    /// A request of a batch job: it takes a slot only while no interactive request waits, holds at most the
    /// batch share of the model's slots, and is never refused (the job waits instead).
    Batch,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{ImageLimits, ImageSource};

    fn image(side: u32) -> Part {
        let mut png = Vec::new();
        image::RgbImage::new(side, side)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("encode");
        Part::Image(ImageInput::new(ImageSource::probe(png, None, &ImageLimits::default()).expect("probe")))
    }

    fn turn(role: Role, parts: Vec<Part>) -> Turn {
        Turn { role, parts }
    }

    fn subject_side(prompt: &Prompt) -> Option<(usize, u32)> {
        prompt.subject_image().map(|(index, input)| (index, input.source.width()))
    }

    #[test]
    fn the_subject_is_the_last_image_a_user_sent() {
        let text = || Part::Text("boxes".into());
        let plain = Prompt { turns: vec![turn(Role::User, vec![image(8), image(9), text()])], ..Default::default() };
        assert_eq!(subject_side(&plain), Some((1, 9)));
        // An image in a model turn after it, and a last user turn without one, change nothing.
        let later = Prompt {
            turns: vec![
                turn(Role::User, vec![image(8), text()]),
                turn(Role::Model, vec![image(10)]),
                turn(Role::User, vec![text()]),
            ],
            ..Default::default()
        };
        assert_eq!(subject_side(&later), Some((0, 8)));
        assert_eq!(subject_side(&Prompt { turns: vec![turn(Role::User, vec![text()])], ..Default::default() }), None);
    }
}
