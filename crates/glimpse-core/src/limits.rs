//! Request limits, enforced before any work is spent on a request.

use crate::media::ImageLimits;

#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// Decoded bytes of all inline images of one request together (Gemini: 20 MB).
    pub max_inline_bytes: usize,
    /// Images in one request (Gemini: 3,600).
    pub max_images: usize,
    /// Per-image decoded-size limits (decompression bombs).
    pub image: ImageLimits,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { max_inline_bytes: 20 * 1024 * 1024, max_images: 3600, image: ImageLimits::default() }
    }
}
