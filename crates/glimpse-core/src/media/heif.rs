//! HEIC/HEIF decoding through the system libheif (cargo feature `heif`).
//!
//! libheif applies the HEIF transformation properties (`irot`, `imir`, `clap`) while decoding, which is how
//! HEIF expresses orientation; an EXIF orientation tag inside a HEIF is informational only and is ignored, as
//! the HEIF specification requires.

use std::sync::OnceLock;

use image::{DynamicImage, RgbImage, RgbaImage};
use libheif_rs::{ColorSpace, HeifContext, HeifError, HeifErrorCode, LibHeif, RgbChroma};

use super::{check_dimensions, flatten_to_rgb8, ImageFormat, ImageLimits, MediaError};

/// `heif_init` once for the life of the process (it is reference counted; never deinitialised).
fn lib() -> &'static LibHeif {
    static LIB: OnceLock<LibHeif> = OnceLock::new();
    LIB.get_or_init(LibHeif::new)
}

fn map_err(format: ImageFormat, err: HeifError) -> MediaError {
    let detail =
        if err.message.is_empty() { format!("{:?} ({:?})", err.code, err.sub_code) } else { err.message.clone() };
    match err.code {
        HeifErrorCode::UnsupportedFeature | HeifErrorCode::UnsupportedFileType => {
            MediaError::HeifUnsupported(format!("This server cannot decode this {} image: {detail}", format.mime()))
        }
        _ => MediaError::undecodable(format, &detail),
    }
}

/// The size of the primary image as decoded (rotation and cropping applied), from the container alone.
pub(super) fn size(bytes: &[u8], format: ImageFormat) -> Result<(u32, u32), MediaError> {
    lib();
    let ctx = HeifContext::read_from_bytes(bytes).map_err(|e| map_err(format, e))?;
    let handle = ctx.primary_image_handle().map_err(|e| map_err(format, e))?;
    Ok((handle.width(), handle.height()))
}

/// Decode the primary image of a HEIC/HEIF file to RGB8, checking its size before any pixel is decoded.
pub(super) fn decode(bytes: &[u8], format: ImageFormat, limits: &ImageLimits) -> Result<DynamicImage, MediaError> {
    let lib = lib();
    let ctx = HeifContext::read_from_bytes(bytes).map_err(|e| map_err(format, e))?;
    let handle = ctx.primary_image_handle().map_err(|e| map_err(format, e))?;
    // The handle's size already accounts for rotation and cropping: it is the size of the decoded image.
    check_dimensions(handle.width(), handle.height(), limits)?;

    // Alpha is decoded too so that it can be composited over white like every other format.
    let has_alpha = handle.has_alpha_channel();
    let (chroma, channels) = if has_alpha { (RgbChroma::Rgba, 4usize) } else { (RgbChroma::Rgb, 3usize) };
    let img = lib.decode(&handle, ColorSpace::Rgb(chroma), None).map_err(|e| map_err(format, e))?;
    let planes = img.planes();
    let plane = planes
        .interleaved
        .ok_or_else(|| MediaError::undecodable(format, "libheif returned no interleaved RGB plane"))?;
    if usize::from(plane.storage_bits_per_pixel) != 8 * channels {
        return Err(MediaError::undecodable(
            format,
            &format!("libheif returned {} bits per pixel instead of {}", plane.storage_bits_per_pixel, 8 * channels),
        ));
    }
    let (width, height) = (plane.width, plane.height);
    check_dimensions(width, height, limits)?;
    // The coded picture (the HEVC parameter sets) can disagree with the container's `ispe` size, which the
    // limits and every plan were checked against: such a file is refused, not used at a size nobody checked.
    if (width, height) != (handle.width(), handle.height()) {
        return Err(MediaError::undecodable(
            format,
            &format!("the coded picture is {width}x{height} but the file declares {}x{}", handle.width(), handle.height()),
        ));
    }
    let row_bytes = width as usize * channels;
    if plane.stride < row_bytes || plane.data.len() < plane.stride * height as usize {
        return Err(MediaError::undecodable(format, "libheif returned an inconsistent pixel buffer"));
    }
    let mut buf = Vec::with_capacity(row_bytes * height as usize);
    for row in plane.data.chunks(plane.stride).take(height as usize) {
        buf.extend_from_slice(&row[..row_bytes]);
    }
    let inconsistent = || MediaError::undecodable(format, "libheif returned an inconsistent pixel buffer");
    if has_alpha {
        let rgba = DynamicImage::ImageRgba8(RgbaImage::from_raw(width, height, buf).ok_or_else(inconsistent)?);
        Ok(DynamicImage::ImageRgb8(flatten_to_rgb8(&rgba).into_owned()))
    } else {
        Ok(DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, buf).ok_or_else(inconsistent)?))
    }
}
