//! Opaque WebP through libwebp (`libwebp-sys`, built from its bundled sources): the reference decoder, which
//! Pillow also uses. Measured here on a 12 MP lossy photo: 326 ms against 692 ms for the `image` crate's pure-Rust
//! decoder. WebPs with alpha or animation keep going through the `image` crate (alpha is composited over white
//! there like every other format's).

use image::RgbImage;
use libwebp_sys::{VP8StatusCode, WebPBitstreamFeatures, WebPDecodeRGBInto, WebPGetFeatures};

use super::{ImageFormat, MediaError};

/// Decodes an opaque, still WebP of `width`×`height` (the size the header check found); `None` for anything
/// else (alpha, animation, a size that disagrees), which the caller leaves to the `image` crate.
pub(super) fn decode_opaque(bytes: &[u8], width: u32, height: u32) -> Option<Result<RgbImage, MediaError>> {
    // SAFETY: the features struct is plain data that WebPGetFeatures fills; `bytes` outlives the call.
    let mut features: WebPBitstreamFeatures = unsafe { std::mem::zeroed() };
    let status = unsafe { WebPGetFeatures(bytes.as_ptr(), bytes.len(), &mut features) };
    let same_size = (features.width as i64, features.height as i64) == (i64::from(width), i64::from(height));
    if status != VP8StatusCode::VP8_STATUS_OK || features.has_alpha != 0 || features.has_animation != 0 || !same_size {
        return None;
    }
    let stride = width as usize * 3;
    let mut pixels = vec![0u8; stride * height as usize];
    // SAFETY: the output buffer holds exactly `stride * height` bytes for the size libwebp reported, and libwebp
    // writes no more than `pixels.len()`; it returns null on any failure.
    let written = unsafe {
        WebPDecodeRGBInto(bytes.as_ptr(), bytes.len(), pixels.as_mut_ptr(), pixels.len(), stride as i32)
    };
    if written.is_null() {
        return Some(Err(MediaError::undecodable(ImageFormat::Webp, "the data is truncated or corrupt")));
    }
    Some(RgbImage::from_raw(width, height, pixels).ok_or_else(|| MediaError::undecodable(ImageFormat::Webp, "inconsistent size")))
}
