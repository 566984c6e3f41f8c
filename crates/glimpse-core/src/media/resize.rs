//! Resampling with `fast_image_resize`: SIMD, fixed-point convolution after Pillow's, so that Catmull-Rom here
//! is Pillow's BICUBIC (a = -0.5, support scaled with the reduction: antialiased), the filter Qwen-VL processors
//! resize with. Measured on this project's 2-core machine, 12 MP → 140×112: 8.6 ms against 126 ms for the
//! `image` crate's generic resampler; 1920×1080 → 1148×868: 4.3 ms against 84 ms.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

/// `src` resampled to exactly `width`×`height` (a copy when the size already matches).
pub fn resize_rgb(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    if src.dimensions() == (width, height) {
        return src.clone();
    }
    let mut dst = RgbImage::new(width, height);
    if width == 0 || height == 0 || src.width() == 0 || src.height() == 0 {
        return dst;
    }
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    // Both images are RGB8 of non-zero size, the only failure modes of `resize` (pixel-type mismatch, empty
    // images) are excluded above; a failure would leave the black image.
    if let Err(e) = Resizer::new().resize(src, &mut dst, &options) {
        tracing::error!(error = %e, "resize failed");
    }
    dst
}
