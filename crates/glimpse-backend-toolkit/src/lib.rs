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
pub mod onnx;
pub mod salient;
pub mod task;
mod tensor;
mod toolkit;
pub mod vocabulary;

use std::path::PathBuf;

pub use engine::{ToolkitEngine, DEFAULT_NAME, IMAGE_TOKENS};
pub use error::ToolkitError;
pub use onnx::Runtime;
pub use toolkit::{Toolkit, DETECTION_MIN_SCORE};

/// Where the toolkit's model files are: `GLIMPSE_TOOLKIT_DIR`, else `models/toolkit` beside the workspace the
/// binary was built from, else `models/toolkit` under the current directory.
pub fn default_model_dir() -> PathBuf {
    glimpse_core::bundled_model_dir("toolkit", "GLIMPSE_TOOLKIT_DIR")
}
