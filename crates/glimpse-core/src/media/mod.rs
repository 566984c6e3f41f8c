//! The image media pipeline: every image that reaches a model is validated and decoded here.
//!
//! A panic inside a model engine kills its thread, so nothing undecodable may pass: the declared MIME type is
//! parsed strictly, checked against the bytes' magic, the decoded size is checked from the header before any
//! pixel is decoded (decompression bombs), and decoding itself never panics (decoder panics are caught and
//! turned into [`MediaError::Undecodable`]). A request's images are checked when it arrives
//! ([`ImageSource::probe`], header only) and decoded when a model needs pixels, at the size it needs
//! ([`ImageSource::pixels`], through [`PixelCache`]).
//!
//! Pixels are always RGB8 with EXIF orientation applied and any alpha channel composited over white.

use std::borrow::Cow;
use std::fmt;
use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, RgbImage};

mod cache;
#[cfg(feature = "heif")]
mod heif;
mod jpeg;
mod resize;
mod sniff;
mod source;
mod webp;
#[cfg(test)]
mod tests;

pub use cache::PixelCache;
pub use resize::{resize_rgb, resize_rgb_with, Resample};
pub use sniff::sniff;
pub use source::ImageSource;

/// Whether this build can decode HEIC/HEIF (cargo feature `heif`, system libheif).
pub const HEIF_SUPPORTED: bool = cfg!(feature = "heif");

/// The message of [`MediaError::HeifUnsupported`] when the `heif` feature is off.
pub const HEIF_NOT_BUILT: &str = "HEIC/HEIF decoding is not built into this server (cargo feature `heif`)";

/// The image formats the Gemini API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Png,
    Jpeg,
    Webp,
    Heic,
    Heif,
}

impl ImageFormat {
    /// Every supported format, in the order the Gemini documentation lists them.
    pub const ALL: [ImageFormat; 5] =
        [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Webp, ImageFormat::Heic, ImageFormat::Heif];

    /// The canonical MIME type (`image/png`, `image/jpeg`, `image/webp`, `image/heic`, `image/heif`).
    pub fn mime(&self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Webp => "image/webp",
            ImageFormat::Heic => "image/heic",
            ImageFormat::Heif => "image/heif",
        }
    }

    /// HEIC and HEIF share one container; a file declared as either may carry the other's brands.
    pub fn is_heif_family(&self) -> bool {
        matches!(self, ImageFormat::Heic | ImageFormat::Heif)
    }

    /// Whether bytes found to be `self` are what a client declaring `declared` sent: the same format, or both
    /// of the HEIF family. The one rule for inline data and for uploaded files.
    pub fn fulfils(self, declared: ImageFormat) -> bool {
        self == declared || (self.is_heif_family() && declared.is_heif_family())
    }

    fn raster(&self) -> Option<image::ImageFormat> {
        match self {
            ImageFormat::Png => Some(image::ImageFormat::Png),
            ImageFormat::Jpeg => Some(image::ImageFormat::Jpeg),
            ImageFormat::Webp => Some(image::ImageFormat::WebP),
            ImageFormat::Heic | ImageFormat::Heif => None,
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mime())
    }
}

impl std::str::FromStr for ImageFormat {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_mime(s)
    }
}

/// Strict parse of a client-declared MIME type. Accepts exactly `image/png`, `image/jpeg`, `image/webp`,
/// `image/heic` and `image/heif` (case-insensitive, ignoring parameters such as `; charset=...`).
/// `image/jpg` is rejected, as the real Gemini API does.
pub fn parse_mime(mime: &str) -> Result<ImageFormat, MediaError> {
    let essence = mime.split(';').next().unwrap_or("").trim();
    let format = if essence.eq_ignore_ascii_case("image/png") {
        ImageFormat::Png
    } else if essence.eq_ignore_ascii_case("image/jpeg") {
        ImageFormat::Jpeg
    } else if essence.eq_ignore_ascii_case("image/webp") {
        ImageFormat::Webp
    } else if essence.eq_ignore_ascii_case("image/heic") {
        ImageFormat::Heic
    } else if essence.eq_ignore_ascii_case("image/heif") {
        ImageFormat::Heif
    } else {
        return Err(MediaError::UnsupportedMime(mime.trim().to_string()));
    };
    Ok(format)
}

/// Per-image decoded-size limits, checked from the header before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Decoded width × height. Default 100,000,000.
    pub max_pixels: u64,
    /// Decoded width and height, each. Default 30,000.
    pub max_side: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits { max_pixels: 100_000_000, max_side: 30_000 }
    }
}

/// A validated, decoded image.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    /// RGB8, EXIF orientation applied, alpha composited over white.
    pub image: DynamicImage,
    /// The format of the data (the declared one when given; HEIC and HEIF are interchangeable).
    pub format: ImageFormat,
    /// Width after orientation.
    pub original_width: u32,
    /// Height after orientation.
    pub original_height: u32,
}

/// Why an image was refused. Every variant is the client's fault (400 INVALID_ARGUMENT) and its message is
/// written for the client.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("Unsupported MIME type: {0}")]
    UnsupportedMime(String),
    #[error("The image data is {actual} but the declared MIME type is {declared}.")]
    MimeMismatch { declared: &'static str, actual: &'static str },
    #[error("{0}")]
    Undecodable(String),
    #[error(
        "The image is {width}x{height} pixels ({pixels} pixels), more than the {max_pixels} pixels this server accepts per image.",
        pixels = u64::from(*width) * u64::from(*height)
    )]
    TooManyPixels { width: u32, height: u32, max_pixels: u64 },
    /// One side is longer than [`ImageLimits::max_side`] (the pixel count may still be within limits).
    #[error("The image is {width}x{height} pixels; this server accepts at most {max_side} pixels per side.")]
    SideTooLong { width: u32, height: u32, max_side: u32 },
    #[error("{0}")]
    HeifUnsupported(String),
}

impl MediaError {
    fn undecodable(format: ImageFormat, detail: &str) -> MediaError {
        let detail = detail.trim().trim_end_matches('.');
        MediaError::Undecodable(format!(
            "Unable to process input image: the {} data is invalid ({detail}).",
            format.mime()
        ))
    }
}

const UNRECOGNISED: &str = "Unable to process input image: the data is not a PNG, JPEG, WEBP, HEIC or HEIF image.";

/// Decode `bytes` into a validated RGB8 image, whole: [`ImageSource::probe`] then [`ImageSource::decode`].
///
/// `declared` is the client's MIME type (already parsed with [`parse_mime`]) or `None`, in which case the
/// format is sniffed. Errors: the declared type does not match the bytes' magic ([`MediaError::MimeMismatch`]),
/// unknown bytes or truncated/corrupt data ([`MediaError::Undecodable`]), a decoded size over the limits
/// ([`MediaError::TooManyPixels`], [`MediaError::SideTooLong`], checked from the header before the pixels are
/// decoded), HEIC/HEIF without the `heif` feature ([`MediaError::HeifUnsupported`]). Never panics.
pub fn decode_image(
    bytes: &[u8],
    declared: Option<ImageFormat>,
    limits: &ImageLimits,
) -> Result<DecodedImage, MediaError> {
    let source = ImageSource::probe(bytes.to_vec(), declared, limits)?;
    let image = source.decode()?;
    let (original_width, original_height) = (image.width(), image.height());
    Ok(DecodedImage { image, format: source.format(), original_width, original_height })
}

/// The size check shared by every decoder; called with the header's dimensions.
pub(crate) fn check_dimensions(width: u32, height: u32, limits: &ImageLimits) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::Undecodable(format!(
            "Unable to process input image: the image is {width}x{height} pixels."
        )));
    }
    // Pixel count first: a bomb that breaks both limits is reported by its pixel count.
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(MediaError::TooManyPixels { width, height, max_pixels: limits.max_pixels });
    }
    if width > limits.max_side || height > limits.max_side {
        return Err(MediaError::SideTooLong { width, height, max_side: limits.max_side });
    }
    Ok(())
}

/// Generous allocation budget for decoding `pixels` pixels: the decoded buffer at up to 16 bytes per pixel
/// (RGBA16 plus decoder working planes) and slack for metadata chunks.
fn alloc_budget(pixels: u64) -> u64 {
    pixels.saturating_mul(16).saturating_add(256 << 20)
}

#[cfg(feature = "heif")]
fn decode_heif(bytes: &[u8], format: ImageFormat, limits: &ImageLimits) -> Result<DynamicImage, MediaError> {
    heif::decode(bytes, format, limits)
}

#[cfg(not(feature = "heif"))]
fn decode_heif(_bytes: &[u8], _format: ImageFormat, _limits: &ImageLimits) -> Result<DynamicImage, MediaError> {
    Err(MediaError::HeifUnsupported(HEIF_NOT_BUILT.to_string()))
}

fn map_image_err(format: ImageFormat, err: ImageError) -> MediaError {
    let detail = match &err {
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => "the data is truncated".to_string(),
        ImageError::Limits(_) => format!("decoding would exceed this server's memory limit: {err}"),
        _ => err.to_string(),
    };
    MediaError::undecodable(format, &detail)
}

/// PNG, WEBP, and JPEG that TurboJPEG declined, through the `image` crate.
fn decode_raster(bytes: &[u8], format: ImageFormat, limits: &ImageLimits) -> Result<DynamicImage, MediaError> {
    let raster = format.raster().ok_or_else(|| MediaError::undecodable(format, "not a raster format"))?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), raster);
    let mut header_limits = Limits::default();
    header_limits.max_alloc = Some(alloc_budget(limits.max_pixels));
    reader.limits(header_limits);
    // Parses the header only; no pixel data is decoded yet.
    let mut decoder = reader.into_decoder().map_err(|e| map_image_err(format, e))?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;

    let mut pixel_limits = Limits::default();
    pixel_limits.max_alloc = Some(alloc_budget(u64::from(width) * u64::from(height)));
    decoder.set_limits(pixel_limits).map_err(|e| map_image_err(format, e))?;

    // A broken EXIF block must not make an otherwise good image fail: fall back to no transform.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let decoded = DynamicImage::from_decoder(decoder).map_err(|e| map_image_err(format, e))?;
    let mut rgb = DynamicImage::ImageRgb8(flatten_to_rgb8(&decoded).into_owned());
    drop(decoded);
    rgb.apply_orientation(orientation);
    Ok(rgb)
}

/// RGB8 view of any image; an alpha channel is composited over white (what HF processors' `convert_to_rgb`
/// does: transparent pixels often carry black RGB, which would otherwise turn e.g. black-on-transparent text
/// into a black square).
pub(crate) fn flatten_to_rgb8(img: &DynamicImage) -> Cow<'_, RgbImage> {
    if let DynamicImage::ImageRgb8(rgb) = img {
        return Cow::Borrowed(rgb);
    }
    if !img.color().has_alpha() {
        return Cow::Owned(img.to_rgb8());
    }
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for px in rgba.pixels() {
        let a = u32::from(px[3]);
        for &c in &px.0[..3] {
            out.push(((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    Cow::Owned(RgbImage::from_raw(w, h, out).expect("buffer sized from the dimensions"))
}

/// Resize to exactly `width`×`height` with Catmull-Rom (Pillow's BICUBIC, [`resize_rgb`]), returning RGB8.
/// Non-RGB8 input is converted first (alpha over white). Returns a copy when the size already matches.
pub fn resize_exact(img: &DynamicImage, width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(resize_rgb(&flatten_to_rgb8(img), width, height))
}
