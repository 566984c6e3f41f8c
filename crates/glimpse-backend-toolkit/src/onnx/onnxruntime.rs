//! One ONNX model on ONNX Runtime, through the `ort` crate with the library loaded at run time.
//!
//! Each answer runs on one thread (the engine runs one answer per core), so sessions are single-threaded and a
//! model keeps one per answer running at once: `ort` runs a session through `&mut`, and a pool of them lets
//! answers on different cores proceed side by side instead of queueing on one lock.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::logging::LogLevel;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{TensorRef, ValueType};
use tract_onnx::prelude::tract_ndarray::ArrayD;

use super::InputShape;
use crate::error::ToolkitError;

/// The process's one ONNX Runtime environment (ONNX Runtime allows one), from the first library path asked for.
static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// Loads ONNX Runtime from `library` (once; later paths are ignored) and returns its environment.
pub(super) fn environment(library: &Path) -> Result<Environment, ToolkitError> {
    let loaded = ENVIRONMENT.get_or_init(|| {
        if !library.is_file() {
            return Err(format!("{} does not exist", library.display()));
        }
        // `ort` panics, rather than failing, when the library is older than the API it was built for (1.17).
        std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<Environment, String> {
            let environment =
                ort::init_from(library).map_err(|e| e.to_string())?.with_name("glimpse-toolkit").build().map_err(|e| e.to_string())?;
            // Its informational lines (every arena extension) and the shape-merging warnings the PP-OCR files
            // raise at load are noise in the server's log; errors still come through `tracing`.
            environment.set_log_level(LogLevel::Error);
            Ok(environment)
        }))
        .unwrap_or_else(|_| Err(format!("{} is not an ONNX Runtime library of version 1.17 or later", library.display())))
    });
    loaded.clone().map_err(|reason| ToolkitError::Load { file: library.display().to_string(), reason })
}

pub(crate) struct Model {
    name: String,
    path: PathBuf,
    environment: Environment,
    /// The input's named free dimensions set to the one size the model is run at, so that ONNX Runtime plans for
    /// it (ISNet at 320²: 3–8% faster).
    fixed_dimensions: Vec<(String, i64)>,
    /// Sessions not running now; one is made when all are busy.
    idle: Mutex<Vec<Session>>,
}

impl Model {
    /// Loads `path` (on the environment [`environment`] made) and makes its first session, so a broken file fails
    /// at start. A [`InputShape::Fixed`] shape fixes the file's free input dimensions.
    pub fn load(path: &Path, input: InputShape) -> Result<Self, ToolkitError> {
        let fail = |reason: String| ToolkitError::Load { file: path.display().to_string(), reason };
        let environment = ENVIRONMENT.get().and_then(|e| e.as_ref().ok()).cloned().ok_or_else(|| fail("ONNX Runtime is not loaded".into()))?;
        let mut model = Model {
            name: super::file_name(path),
            path: path.to_path_buf(),
            environment,
            fixed_dimensions: Vec::new(),
            idle: Mutex::new(Vec::new()),
        };
        let mut first = model.session().map_err(&fail)?;
        if let InputShape::Fixed(shape) = input {
            model.fixed_dimensions = free_dimensions(&first, shape);
            if !model.fixed_dimensions.is_empty() {
                first = model.session().map_err(&fail)?;
            }
        }
        model.give_back(first);
        Ok(model)
    }

    fn session(&self) -> Result<Session, String> {
        if let Some(session) = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop() {
            return Ok(session);
        }
        let mut builder = Session::builder(&self.environment)
            .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::All)?))
            .and_then(|b| Ok(b.with_intra_threads(1)?))
            .and_then(|b| Ok(b.with_inter_threads(1)?))
            .map_err(|e| e.to_string())?;
        for (name, size) in &self.fixed_dimensions {
            builder = builder.with_dimension_override(name, *size).map_err(|e| e.to_string())?;
        }
        builder.commit_from_file(&self.path).map_err(|e| e.to_string())
    }

    fn give_back(&self, session: Session) {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(session);
    }

    fn failure(&self, reason: impl ToString) -> ToolkitError {
        ToolkitError::Run { model: self.name.clone(), reason: reason.to_string() }
    }

    /// Runs the model on one f32 input and returns its first output.
    pub fn run(&self, input: ArrayD<f32>) -> Result<ArrayD<f32>, ToolkitError> {
        let mut session = self.session().map_err(|e| self.failure(e))?;
        let output = run_first(&mut session, &input).map_err(|e| self.failure(e));
        self.give_back(session);
        output
    }
}

fn run_first(session: &mut Session, input: &ArrayD<f32>) -> ort::Result<ArrayD<f32>> {
    let outputs = session.run(ort::inputs![TensorRef::from_array_view(input)?])?;
    Ok(outputs[0].try_extract_array::<f32>()?.to_owned())
}

/// The first input's named free dimensions, with the sizes `shape` gives them.
fn free_dimensions(session: &Session, shape: &[usize]) -> Vec<(String, i64)> {
    let Some(ValueType::Tensor { dimension_symbols, .. }) = session.inputs().first().map(|i| i.dtype()) else { return Vec::new() };
    dimension_symbols.iter().zip(shape).filter(|(name, _)| !name.is_empty()).map(|(name, size)| (name.clone(), *size as i64)).collect()
}
