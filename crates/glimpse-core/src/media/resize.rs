//! Resampling with `fast_image_resize`: SIMD, fixed-point convolution after Pillow's, so that Catmull-Rom here
//! is Pillow's BICUBIC (a = -0.5, support scaled with the reduction: antialiased), the filter Qwen-VL processors
//! resize with. Measured on this project's 2-core machine, 12 MP → 140×112: 8.6 ms against 126 ms for the
//! `image` crate's generic resampler; 1920×1080 → 1148×868: 4.3 ms against 84 ms. Bilinear is Pillow's BILINEAR
//! (antialiased the same way), the filter the toolkit's models were prepared with.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

/// A resampling filter, named after Pillow's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    /// Catmull-Rom: Pillow's BICUBIC.
    Bicubic,
    /// Triangle: Pillow's BILINEAR.
    Bilinear,
}

/// `src` resampled with Pillow's BICUBIC to exactly `width`×`height` (a copy when the size already matches).
pub fn resize_rgb(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize_rgb_with(src, width, height, Resample::Bicubic)
}

/// `src` resampled with `filter` to exactly `width`×`height` (a copy when the size already matches).
pub fn resize_rgb_with(src: &RgbImage, width: u32, height: u32, filter: Resample) -> RgbImage {
    if src.dimensions() == (width, height) {
        return src.clone();
    }
    let mut dst = RgbImage::new(width, height);
    if width == 0 || height == 0 || src.width() == 0 || src.height() == 0 {
        return dst;
    }
    let filter = match filter {
        Resample::Bicubic => FilterType::CatmullRom,
        Resample::Bilinear => FilterType::Bilinear,
    };
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    // Both images are RGB8 of non-zero size, the only failure modes of `resize` (pixel-type mismatch, empty
    // images) are excluded above; a failure would leave the black image.
    if let Err(e) = Resizer::new().resize(src, &mut dst, &options) {
        tracing::error!(error = %e, "resize failed");
    }
    dst
}
