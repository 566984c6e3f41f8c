//! One ONNX model loaded, optimised and made runnable by tract (pure Rust: the fallback that needs nothing but
//! crates).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use super::InputShape;
use crate::error::ToolkitError;

type Plan = Arc<TypedRunnableModel>;

/// Plans kept for a model planned per input size; past this many the cache starts over.
const MAX_PLANS: usize = 32;

pub(crate) struct Model {
    /// The file's name, for error messages.
    name: String,
    /// The one plan, or the parsed graph that per-size plans are made from.
    plan: Option<Plan>,
    source: Option<InferenceModel>,
    plans: Mutex<HashMap<Vec<usize>, Plan>>,
}

fn load_failure(path: &Path) -> impl Fn(TractError) -> ToolkitError + '_ {
    move |e| ToolkitError::Load { file: path.display().to_string(), reason: format!("{e:#}") }
}

impl Model {
    /// Loads `path` with the first input (f32) of shape `input`.
    pub fn load(path: &Path, input: InputShape) -> Result<Self, ToolkitError> {
        let name = super::file_name(path);
        let fail = load_failure(path);
        let model = tract_onnx::onnx().model_for_path(path).map_err(&fail)?;
        let (plan, source) = match input {
            InputShape::Fixed(shape) => (Some(plan(model, Some(shape)).map_err(&fail)?), None),
            InputShape::FromFile => (Some(plan(model, None).map_err(&fail)?), None),
            InputShape::PerSize => (None, Some(model)),
        };
        Ok(Model { name, plan, source, plans: Mutex::new(HashMap::new()) })
    }

    fn failure(&self, e: TractError) -> ToolkitError {
        ToolkitError::Run { model: self.name.clone(), reason: format!("{e:#}") }
    }

    /// The plan for an input of `shape`.
    fn plan_for(&self, shape: &[usize]) -> Result<Plan, ToolkitError> {
        if let Some(plan) = &self.plan {
            return Ok(plan.clone());
        }
        let source = self.source.as_ref().ok_or_else(|| self.failure(TractError::msg("no model")))?;
        let mut plans = self.plans.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(plan) = plans.get(shape) {
            return Ok(plan.clone());
        }
        let plan = plan(source.clone(), Some(shape)).map_err(|e| self.failure(e))?;
        if plans.len() >= MAX_PLANS {
            plans.clear();
        }
        plans.insert(shape.to_vec(), plan.clone());
        Ok(plan)
    }

    /// Runs the model on one f32 input and returns its first output as an owned f32 array.
    pub fn run(&self, input: tract_ndarray::ArrayD<f32>) -> Result<tract_ndarray::ArrayD<f32>, ToolkitError> {
        let plan = self.plan_for(input.shape())?;
        let outputs = plan.run(tvec!(Tensor::from(input).into())).map_err(|e| self.failure(e))?;
        let first = outputs.into_iter().next().ok_or_else(|| self.failure(TractError::msg("the model returned no output")))?;
        let view = first.to_plain_array_view::<f32>().map_err(|e| self.failure(e))?;
        Ok(view.to_owned())
    }
}

fn plan(mut model: InferenceModel, shape: Option<&[usize]>) -> TractResult<Plan> {
    if let Some(shape) = shape {
        model = model.with_input_fact(0, f32::fact(shape).into())?;
    }
    model.into_optimized()?.into_runnable()
}
