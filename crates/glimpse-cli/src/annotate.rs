//! `glimpse ask --annotate`: the image with the answer's Gemini detections drawn on it: a labelled box per
//! item and, where the item has a `mask`, its probability map as a translucent fill inside the box; a labelled
//! dot per item of a pointing answer (`point`, `[y, x]` on 0–1000).

use ab_glyph::{FontRef, PxScale};
use anyhow::Context;
use base64::Engine as _;
use glimpse_core::grounding::{gemini_box_to_pixels, pixel_crop, GEMINI_BOX_KEY, GEMINI_POINT_KEY};
use image::{DynamicImage, Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_filled_rect_mut, draw_hollow_rect_mut, draw_text_mut, text_size};
use imageproc::rect::Rect;
use serde_json::Value;

/// DejaVu Sans Mono (free licence, assets/DejaVu-LICENSE), embedded so labels render on any machine.
const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");

/// Box colours, in the order of the answer's items.
pub const PALETTE: [[u8; 3]; 8] =
    [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60]];

/// The answer's items that carry a `box_2d` or a `point`, if there is at least one (the answer may sit in a
/// ```json fence).
fn detections(answer: &str) -> Option<Vec<Value>> {
    let body = answer.trim().trim_start_matches("```json").trim_start_matches("```").trim_end_matches("```");
    let items: Vec<Value> = serde_json::from_str(body.trim()).ok()?;
    let drawable: Vec<Value> =
        items.into_iter().filter(|item| numbers::<4>(item, GEMINI_BOX_KEY).is_some() || numbers::<2>(item, GEMINI_POINT_KEY).is_some()).collect();
    (!drawable.is_empty()).then_some(drawable)
}

/// `item[key]` as N integers (a box or a point), if it is one.
fn numbers<const N: usize>(item: &Value, key: &str) -> Option<[i64; N]> {
    let values: Vec<i64> = item.get(key)?.as_array()?.iter().filter_map(Value::as_i64).collect();
    values.try_into().ok()
}

/// How strongly a mask of probability 1 tints the image.
const MASK_OPACITY: f32 = 0.5;

/// Gemini's documented detection prompt, which every model Glimpse serves answers with boxes.
const DETECTION_PROMPT: &str =
    "Detect the all of the prominent items in the image. The box_2d should be [ymin, xmin, ymax, xmax] normalized to 0-1000.";

pub fn annotate(image: &DynamicImage, answer: &str) -> anyhow::Result<RgbImage> {
    let items = detections(answer).ok_or_else(|| {
        anyhow::anyhow!("--annotate: the answer has no boxes or points to draw; ask for boxes, e.g. glimpse ask IMAGE \"{DETECTION_PROMPT}\" --annotate OUT.png")
    })?;
    let font = FontRef::try_from_slice(FONT).context("loading the embedded font")?;
    let mut canvas = image.to_rgb8();
    let size = (canvas.width(), canvas.height());
    let scale = PxScale::from((size.0.max(size.1) as f32 / 40.0).clamp(12.0, 32.0));
    for (index, item) in items.iter().enumerate() {
        let color = Rgb(PALETTE[index % PALETTE.len()]);
        let label = item.get("label").and_then(Value::as_str).filter(|l| !l.is_empty());
        if let Some([y, x]) = numbers::<2>(item, GEMINI_POINT_KEY) {
            let [px, py, ..] = gemini_box_to_pixels([y, x, y, x], size).map(|v| v.round() as i32);
            let radius = (size.0.max(size.1) as i32 / 120).max(4);
            draw_filled_circle_mut(&mut canvas, (px, py), radius + 2, Rgb([255, 255, 255]));
            draw_filled_circle_mut(&mut canvas, (px, py), radius, color);
            if let Some(label) = label {
                let (tw, th) = text_size(scale, &font, label);
                let (tx, ty) = (px + radius + 4, (py - th as i32 / 2 - 2).max(0));
                draw_filled_rect_mut(&mut canvas, Rect::at(tx, ty).of_size(tw + 4, th + 4), color);
                draw_text_mut(&mut canvas, Rgb([255, 255, 255]), tx + 2, ty + 2, scale, &font, label);
            }
            continue;
        }
        let Some(gemini) = numbers::<4>(item, GEMINI_BOX_KEY) else {
            continue;
        };
        let (x0, y0, x1, y1) = pixel_crop(gemini_box_to_pixels(gemini, size), size);
        if let Some(mask) = item.get("mask").and_then(Value::as_str) {
            tint(&mut canvas, mask, (x0, y0, x1, y1), color)?;
        }
        let (w, h) = (x1 - x0, y1 - y0);
        draw_hollow_rect_mut(&mut canvas, Rect::at(x0 as i32, y0 as i32).of_size(w, h), color);
        if w > 2 && h > 2 {
            draw_hollow_rect_mut(&mut canvas, Rect::at(x0 as i32 + 1, y0 as i32 + 1).of_size(w - 2, h - 2), color);
        }
        if let Some(label) = label {
            let (tw, th) = text_size(scale, &font, label);
            let ty = (y0 as i32 - th as i32 - 4).max(0);
            draw_filled_rect_mut(&mut canvas, Rect::at(x0 as i32, ty).of_size(tw + 4, th + 4), color);
            draw_text_mut(&mut canvas, Rgb([255, 255, 255]), x0 as i32 + 2, ty + 2, scale, &font, label);
        }
    }
    Ok(canvas)
}

/// Blends `color` into the box in proportion to the mask's probability (resized to the box if needed).
fn tint(canvas: &mut RgbImage, mask: &str, (x0, y0, x1, y1): (u32, u32, u32, u32), color: Rgb<u8>) -> anyhow::Result<()> {
    let data = mask.strip_prefix("data:image/png;base64,").unwrap_or(mask);
    let png = base64::engine::general_purpose::STANDARD.decode(data).context("a mask is not base64")?;
    let mask = image::load_from_memory(&png).context("a mask is not an image")?.to_luma8();
    let mask = if mask.dimensions() == (x1 - x0, y1 - y0) {
        mask
    } else {
        image::imageops::resize(&mask, x1 - x0, y1 - y0, image::imageops::FilterType::Triangle)
    };
    for (x, y, p) in mask.enumerate_pixels() {
        let alpha = MASK_OPACITY * p[0] as f32 / 255.0;
        let pixel = canvas.get_pixel_mut(x0 + x, y0 + y);
        for c in 0..3 {
            pixel[c] = (pixel[c] as f32 * (1.0 - alpha) + color[c] as f32 * alpha).round() as u8;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma};

    fn png_data_url(mask: &GrayImage) -> String {
        let mut png = Vec::new();
        mask.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png))
    }

    #[test]
    fn answers_without_boxes_say_which_prompt_gives_them() {
        let image = DynamicImage::ImageRgb8(RgbImage::from_pixel(40, 20, Rgb([255, 255, 255])));
        for answer in ["A dog next to a bicycle.", "[]", r#"[{"label": "dog"}]"#, r#"{"box_2d": [1, 2, 3, 4]}"#] {
            let error = annotate(&image, answer).unwrap_err().to_string();
            assert!(error.contains("has no boxes or points") && error.contains("The box_2d should be"), "{answer}: {error}");
        }
        // A point is a dot of the item's colour at [y, x] (0-1000): here x 250 → 10 px, y 500 → 10 px.
        let pointed = annotate(&image, r#"[{"point": [500, 250], "label": "p"}]"#).unwrap();
        assert_eq!(*pointed.get_pixel(10, 10), Rgb(PALETTE[0]));
        assert_eq!(*pointed.get_pixel(35, 2), Rgb([255, 255, 255]), "far from the dot the image is untouched");
        // Gemini's answers often sit in a ```json fence.
        let fenced = "```json\n[{\"box_2d\": [0, 0, 500, 500], \"label\": \"a\"}]\n```";
        assert_eq!(*annotate(&image, fenced).unwrap().get_pixel(0, 0), Rgb(PALETTE[0]));
    }

    #[test]
    fn boxes_labels_and_masks_land_where_the_json_says() {
        let original = DynamicImage::ImageRgb8(RgbImage::from_pixel(400, 200, Rgb([255, 255, 255])));
        // Box 0: x 100..300 of 400, y 100..180 of 200 → pixels (40..120, 50..90); box 1 with a half-on mask:
        // x 600..900 → 240..360, y 500..900 → 100..180.
        let mut mask = GrayImage::from_pixel(120, 80, Luma([0]));
        for y in 0..80 {
            for x in 60..120 {
                mask.put_pixel(x, y, Luma([255]));
            }
        }
        let answer = serde_json::json!([
            {"box_2d": [250, 100, 450, 300], "label": "left"},
            {"box_2d": [500, 600, 900, 900], "mask": png_data_url(&mask), "label": "right"}
        ])
        .to_string();
        let drawn = annotate(&original, &answer).unwrap();
        let [c0, c1] = [Rgb(PALETTE[0]), Rgb(PALETTE[1])];
        // Box edges, two pixels wide, exactly at the JSON's coordinates.
        for (x, y) in [(40, 60), (41, 70), (119, 70), (118, 70), (80, 89), (80, 88)] {
            assert_eq!(*drawn.get_pixel(x, y), c0, "box 0 edge at ({x}, {y})");
        }
        for (x, y) in [(240, 150), (359, 150), (300, 179)] {
            assert_eq!(*drawn.get_pixel(x, y), c1, "box 1 edge at ({x}, {y})");
        }
        // Just outside the boxes (and away from the labels) nothing changed.
        for (x, y) in [(39, 70), (120, 70), (80, 90), (239, 150), (360, 150), (300, 180)] {
            assert_eq!(*drawn.get_pixel(x, y), Rgb([255, 255, 255]), "outside at ({x}, {y})");
        }
        // Inside box 0 (no mask): untouched; inside box 1: tinted where the mask is on, not where it is off.
        assert_eq!(*drawn.get_pixel(80, 70), Rgb([255, 255, 255]));
        assert_eq!(*drawn.get_pixel(260, 150), Rgb([255, 255, 255]), "mask off");
        let tinted = drawn.get_pixel(340, 150);
        let expected: Vec<u8> = (0..3).map(|c| ((255.0 + PALETTE[1][c] as f32) / 2.0).round() as u8).collect();
        assert_eq!(tinted.0.to_vec(), expected, "mask on: half the box colour");
        // The label sits just above its box.
        assert!((0..30).any(|x| *drawn.get_pixel(40 + x, 45) == c0), "label background above box 0");
    }
}
