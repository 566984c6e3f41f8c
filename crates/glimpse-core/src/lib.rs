//! Glimpse core: what a request means once the wire format is gone.
//!
//! The router turns Gemini, Interactions and OpenAI JSON into the types here; backends turn them into
//! forward passes. Nothing in this crate knows HTTP or a particular engine, so every front door shares one
//! validation path, one set of limits and one token accounting.

pub mod admission;
pub mod answer;
pub mod bundled;
pub mod engine;
pub mod error;
pub mod grounding;
pub mod limits;
pub mod media;
pub mod media_resolution;
pub mod metered;
pub mod output_schema;
pub mod priority;
pub mod prompt;
pub mod registry;
pub mod stop_sequences;

pub use answer::{answer_events, collect, AnswerEvent};
pub use bundled::bundled_model_dir;
pub use engine::{Engine, FinishReason, GenerationEvent, GenerationStream, ModelInfo, PromptTokens, Usage};
pub use error::{Code, GlimpseError};
pub use limits::RequestLimits;
pub use media_resolution::MediaResolution;
pub use prompt::{GenerateRequest, ImageInput, OutputConstraint, Part, Priority, Prompt, Role, SamplingOptions, Turn};
pub use registry::ModelRegistry;
