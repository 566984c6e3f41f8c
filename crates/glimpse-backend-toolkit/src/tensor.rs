//! Images into the float tensors the models take.

use std::borrow::Cow;

use glimpse_core::media::{resize_rgb_with, Resample};
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
    /// Per tensor channel: the source channel in the pixel, and `a`, `b` with value = v·a − b.
    fn affine(&self) -> [(usize, f32, f32); 3] {
        std::array::from_fn(|c| (if self.bgr { 2 - c } else { c }, self.scale / self.std[c], self.mean[c] / self.std[c]))
    }
}

/// A 1×C×H×W tensor.
pub(crate) fn nchw(image: &RgbImage, norm: Normalize) -> ArrayD<f32> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let pixels = image.as_raw();
    let mut data = Vec::with_capacity(3 * w * h);
    for (source, a, b) in norm.affine() {
        data.extend(pixels.chunks_exact(3).map(|p| p[source] as f32 * a - b));
    }
    Array4::from_shape_vec((1, 3, h, w), data).expect("sized from the image").into_dyn()
}

/// A 1×H×W×C tensor.
pub(crate) fn nhwc(image: &RgbImage, norm: Normalize) -> ArrayD<f32> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let channels = norm.affine();
    let data = image.as_raw().chunks_exact(3).flat_map(|p| channels.map(|(source, a, b)| p[source] as f32 * a - b)).collect();
    Array4::from_shape_vec((1, h, w, 3), data).expect("sized from the image").into_dyn()
}

/// The image as RGB8, without a copy when it already is.
pub(crate) fn rgb(image: &DynamicImage) -> Cow<'_, RgbImage> {
    match image {
        DynamicImage::ImageRgb8(rgb) => Cow::Borrowed(rgb),
        other => Cow::Owned(other.to_rgb8()),
    }
}

/// `image` resampled to exactly `width`×`height` with Pillow's BILINEAR, the filter the models were prepared with
/// (SIMD, `fast_image_resize`).
pub(crate) fn bilinear(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize_rgb_with(image, width.max(1), height.max(1), Resample::Bilinear)
}

/// `image` scaled (aspect kept) to fit a `size`×`size` square and placed at its top left on black; returns the
/// square and the scale applied (square pixels per original pixel).
pub(crate) fn letterbox(image: &DynamicImage, size: u32) -> (RgbImage, f32) {
    let scale = size as f32 / image.width().max(image.height()).max(1) as f32;
    let (w, h) = (((image.width() as f32 * scale).round() as u32).clamp(1, size), ((image.height() as f32 * scale).round() as u32).clamp(1, size));
    let resized = bilinear(&rgb(image), w, h);
    let mut square = RgbImage::new(size, size);
    image::imageops::replace(&mut square, &resized, 0, 0);
    (square, scale)
}

/// `image` stretched to exactly `width`×`height`.
pub(crate) fn stretch(image: &DynamicImage, width: u32, height: u32) -> RgbImage {
    bilinear(&rgb(image), width, height)
}

/// The shorter side scaled to `size` × 256/224 and the centre `size`×`size` cut out (the usual ImageNet
/// evaluation crop).
pub(crate) fn center_crop(image: &DynamicImage, size: u32) -> RgbImage {
    let short = (size as f32 * 256.0 / 224.0).round();
    let scale = short / image.width().min(image.height()).max(1) as f32;
    let (w, h) = (((image.width() as f32 * scale).round() as u32).max(size), ((image.height() as f32 * scale).round() as u32).max(size));
    let resized = bilinear(&rgb(image), w, h);
    image::imageops::crop_imm(&resized, (w - size) / 2, (h - size) / 2, size, size).to_image()
}
