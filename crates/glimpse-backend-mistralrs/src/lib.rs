//! Glimpse's engine backend on `mistralrs`.
//!
//! Glimpse prepares everything the engine's own input processor could trip over: images are validated and
//! resized to the per-request budget before they get here, image placeholders are written into the prompt
//! where the client put the image (not where mistralrs's prefixer would), and a dead engine thread is
//! noticed and the model reloaded.

mod constraint;
mod counting;
mod detections;
mod engine;
mod family;
mod model_folder;
mod probe;
mod processor;
mod prompt_builder;
mod request;
mod response;
mod sampling;
mod supervisor;

pub use engine::{parse_dtype, parse_gpu_memory_fraction, parse_isq, LoadOptions, MistralRsEngine, DEFAULT_GPU_MEMORY_FRACTION};
pub use mistralrs::{IsqType, ModelDType};
pub use family::{Family, ImagePlan};
pub use model_folder::ModelFolder;
pub use probe::Probe;
pub use processor::LocalProcessor;
pub use sampling::GenerationDefaults;
pub use prompt_builder::PreparedPrompt;
pub use detections::{no_mask_model, to_gemini_detections};

/// Bytes of vision-encoder output each model keeps for images it has already seen (mistralrs's encoder cache,
/// keyed by the image's pixels: `vendor/README.md`, eighth fix). One setting for the whole process; 0 keeps none.
pub fn set_encoder_cache_bytes(bytes: usize) {
    mistralrs_core::ENCODER_CACHE_BYTES.store(bytes, std::sync::atomic::Ordering::Relaxed);
}
