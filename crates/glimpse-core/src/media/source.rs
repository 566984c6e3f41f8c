//! An image as the client sent it: checked from its header when the request arrives, decoded only when a model
//! needs pixels, and then straight to the size the model wants.
//!
//! `countTokens` needs only the dimensions, which the header gives: no pixel is decoded for it. Generation asks
//! for the planned size ([`ImageSource::pixels`]): a JPEG is decoded in the DCT domain at the smallest of 1/8,
//! 1/4, 1/2 or full scale that still covers it, then resampled with SIMD; other formats are decoded whole and
//! resampled. What needs the original (segmentation masks, the toolkit, `--annotate`) asks for
//! [`ImageSource::decode`].

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use bytes::Bytes;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};
use sha2::{Digest, Sha256};

use super::jpeg::{self, JpegHeader, TurboFailure};
use super::webp;
use super::resize::resize_rgb;
use super::{
    alloc_budget, check_dimensions, decode_heif, decode_raster, sniff, ImageFormat, ImageLimits, MediaError,
    UNRECOGNISED,
};

/// A validated image whose pixels have not been decoded yet.
pub struct ImageSource {
    bytes: Bytes,
    format: ImageFormat,
    /// Size after EXIF orientation: what the model and the client's boxes refer to.
    width: u32,
    height: u32,
    /// EXIF orientation of raster formats (HEIF's own transformations are applied by libheif).
    orientation: Orientation,
    jpeg: Option<JpegHeader>,
    limits: ImageLimits,
    digest: OnceLock<[u8; 32]>,
}

impl std::fmt::Debug for ImageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ImageSource({}, {}x{}, {} bytes)", self.format, self.width, self.height, self.bytes.len())
    }
}

/// Whether an orientation swaps width and height.
fn transposes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    )
}

fn guarded<T>(format: ImageFormat, f: impl FnOnce() -> Result<T, MediaError>) -> Result<T, MediaError> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(MediaError::undecodable(format, "the decoder failed unexpectedly")))
}

impl ImageSource {
    /// Checks `bytes` from their header: the format (against `declared`, the client's MIME type, when given),
    /// the size against `limits`, the orientation. Decodes no pixel. Never panics.
    pub fn probe(bytes: impl Into<Bytes>, declared: Option<ImageFormat>, limits: &ImageLimits) -> Result<ImageSource, MediaError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(MediaError::Undecodable("Unable to process input image: the image data is empty.".into()));
        }
        let actual = sniff(&bytes).ok_or_else(|| MediaError::Undecodable(UNRECOGNISED.into()))?;
        let format = match declared {
            None => actual,
            Some(d) if actual.fulfils(d) => d,
            Some(d) => return Err(MediaError::MimeMismatch { declared: d.mime(), actual: actual.mime() }),
        };
        let (width, height, orientation, jpeg) = guarded(format, || header(&bytes, format, limits))?;
        let (width, height) = if transposes(orientation) { (height, width) } else { (width, height) };
        Ok(ImageSource { bytes, format, width, height, orientation, jpeg, limits: *limits, digest: OnceLock::new() })
    }

    pub fn format(&self) -> ImageFormat {
        self.format
    }

    /// Width after orientation.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height after orientation.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Pixels of the decoded image (what decoding it at full size costs, in pixels).
    pub fn pixel_count(&self) -> u64 {
        self.width as u64 * self.height as u64
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// SHA-256 of the bytes (computed once): images are shared between requests, and between API keys, only
    /// when their bytes are identical.
    pub fn digest(&self) -> [u8; 32] {
        *self.digest.get_or_init(|| Sha256::digest(&self.bytes).into())
    }

    /// The whole image as RGB8, orientation applied, alpha composited over white.
    pub fn decode(&self) -> Result<DynamicImage, MediaError> {
        guarded(self.format, || self.decode_whole())
    }

    /// The image at exactly `width`×`height` (orientation applied): what a model's processor would make of it,
    /// decoded no larger than needed.
    pub fn pixels(&self, width: u32, height: u32) -> Result<RgbImage, MediaError> {
        guarded(self.format, || {
            if let Some(header) = self.jpeg.as_ref().filter(|h| h.turbo) {
                let (min_w, min_h) = if transposes(self.orientation) { (height, width) } else { (width, height) };
                let (scale, ..) = jpeg::scale_for(header.width, header.height, min_w, min_h);
                match jpeg::decode(&self.bytes, header, scale) {
                    Ok(stored) => return Ok(resize_rgb(&self.oriented(stored), width, height)),
                    Err(TurboFailure::Missing(e)) => return Err(e),
                    Err(TurboFailure::Other(why)) => tracing::debug!(%why, "TurboJPEG declined; decoding with image"),
                }
            }
            let whole = self.decode_whole()?;
            Ok(resize_rgb(whole.as_rgb8().ok_or_else(|| MediaError::undecodable(self.format, "not RGB8"))?, width, height))
        })
    }

    fn oriented(&self, stored: RgbImage) -> RgbImage {
        if self.orientation == Orientation::NoTransforms {
            return stored;
        }
        let mut image = DynamicImage::ImageRgb8(stored);
        image.apply_orientation(self.orientation);
        image.into_rgb8()
    }

    fn decode_whole(&self) -> Result<DynamicImage, MediaError> {
        if let Some(header) = self.jpeg.as_ref().filter(|h| h.turbo) {
            match jpeg::decode(&self.bytes, header, 1) {
                Ok(stored) => return Ok(DynamicImage::ImageRgb8(self.oriented(stored))),
                Err(TurboFailure::Missing(e)) => return Err(e),
                Err(TurboFailure::Other(why)) => tracing::debug!(%why, "TurboJPEG declined; decoding with image"),
            }
        }
        match self.format {
            ImageFormat::Heic | ImageFormat::Heif => decode_heif(&self.bytes, self.format, &self.limits),
            ImageFormat::Webp => {
                let (stored_w, stored_h) = if transposes(self.orientation) { (self.height, self.width) } else { (self.width, self.height) };
                match webp::decode_opaque(&self.bytes, stored_w, stored_h) {
                    Some(decoded) => Ok(DynamicImage::ImageRgb8(self.oriented(decoded?))),
                    None => decode_raster(&self.bytes, ImageFormat::Webp, &self.limits),
                }
            }
            format => decode_raster(&self.bytes, format, &self.limits),
        }
    }
}

/// Stored width and height, orientation, and for JPEG TurboJPEG's reading of the header.
fn header(
    bytes: &[u8],
    format: ImageFormat,
    limits: &ImageLimits,
) -> Result<(u32, u32, Orientation, Option<JpegHeader>), MediaError> {
    let Some(raster) = format.raster() else {
        let (width, height) = heif_size(bytes, format)?;
        check_dimensions(width, height, limits)?;
        return Ok((width, height, Orientation::NoTransforms, None));
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), raster);
    let mut header_limits = Limits::default();
    header_limits.max_alloc = Some(alloc_budget(limits.max_pixels));
    reader.limits(header_limits);
    let mut decoder = reader.into_decoder().map_err(|e| super::map_image_err(format, e))?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    // A broken EXIF block must not make an otherwise good image fail: fall back to no transform.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let jpeg = match format {
        // What TurboJPEG cannot read is left to the `image` crate.
        ImageFormat::Jpeg => jpeg::header(bytes).ok().filter(|h| (h.width, h.height) == (width, height)),
        _ => None,
    };
    Ok((width, height, orientation, jpeg))
}

#[cfg(feature = "heif")]
fn heif_size(bytes: &[u8], format: ImageFormat) -> Result<(u32, u32), MediaError> {
    super::heif::size(bytes, format)
}

#[cfg(not(feature = "heif"))]
fn heif_size(_bytes: &[u8], _format: ImageFormat) -> Result<(u32, u32), MediaError> {
    Err(MediaError::HeifUnsupported(super::HEIF_NOT_BUILT.to_string()))
}
