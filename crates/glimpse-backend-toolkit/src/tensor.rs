//! Images into the float tensors the models take.

use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use tract_onnx::prelude::tract_ndarray::{Array4, ArrayD};

/// How a model wants pixel values: `(v * scale - mean[c]) / std[c]` per channel, in RGB or BGR order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Normalize {
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub bgr: bool,
}

impl Normalize {
    fn apply(&self, pixel: [u8; 3], channel: usize) -> f32 {
        let source = if self.bgr { 2 - channel } else { channel };
        (pixel[source] as f32 * self.scale - self.mean[channel]) / self.std[channel]
    }
}

/// A 1×C×H×W tensor.
pub(crate) fn nchw(image: &RgbImage, norm: Normalize) -> ArrayD<f32> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    Array4::from_shape_fn((1, 3, h, w), |(_, c, y, x)| norm.apply(image.get_pixel(x as u32, y as u32).0, c)).into_dyn()
}

/// A 1×H×W×C tensor.
pub(crate) fn nhwc(image: &RgbImage, norm: Normalize) -> ArrayD<f32> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    Array4::from_shape_fn((1, h, w, 3), |(_, y, x, c)| norm.apply(image.get_pixel(x as u32, y as u32).0, c)).into_dyn()
}

/// `image` scaled (aspect kept) to fit a `size`×`size` square and placed at its top left on black; returns the
/// square and the scale applied (square pixels per original pixel).
pub(crate) fn letterbox(image: &DynamicImage, size: u32) -> (RgbImage, f32) {
    let scale = size as f32 / image.width().max(image.height()).max(1) as f32;
    let (w, h) = (((image.width() as f32 * scale).round() as u32).clamp(1, size), ((image.height() as f32 * scale).round() as u32).clamp(1, size));
    let resized = image.resize_exact(w, h, FilterType::Triangle).to_rgb8();
    let mut square = RgbImage::new(size, size);
    image::imageops::replace(&mut square, &resized, 0, 0);
    (square, scale)
}

/// `image` stretched to exactly `width`×`height`.
pub(crate) fn stretch(image: &DynamicImage, width: u32, height: u32) -> RgbImage {
    image.resize_exact(width, height, FilterType::Triangle).to_rgb8()
}

/// The shorter side scaled to `size` × 256/224 and the centre `size`×`size` cut out (the usual ImageNet
/// evaluation crop).
pub(crate) fn center_crop(image: &DynamicImage, size: u32) -> RgbImage {
    let short = (size as f32 * 256.0 / 224.0).round();
    let scale = short / image.width().min(image.height()).max(1) as f32;
    let (w, h) = (((image.width() as f32 * scale).round() as u32).max(size), ((image.height() as f32 * scale).round() as u32).max(size));
    let resized = image.resize_exact(w, h, FilterType::Triangle).to_rgb8();
    image::imageops::crop_imm(&resized, (w - size) / 2, (h - size) / 2, size, size).to_image()
}
