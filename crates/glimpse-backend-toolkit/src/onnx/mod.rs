//! The toolkit's ONNX files made runnable, on ONNX Runtime when its shared library is present and on tract
//! (pure Rust, always built in) otherwise.
//!
//! ONNX Runtime is the default because it is what the models were measured against and 3–13× faster than tract
//! on them (`scripts/toolkit/bench.sh`); it is loaded at run time from the library that
//! `scripts/toolkit/fetch-onnxruntime.sh` copies out of PyPI's `onnxruntime` wheel, so the build needs nothing
//! beyond crates and a machine without it still answers, on tract.

mod onnxruntime;
mod tract;

use std::path::{Path, PathBuf};

use tract_onnx::prelude::tract_ndarray::ArrayD;

use crate::error::ToolkitError;

/// Chooses the runtime: `auto` (the default), `onnxruntime` or `tract`.
pub const RUNTIME_ENV: &str = "GLIMPSE_TOOLKIT_RUNTIME";
/// The ONNX Runtime library to load, instead of `onnxruntime/libonnxruntime.so` in the toolkit's folder.
pub const LIBRARY_ENV: &str = "GLIMPSE_ONNXRUNTIME";

/// Which engine runs the toolkit's models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    OnnxRuntime,
    Tract,
}

impl Runtime {
    /// The runtime [`RUNTIME_ENV`] asks for, loading ONNX Runtime's library when it is used: `auto` takes ONNX
    /// Runtime when its library loads and says in the log why not otherwise; `onnxruntime` fails without it.
    pub fn choose(model_dir: &Path) -> Result<Runtime, ToolkitError> {
        let wanted = std::env::var(RUNTIME_ENV).unwrap_or_default().to_ascii_lowercase();
        match wanted.as_str() {
            "tract" => Ok(Runtime::Tract),
            "onnxruntime" => Runtime::onnxruntime(model_dir),
            "" | "auto" => Ok(Runtime::onnxruntime(model_dir).unwrap_or_else(|e| {
                tracing::warn!("the toolkit runs on tract, 3-13x slower than ONNX Runtime: {e} (scripts/toolkit/fetch-onnxruntime.sh fetches it)");
                Runtime::Tract
            })),
            other => Err(ToolkitError::Load {
                file: RUNTIME_ENV.into(),
                reason: format!("\"{other}\" is not a toolkit runtime: use auto, onnxruntime or tract"),
            }),
        }
    }

    /// ONNX Runtime, its library loaded (once per process).
    pub fn onnxruntime(model_dir: &Path) -> Result<Runtime, ToolkitError> {
        onnxruntime::environment(&library_path(model_dir))?;
        Ok(Runtime::OnnxRuntime)
    }

    pub fn name(self) -> &'static str {
        match self {
            Runtime::OnnxRuntime => "ONNX Runtime",
            Runtime::Tract => "tract-onnx",
        }
    }
}

/// [`LIBRARY_ENV`], else the copy in the toolkit's folder.
fn library_path(model_dir: &Path) -> PathBuf {
    match std::env::var_os(LIBRARY_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => model_dir.join("onnxruntime/libonnxruntime.so"),
    }
}

/// The input shape a model is run at.
pub(crate) enum InputShape<'a> {
    /// One size: tract plans every buffer ahead; ONNX Runtime fixes the file's free dimensions to it.
    Fixed(&'a [usize]),
    /// The file's own (symbolic) sizes, planned once.
    FromFile,
    /// A plan per input size, made on first use: for graphs whose skip connections tract cannot prove to line
    /// up for symbolic sizes (PP-OCR's DBNet detector).
    PerSize,
}

/// One model file, loaded on one runtime.
pub(crate) enum OnnxModel {
    OnnxRuntime(onnxruntime::Model),
    Tract(tract::Model),
}

impl OnnxModel {
    /// Loads `path`, whose first input is f32, for inputs of shape `input`.
    pub fn load(runtime: Runtime, path: &Path, input: InputShape) -> Result<Self, ToolkitError> {
        if !path.is_file() {
            return Err(ToolkitError::Missing(path.display().to_string()));
        }
        Ok(match runtime {
            Runtime::OnnxRuntime => OnnxModel::OnnxRuntime(onnxruntime::Model::load(path, input)?),
            Runtime::Tract => OnnxModel::Tract(tract::Model::load(path, input)?),
        })
    }

    /// Runs the model on one f32 input and returns its first output.
    pub fn run(&self, input: ArrayD<f32>) -> Result<ArrayD<f32>, ToolkitError> {
        match self {
            OnnxModel::OnnxRuntime(model) => model.run(input),
            OnnxModel::Tract(model) => model.run(input),
        }
    }
}

/// A model file's name, for error messages.
fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
