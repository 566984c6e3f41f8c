//! Glimpse's embedded default backend, "toolkit": real vision models that ship inside registry packages
//! (a COCO-80 detector, an ImageNet-1k classifier, PP-OCRv5 and ISNet masks), run by tract-onnx and answering
//! Gemini prompts by documented rules ([`task`]) in the forms the Gemini documentation expects.

pub mod classifier;
pub mod detector;
mod engine;
mod error;
pub mod geometry;
mod labels;
pub mod ocr;
mod onnx;
pub mod salient;
pub mod task;
mod tensor;
mod toolkit;
pub mod vocabulary;

use std::path::PathBuf;

pub use engine::{ToolkitEngine, DEFAULT_NAME, IMAGE_TOKENS};
pub use error::ToolkitError;
pub use toolkit::{Toolkit, DETECTION_MIN_SCORE};

/// Where the toolkit's model files are: `GLIMPSE_TOOLKIT_DIR`, else `models/toolkit` beside the workspace the
/// binary was built from, else `models/toolkit` under the current directory.
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GLIMPSE_TOOLKIT_DIR") {
        return PathBuf::from(dir);
    }
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/toolkit");
    if built.is_dir() {
        return built;
    }
    PathBuf::from("models/toolkit")
}
