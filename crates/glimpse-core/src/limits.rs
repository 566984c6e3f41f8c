//! Request limits, enforced before any work is spent on a request.

use crate::error::GlimpseError;
use crate::media::ImageLimits;
use crate::prompt::{Part, Turn};

#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// Decoded bytes of all inline images of one request together (Gemini: 20 MB).
    pub max_inline_bytes: usize,
    /// Images in one request (Gemini: 3,600).
    pub max_images: usize,
    /// Per-image decoded-size limits (decompression bombs).
    pub image: ImageLimits,
    /// Decoded pixels of all images of one request together, read from their headers: a request of many
    /// small files that each unpack to the per-image maximum is refused before any of them is decoded.
    pub max_request_pixels: u64,
}

impl RequestLimits {
    /// Refuses turns whose images hold more than [`RequestLimits::max_request_pixels`] pixels together.
    pub fn check_request_pixels(&self, turns: &[Turn]) -> Result<(), GlimpseError> {
        let pixels: u64 = turns
            .iter()
            .flat_map(|t| &t.parts)
            .filter_map(|p| if let Part::Image(image) = p { Some(image.source.pixel_count()) } else { None })
            .sum();
        if pixels > self.max_request_pixels {
            return Err(GlimpseError::invalid(format!(
                "The request's images hold {pixels} pixels together; the limit is {} per request. Send fewer or \
                 smaller images.",
                self.max_request_pixels
            )));
        }
        Ok(())
    }
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_inline_bytes: 20 * 1024 * 1024,
            max_images: 3600,
            image: ImageLimits::default(),
            max_request_pixels: 400_000_000,
        }
    }
}
