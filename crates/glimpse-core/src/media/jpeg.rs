//! JPEG through libjpeg-turbo (the system's `libturbojpeg`, by the `turbojpeg` crate).
//!
//! Why not the `image` crate's decoder: libjpeg-turbo is what Pillow decodes with, so the pixels match what
//! Hugging Face's processors (and so the reference models) see; it can decode in the DCT domain at 1/2, 1/4 or
//! 1/8 scale, which for a phone photo headed for a model input of a megapixel or less skips most of the work
//! (measured here on a 12 MP photo: 80 ms whole, 41 ms at 1/8, against 93 ms for `image`'s zune-jpeg); and it
//! reports a file cut short, which zune-jpeg answers with a half-grey picture.
//!
//! Anything else TurboJPEG refuses or warns about (CMYK / YCCK, 12-bit data, extraneous bytes) falls back to the
//! `image` crate, which decodes what it can and refuses the rest.

use image::RgbImage;
use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat};

use super::{ImageFormat, MediaError};

/// What a JPEG's header says.
pub(super) struct JpegHeader {
    pub width: u32,
    pub height: u32,
    /// Whether TurboJPEG can decode it to RGB (not CMYK / YCCK).
    pub turbo: bool,
}

fn undecodable(detail: impl std::fmt::Display) -> MediaError {
    MediaError::undecodable(ImageFormat::Jpeg, &detail.to_string())
}

/// libjpeg's warnings that mean pixel data is missing: a truncated file (`JWRN_JPEG_EOF`) or a scan cut short
/// by a marker (`JWRN_HIT_MARKER`). Other warnings (extraneous bytes before a marker, ...) are tolerated, as
/// Pillow tolerates them.
fn is_missing_data(message: &str) -> bool {
    message.contains("Premature end of JPEG file") || message.contains("premature end of data segment")
}

pub(super) fn header(bytes: &[u8]) -> Result<JpegHeader, MediaError> {
    let mut decompressor = Decompressor::new().map_err(undecodable)?;
    let header = decompressor.read_header(bytes).map_err(|e| undecodable(tj_message(&e)))?;
    let (width, height) = (u32::try_from(header.width), u32::try_from(header.height));
    let (Ok(width), Ok(height)) = (width, height) else { return Err(undecodable("its size does not fit")) };
    let turbo = !matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK);
    Ok(JpegHeader { width, height, turbo })
}

/// The DCT-domain scale (1, 2, 4 or 8) that decodes to at least `min_width`×`min_height`, and the size it gives
/// (libjpeg rounds up: ceil(side / scale)).
pub(super) fn scale_for(width: u32, height: u32, min_width: u32, min_height: u32) -> (u32, u32, u32) {
    for scale in [8, 4, 2] {
        let (w, h) = (width.div_ceil(scale), height.div_ceil(scale));
        if w >= min_width && h >= min_height {
            return (scale, w, h);
        }
    }
    (1, width, height)
}

/// Why TurboJPEG gave no image.
pub(super) enum TurboFailure {
    /// Pixel data is missing: the client's 400.
    Missing(MediaError),
    /// Anything else (a warning TurboJPEG reports as a failure, an unsupported variant): try another decoder.
    Other(String),
}

/// Decodes to RGB8 at 1/`scale` of the stored size (before any EXIF orientation).
pub(super) fn decode(bytes: &[u8], header: &JpegHeader, scale: u32) -> Result<RgbImage, TurboFailure> {
    let (width, height) = (header.width.div_ceil(scale) as usize, header.height.div_ceil(scale) as usize);
    let mut decompressor = Decompressor::new().map_err(|e| TurboFailure::Other(e.to_string()))?;
    let mut pixels = vec![0u8; width * height * 3];
    let output = Image { pixels: pixels.as_mut_slice(), width, pitch: width * 3, height, format: PixelFormat::RGB };
    if let Err(e) = decompressor.decompress(bytes, output) {
        let message = tj_message(&e);
        return Err(match is_missing_data(&message) {
            true => TurboFailure::Missing(undecodable("the data is truncated")),
            false => TurboFailure::Other(message),
        });
    }
    RgbImage::from_raw(width as u32, height as u32, pixels)
        .ok_or_else(|| TurboFailure::Other("inconsistent pixel buffer".into()))
}

fn tj_message(e: &turbojpeg::Error) -> String {
    match e {
        turbojpeg::Error::TurboJpegError(message) => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_is_the_smallest_output_that_still_covers_the_target() {
        assert_eq!(scale_for(4032, 3024, 140, 112), (8, 504, 378));
        assert_eq!(scale_for(4032, 3024, 1148, 868), (2, 2016, 1512));
        assert_eq!(scale_for(4032, 3024, 600, 400), (4, 1008, 756));
        assert_eq!(scale_for(448, 448, 448, 448), (1, 448, 448));
        // Rounding up: 1001 / 8 = 125.1 gives 126, enough for 126.
        assert_eq!(scale_for(1001, 1001, 126, 126), (8, 126, 126));
    }
}
