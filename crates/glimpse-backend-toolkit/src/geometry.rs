//! Boxes in image pixels: overlap, non-maximum suppression, and where a box sits in the picture (for
//! captions).

/// A box in pixels of the original image, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelBox {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl PixelBox {
    pub fn area(&self) -> f32 {
        (self.x1 - self.x0).max(0.0) * (self.y1 - self.y0).max(0.0)
    }

    pub fn iou(&self, other: &PixelBox) -> f32 {
        let inter = PixelBox {
            x0: self.x0.max(other.x0),
            y0: self.y0.max(other.y0),
            x1: self.x1.min(other.x1),
            y1: self.y1.min(other.y1),
        }
        .area();
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    /// Clamped to a `width`×`height` image.
    pub fn clamp(&self, width: u32, height: u32) -> PixelBox {
        let (w, h) = (width as f32, height as f32);
        PixelBox { x0: self.x0.clamp(0.0, w), y0: self.y0.clamp(0.0, h), x1: self.x1.clamp(0.0, w), y1: self.y1.clamp(0.0, h) }
    }

    /// Gemini's `box_2d`: [ymin, xmin, ymax, xmax] on a 0–1000 grid of the image.
    pub fn to_gemini(&self, width: u32, height: u32) -> [i64; 4] {
        glimpse_core::grounding::pixels_to_gemini_box(self.to_array(), (width, height))
    }

    /// The box as the mask model's (x0, y0, x1, y1).
    pub fn to_array(&self) -> [f64; 4] {
        [self.x0 as f64, self.y0 as f64, self.x1 as f64, self.y1 as f64]
    }

    /// Where the box's centre lies, in words ("in the upper left", "in the centre", …).
    pub fn position_words(&self, width: u32, height: u32) -> &'static str {
        let third = |v: f32, size: u32| ((v / size.max(1) as f32) * 3.0).floor().clamp(0.0, 2.0) as usize;
        let column = third((self.x0 + self.x1) / 2.0, width);
        let row = third((self.y0 + self.y1) / 2.0, height);
        const WORDS: [[&str; 3]; 3] = [
            ["in the upper left", "at the top", "in the upper right"],
            ["on the left", "in the centre", "on the right"],
            ["in the lower left", "at the bottom", "in the lower right"],
        ];
        WORDS[row][column]
    }
}

/// Greedy non-maximum suppression: `items` sorted by score (best first) keep only those that overlap no
/// better-scored kept item of the same class by more than `max_iou`.
pub fn non_max_suppression<T>(mut items: Vec<T>, max_iou: f32, key: impl Fn(&T) -> (usize, f32, PixelBox)) -> Vec<T> {
    items.sort_by(|a, b| key(b).1.total_cmp(&key(a).1));
    let mut kept: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        let (class, _, bbox) = key(&item);
        if kept.iter().all(|k| {
            let (kc, _, kb) = key(k);
            kc != class || kb.iou(&bbox) <= max_iou
        }) {
            kept.push(item);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x0: f32, y0: f32, x1: f32, y1: f32) -> PixelBox {
        PixelBox { x0, y0, x1, y1 }
    }

    #[test]
    fn overlap_and_suppression() {
        assert!((b(0.0, 0.0, 10.0, 10.0).iou(&b(5.0, 0.0, 15.0, 10.0)) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(b(0.0, 0.0, 1.0, 1.0).iou(&b(2.0, 2.0, 3.0, 3.0)), 0.0);
        let items = vec![(0, 0.5, b(1.0, 0.0, 11.0, 10.0)), (0, 0.9, b(0.0, 0.0, 10.0, 10.0)), (1, 0.4, b(0.0, 0.0, 10.0, 10.0))];
        let kept = non_max_suppression(items, 0.5, |i| *i);
        assert_eq!(kept.iter().map(|i| i.1).collect::<Vec<_>>(), [0.9, 0.4]);
    }

    #[test]
    fn gemini_boxes_and_positions() {
        assert_eq!(b(100.0, 50.0, 300.0, 100.0).to_gemini(400, 200), [250, 250, 500, 750]);
        assert_eq!(b(0.0, 0.0, 10.0, 10.0).position_words(300, 300), "in the upper left");
        assert_eq!(b(140.0, 140.0, 160.0, 160.0).position_words(300, 300), "in the centre");
        assert_eq!(b(250.0, 250.0, 300.0, 300.0).position_words(300, 300), "in the lower right");
    }
}
