//! Pixels at a model's planned size, kept for the next request with the same image (`--image-cache-bytes`).
//!
//! Keyed by the SHA-256 of the image's bytes and the planned size, so an entry is shared between requests and
//! API keys only for byte-identical images at the same size: nobody can plant pixels for someone else's image.
//! Least recently used entries go first once the pixels held pass the budget.

use std::sync::{Arc, Mutex};

use hashlink::LinkedHashMap;
use image::RgbImage;

use super::{ImageSource, MediaError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    digest: [u8; 32],
    width: u32,
    height: u32,
}

struct Entries {
    map: LinkedHashMap<Key, Arc<RgbImage>>,
    bytes: usize,
}

pub struct PixelCache {
    capacity_bytes: usize,
    entries: Mutex<Entries>,
}

impl PixelCache {
    /// A cache holding at most `capacity_bytes` of pixels; 0 keeps nothing.
    pub fn new(capacity_bytes: usize) -> PixelCache {
        PixelCache { capacity_bytes, entries: Mutex::new(Entries { map: LinkedHashMap::new(), bytes: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The image at `width`×`height`, from the cache or rendered (and then kept) now.
    pub fn pixels(&self, source: &ImageSource, width: u32, height: u32) -> Result<Arc<RgbImage>, MediaError> {
        if self.capacity_bytes == 0 {
            return render(source, width, height).map(Arc::new);
        }
        let key = Key { digest: source.digest(), width, height };
        if let Some(hit) = self.lock().map.to_back(&key) {
            metrics::counter!("glimpse_image_cache_hits_total").increment(1);
            return Ok(hit.clone());
        }
        let rendered = Arc::new(render(source, width, height)?);
        let size = rendered.as_raw().len();
        if size <= self.capacity_bytes {
            let mut entries = self.lock();
            if let Some(old) = entries.map.insert(key, rendered.clone()) {
                entries.bytes -= old.as_raw().len();
            }
            entries.bytes += size;
            while entries.bytes > self.capacity_bytes {
                let Some((_, evicted)) = entries.map.pop_front() else { break };
                entries.bytes -= evicted.as_raw().len();
            }
        }
        Ok(rendered)
    }

    /// Pixels held now, in bytes.
    pub fn held_bytes(&self) -> usize {
        self.lock().bytes
    }
}

/// Decodes one image to its planned size, measured.
fn render(source: &ImageSource, width: u32, height: u32) -> Result<RgbImage, MediaError> {
    let start = std::time::Instant::now();
    let pixels = source.pixels(width, height)?;
    metrics::counter!("glimpse_images_decoded_total").increment(1);
    metrics::histogram!("glimpse_pixel_path_seconds").record(start.elapsed().as_secs_f64());
    Ok(pixels)
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage};

    use super::*;
    use crate::media::{ImageFormat, ImageLimits};

    fn png(seed: u8) -> Vec<u8> {
        let img = RgbImage::from_fn(64, 48, |x, y| Rgb([x as u8 ^ seed, y as u8, seed]));
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    }

    fn source(seed: u8) -> ImageSource {
        ImageSource::probe(png(seed), Some(ImageFormat::Png), &ImageLimits::default()).unwrap()
    }

    #[test]
    fn identical_bytes_share_an_entry_and_the_budget_evicts_the_oldest() {
        let entry = 32 * 24 * 3;
        let cache = PixelCache::new(2 * entry);
        let a = cache.pixels(&source(1), 32, 24).unwrap();
        let again = cache.pixels(&source(1), 32, 24).unwrap();
        assert!(Arc::ptr_eq(&a, &again), "same bytes, same size: one entry");
        let b = cache.pixels(&source(2), 32, 24).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(cache.held_bytes(), 2 * entry);
        cache.pixels(&source(1), 32, 24).unwrap(); // a is now the most recent
        cache.pixels(&source(3), 32, 24).unwrap(); // evicts b
        assert_eq!(cache.held_bytes(), 2 * entry);
        assert!(Arc::ptr_eq(&a, &cache.pixels(&source(1), 32, 24).unwrap()), "a survived");
        assert!(!Arc::ptr_eq(&b, &cache.pixels(&source(2), 32, 24).unwrap()), "b was evicted");
    }

    #[test]
    fn another_size_is_another_entry_and_a_zero_budget_keeps_nothing() {
        let cache = PixelCache::new(1 << 20);
        let small = cache.pixels(&source(1), 16, 12).unwrap();
        let large = cache.pixels(&source(1), 32, 24).unwrap();
        assert_eq!((small.dimensions(), large.dimensions()), ((16, 12), (32, 24)));
        let none = PixelCache::new(0);
        none.pixels(&source(1), 16, 12).unwrap();
        assert_eq!(none.held_bytes(), 0);
    }
}
