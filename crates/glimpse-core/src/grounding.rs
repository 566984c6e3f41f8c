//! Object detection in Gemini's format whatever the model family's native convention.
//!
//! Gemini answers `box_2d` = [ymin, xmin, ymax, xmax] on a 0–1000 grid of the original image. Open models
//! speak other dialects: Qwen2.5-VL writes `bbox_2d` = [x1, y1, x2, y2] in pixels of its *resized* input, Qwen3-VL
//! the same order on a 0–1000 grid. A backend that knows its family's [`BoxConvention`] constrains a detection
//! answer to the native form (so it always parses and the convention is unambiguous) and rewrites it with
//! [`to_gemini_answer`] before the client sees it.
//!
//! When it applies (documented in the README): the last user turn's text asks for boxes (`box_2d`, as the Gemini
//! documentation's detection and segmentation prompts do, or "bounding box" / "bbox") or for points (Gemini's
//! pointing prompt, "point to …": Qwen's `point_2d` [x, y] becomes Gemini's `point` [y, x] on 0–1000). The rule
//! reads only the prompt, so countTokens and generateContent agree on it.

use std::collections::VecDeque;
use std::future::Future;

use base64::Engine as _;
use futures::StreamExt;
use image::{DynamicImage, GrayImage};
use serde_json::{json, Map, Value};

use crate::engine::{GenerationEvent, GenerationStream};
use crate::error::GlimpseError;
use crate::prompt::Prompt;

/// The key Gemini answers boxes under.
pub const GEMINI_BOX_KEY: &str = "box_2d";
/// Objects one detection answer may list (Gemini's own prompts ask for at most 25).
const MAX_DETECTIONS: usize = 50;
/// Characters of one label.
const MAX_LABEL_CHARS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxConvention {
    /// `box_2d` [ymin, xmin, ymax, xmax], 0–1000 of the original image (Gemini, and models trained on its format).
    Gemini,
    /// `bbox_2d` [x1, y1, x2, y2] in pixels of the model's resized input (Qwen2-VL, Qwen2.5-VL).
    QwenInputPixels,
    /// `bbox_2d` [x1, y1, x2, y2] on a 0–1000 grid (Qwen3-VL).
    QwenThousandths,
}

/// What a grounded answer lists: boxes (`box_2d`) or points (`point`, Gemini's pointing answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grounded {
    Boxes,
    Points,
}

impl Grounded {
    /// The grounded answer a prompt asks for, if any (boxes win when it asks for both).
    pub fn of(prompt: &Prompt) -> Option<Grounded> {
        if is_detection_prompt(prompt) {
            Some(Grounded::Boxes)
        } else if is_pointing_prompt(prompt) {
            Some(Grounded::Points)
        } else {
            None
        }
    }

    /// Numbers in one box or point.
    fn arity(self) -> usize {
        match self {
            Grounded::Boxes => 4,
            Grounded::Points => 2,
        }
    }

    /// The key Gemini answers it under.
    fn gemini_key(self) -> &'static str {
        match self {
            Grounded::Boxes => GEMINI_BOX_KEY,
            Grounded::Points => GEMINI_POINT_KEY,
        }
    }
}

/// An image as the client sent it and as the model saw it (width, height).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageGeometry {
    pub original: (u32, u32),
    pub model_input: (u32, u32),
}

impl BoxConvention {
    /// The key the family writes boxes (or points) under.
    pub fn native_key(self, grounded: Grounded) -> &'static str {
        match (self, grounded) {
            (BoxConvention::Gemini, _) => grounded.gemini_key(),
            (BoxConvention::QwenInputPixels | BoxConvention::QwenThousandths, Grounded::Boxes) => "bbox_2d",
            (BoxConvention::QwenInputPixels | BoxConvention::QwenThousandths, Grounded::Points) => "point_2d",
        }
    }

    /// A native point ([x, y] for Qwen, [y, x] for Gemini) → Gemini's [y, x] on 0–1000, clamped.
    pub fn point_to_gemini(self, [a, b]: [f64; 2], image: ImageGeometry) -> [i64; 2] {
        let [y, x, ..] = match self {
            BoxConvention::Gemini => on_grid([a, b, a, b]),
            BoxConvention::QwenInputPixels => pixels_to_gemini_box([a, b, a, b], image.model_input),
            BoxConvention::QwenThousandths => on_grid([b, a, b, a]),
        };
        [y, x]
    }

    /// A native box → Gemini's [ymin, xmin, ymax, xmax] on 0–1000, clamped and ordered.
    pub fn to_gemini(self, native: [f64; 4], image: ImageGeometry) -> [i64; 4] {
        let [a, b, c, d] = native;
        match self {
            BoxConvention::Gemini => on_grid([a, b, c, d]),
            BoxConvention::QwenInputPixels => pixels_to_gemini_box(native, image.model_input),
            BoxConvention::QwenThousandths => on_grid([b, a, d, c]),
        }
    }

    /// The largest coordinate the family writes for `image`.
    fn coordinate_limit(self, image: ImageGeometry) -> u32 {
        match self {
            BoxConvention::QwenInputPixels => image.model_input.0.max(image.model_input.1),
            BoxConvention::Gemini | BoxConvention::QwenThousandths => 1000,
        }
    }

    /// JSON Schema of a grounded answer in the native form: a list of `{<key>: [4 or 2 integers], label}`, with
    /// coordinates bounded by the image and short labels, so even a weak model's answer ends and parses. The
    /// model is never asked for mask data: a mask model fills `mask` afterwards.
    pub fn schema(self, grounded: Grounded, image: ImageGeometry) -> Value {
        let coordinate = json!({"type": "integer", "minimum": 0, "maximum": self.coordinate_limit(image)});
        let (key, arity) = (self.native_key(grounded), grounded.arity());
        json!({
            "type": "array",
            "maxItems": MAX_DETECTIONS,
            "items": {
                "type": "object",
                "properties": {
                    key: {"type": "array", "items": coordinate, "minItems": arity, "maxItems": arity},
                    "label": {"type": "string", "maxLength": MAX_LABEL_CHARS}
                },
                "required": [key, "label"],
                "additionalProperties": false
            }
        })
    }
}

/// [ymin, xmin, ymax, xmax] in thousandths → Gemini's integer box, clamped to 0–1000 and ordered.
fn on_grid([ymin, xmin, ymax, xmax]: [f64; 4]) -> [i64; 4] {
    let grid = |v: f64| v.round().clamp(0.0, 1000.0) as i64;
    [grid(ymin.min(ymax)), grid(xmin.min(xmax)), grid(ymin.max(ymax)), grid(xmin.max(xmax))]
}

/// A box in pixels (x0, y0, x1, y1) of a `size` (width, height) image → Gemini's `box_2d`: the one conversion
/// every backend's pixel boxes go through (the inverse of [`gemini_box_to_pixels`]).
pub fn pixels_to_gemini_box([x0, y0, x1, y1]: [f64; 4], size: (u32, u32)) -> [i64; 4] {
    let (w, h) = (size.0.max(1) as f64, size.1.max(1) as f64);
    on_grid([y0 / h * 1000.0, x0 / w * 1000.0, y1 / h * 1000.0, x1 / w * 1000.0])
}

/// A Gemini box back to pixels of the original image: (x0, y0, x1, y1).
pub fn gemini_box_to_pixels(gemini: [i64; 4], original: (u32, u32)) -> [f64; 4] {
    let [ymin, xmin, ymax, xmax] = gemini.map(|v| v as f64 / 1000.0);
    let (w, h) = (original.0 as f64, original.1 as f64);
    [xmin * w, ymin * h, xmax * w, ymax * h]
}

/// Words that ask for boxes in any phrasing: Gemini's `box_2d`, and the "bounding boxes" / "bbox" of the OpenAI
/// and Ollama examples users copy. ("Detect" or "find" alone do not: a vision-language model answers "find the
/// text that…" in words; the toolkit reads those as detection itself.)
const BOX_WORDS: &[&str] = &[GEMINI_BOX_KEY, "bounding box", "bounding-box", "bbox"];

/// Whether the prompt asks for boxes, which Glimpse answers in Gemini's format (see the module doc).
pub fn is_detection_prompt(prompt: &Prompt) -> bool {
    let text = prompt.last_user_text().to_ascii_lowercase();
    BOX_WORDS.iter().any(|word| text.contains(word))
}

/// The key of a Gemini point: `[y, x]` on the 0–1000 grid.
pub const GEMINI_POINT_KEY: &str = "point";

/// Whether the prompt asks for points rather than boxes: Gemini's pointing prompt (`"point": <point>` in
/// `[y, x]` format) or plain "point to / at …".
pub fn is_pointing_prompt(prompt: &Prompt) -> bool {
    let text = prompt.last_user_text().to_ascii_lowercase();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    !is_detection_prompt(prompt)
        && (text.contains("\"point\"") || text.contains("point_2d") || ["point to ", "point at ", "pointing to ", "point out "].iter().any(|p| text.contains(p)))
}

/// Gemini's point (`[y, x]` on 0–1000) at the centre of a Gemini box.
pub fn box_centre(gemini_box: [i64; 4]) -> [i64; 2] {
    let [ymin, xmin, ymax, xmax] = gemini_box;
    [(ymin + ymax) / 2, (xmin + xmax) / 2]
}

/// Whether a detection prompt also asks for segmentation masks (the segmentation prompt's `"mask"` key).
pub fn wants_masks(prompt: &Prompt) -> bool {
    let text = prompt.last_user_text().to_ascii_lowercase();
    is_detection_prompt(prompt) && (text.contains("segmentation mask") || text.contains("\"mask\""))
}

/// Rewrites a grounded answer's boxes (or points) into Gemini's format. Items are kept in order with their other
/// keys (`label` first after `box_2d` / `point`); `None` when the text is not a JSON list of objects with a
/// native box (point), which is then passed on unchanged.
pub fn to_gemini_answer(text: &str, convention: BoxConvention, grounded: Grounded, image: ImageGeometry) -> Option<String> {
    let Value::Array(items) = serde_json::from_str::<Value>(text).ok()? else { return None };
    let key = convention.native_key(grounded);
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(mut object) = item else { return None };
        let native: Vec<f64> = object.remove(key)?.as_array()?.iter().filter_map(Value::as_f64).collect();
        let converted = match grounded {
            Grounded::Boxes => json!(convention.to_gemini(native.try_into().ok()?, image)),
            Grounded::Points => json!(convention.point_to_gemini(native.try_into().ok()?, image)),
        };
        let mut gemini = Map::new();
        gemini.insert(grounded.gemini_key().into(), converted);
        if let Some(label) = object.remove("label") {
            gemini.insert("label".into(), label);
        }
        gemini.extend(object);
        out.push(Value::Object(gemini));
    }
    serde_json::to_string(&out).ok()
}

/// Segments boxes of an image (a SAM-family model behind this trait).
pub trait MaskModel: Send + Sync {
    /// For each box (pixels x0, y0, x1, y1 of `image`), the probability map (0–255) over exactly the
    /// [`pixel_crop`] of the box.
    fn box_masks(&self, image: &DynamicImage, boxes: &[[f64; 4]]) -> Result<Vec<GrayImage>, GlimpseError>;
}

/// The whole pixels a box covers, clamped to the image and at least 1×1: (x0, y0, x1, y1), end exclusive.
pub fn pixel_crop(pixels: [f64; 4], (width, height): (u32, u32)) -> (u32, u32, u32, u32) {
    let clamp = |v: f64, max: u32| (v.round().max(0.0) as u32).min(max);
    let (x0, y0) = (clamp(pixels[0], width.saturating_sub(1)), clamp(pixels[1], height.saturating_sub(1)));
    let (x1, y1) = (clamp(pixels[2], width).max(x0 + 1), clamp(pixels[3], height).max(y0 + 1));
    (x0, y0, x1, y1)
}

/// Adds `mask` to every item of a Gemini detection answer: the box's probability map as a PNG data URL
/// (`data:image/png;base64,…`, the form Gemini answers and its cookbook parses), sized like the box in pixels of
/// `image`.
pub fn add_masks(answer: &str, image: &DynamicImage, model: &dyn MaskModel) -> Result<String, GlimpseError> {
    let mut items: Vec<Map<String, Value>> = serde_json::from_str(answer)
        .map_err(|e| GlimpseError::Engine(format!("detection answer is not a list of objects: {e}")))?;
    let size = (image.width(), image.height());
    let boxes: Vec<[f64; 4]> = items
        .iter()
        .map(|item| {
            let b: Vec<i64> = item[GEMINI_BOX_KEY].as_array().into_iter().flatten().filter_map(Value::as_i64).collect();
            gemini_box_to_pixels([b[0], b[1], b[2], b[3]], size)
        })
        .collect();
    let masks = model.box_masks(image, &boxes)?;
    for (item, mask) in items.iter_mut().zip(masks) {
        let mut png = Vec::new();
        mask.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| GlimpseError::Engine(format!("mask encoding failed: {e}")))?;
        let url = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png));
        let label = item.remove("label");
        item.insert("mask".into(), json!(url));
        if let Some(label) = label {
            item.insert("label".into(), label);
        }
    }
    serde_json::to_string(&items).map_err(|e| GlimpseError::Engine(e.to_string()))
}

/// Holds the answer's text back until the end and emits it rewritten by `convert` (boxes can only be
/// converted once the whole list is known); errors pass through, and a failed conversion ends the stream
/// with its error instead of the final event.
pub fn buffer_and_convert<F, Fut>(stream: GenerationStream, convert: F) -> GenerationStream
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<String, GlimpseError>> + Send + 'static,
{
    struct State<F> {
        stream: GenerationStream,
        text: String,
        convert: Option<F>,
        queue: VecDeque<Result<GenerationEvent, GlimpseError>>,
    }
    let state = State { stream, text: String::new(), convert: Some(convert), queue: VecDeque::new() };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.queue.pop_front() {
                return Some((event, st));
            }
            match st.stream.next().await? {
                Ok(GenerationEvent::Text(delta)) => st.text.push_str(&delta),
                Ok(done @ GenerationEvent::Done { .. }) => {
                    let convert = st.convert.take()?;
                    match convert(std::mem::take(&mut st.text)).await {
                        Ok(text) => st.queue.extend([Ok(GenerationEvent::Text(text)), Ok(done)]),
                        Err(e) => st.queue.push_back(Err(e)),
                    }
                }
                Err(e) => st.queue.push_back(Err(e)),
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::{Part, Role};

    fn round_trip(convention: BoxConvention, original: (u32, u32), model_input: (u32, u32), pixels: [f64; 4]) {
        let image = ImageGeometry { original, model_input };
        let [x0, y0, x1, y1] = pixels;
        let native = match convention {
            BoxConvention::QwenInputPixels => {
                let (sx, sy) = (model_input.0 as f64 / original.0 as f64, model_input.1 as f64 / original.1 as f64);
                [x0 * sx, y0 * sy, x1 * sx, y1 * sy]
            }
            BoxConvention::QwenThousandths => {
                let (w, h) = (original.0 as f64, original.1 as f64);
                [x0 / w * 1000.0, y0 / h * 1000.0, x1 / w * 1000.0, y1 / h * 1000.0]
            }
            BoxConvention::Gemini => unreachable!(),
        };
        let gemini = convention.to_gemini(native, image);
        let back = gemini_box_to_pixels(gemini, original);
        // The 0–1000 grid costs at most half a cell: under one pixel for sides up to 2000 px.
        for (got, want) in back.iter().zip(pixels) {
            assert!((got - want).abs() <= 1.0, "{convention:?} {original:?}: {pixels:?} -> {native:?} -> {gemini:?} -> {back:?}");
        }
    }

    #[test]
    fn qwen2_5_vl_pixels_of_the_resized_input_on_non_square_images() {
        // 1920×1080 → smart_resize (factor 28, max 12845056 px) keeps 1932×1092.
        let image = ImageGeometry { original: (1920, 1080), model_input: (1932, 1092) };
        assert_eq!(BoxConvention::QwenInputPixels.to_gemini([0.0, 0.0, 1932.0, 1092.0], image), [0, 0, 1000, 1000]);
        assert_eq!(BoxConvention::QwenInputPixels.to_gemini([966.0, 273.0, 1449.0, 546.0], image), [250, 500, 500, 750]);
        round_trip(BoxConvention::QwenInputPixels, (1920, 1080), (1932, 1092), [100.0, 200.0, 500.0, 700.0]);
        // 500×1333 with a small pixel budget: 308×812.
        round_trip(BoxConvention::QwenInputPixels, (500, 1333), (308, 812), [20.0, 40.0, 480.0, 1300.0]);
    }

    #[test]
    fn qwen3_vl_thousandths_swap_axes() {
        let image = ImageGeometry { original: (500, 1333), model_input: (512, 1344) };
        assert_eq!(BoxConvention::QwenThousandths.to_gemini([100.0, 200.0, 300.0, 400.0], image), [200, 100, 400, 300]);
        round_trip(BoxConvention::QwenThousandths, (1920, 1080), (1920, 1088), [100.0, 200.0, 500.0, 700.0]);
        round_trip(BoxConvention::QwenThousandths, (500, 1333), (512, 1344), [20.0, 40.0, 480.0, 1300.0]);
    }

    #[test]
    fn boxes_are_clamped_and_ordered() {
        let image = ImageGeometry { original: (100, 100), model_input: (112, 112) };
        assert_eq!(BoxConvention::QwenInputPixels.to_gemini([200.0, -5.0, 10.0, 56.0], image), [0, 89, 500, 1000]);
        assert_eq!(BoxConvention::Gemini.to_gemini([10.0, 20.0, 1200.0, 5.0], image), [10, 5, 1000, 20]);
    }

    #[test]
    fn answers_are_rewritten_only_when_they_are_box_lists() {
        let image = ImageGeometry { original: (1920, 1080), model_input: (1932, 1092) };
        let native = r#"[{"bbox_2d":[966,273,1449,546],"label":"cat","score":0.9}]"#;
        assert_eq!(
            to_gemini_answer(native, BoxConvention::QwenInputPixels, Grounded::Boxes, image).unwrap(),
            r#"[{"box_2d":[250,500,500,750],"label":"cat","score":0.9}]"#
        );
        assert_eq!(to_gemini_answer("[]", BoxConvention::QwenInputPixels, Grounded::Boxes, image).unwrap(), "[]");
        assert!(to_gemini_answer("a cat", BoxConvention::QwenInputPixels, Grounded::Boxes, image).is_none());
        assert!(to_gemini_answer(r#"[{"label":"cat"}]"#, BoxConvention::QwenInputPixels, Grounded::Boxes, image).is_none());
        // Points: Qwen2.5-VL's [x, y] in pixels of its input, Qwen3-VL's [x, y] on 0-1000 → Gemini's [y, x].
        assert_eq!(
            to_gemini_answer(r#"[{"point_2d":[483,546],"label":"cat"}]"#, BoxConvention::QwenInputPixels, Grounded::Points, image).unwrap(),
            r#"[{"point":[500,250],"label":"cat"}]"#
        );
        assert_eq!(
            to_gemini_answer(r#"[{"point_2d":[250,500],"label":"cat"}]"#, BoxConvention::QwenThousandths, Grounded::Points, image).unwrap(),
            r#"[{"point":[500,250],"label":"cat"}]"#
        );
    }

    /// One user turn of `text`.
    fn prompt(text: &str) -> Prompt {
        let turn = crate::prompt::Turn { role: Role::User, parts: vec![Part::Text(text.into())] };
        Prompt { turns: vec![turn], ..Default::default() }
    }

    #[test]
    fn the_seed_prompts_are_detection_prompts() {
        let detect = prompt("Detect the all of the prominent items in the image. The box_2d should be [ymin, xmin, ymax, xmax] normalized to 0-1000.");
        assert!(is_detection_prompt(&detect) && !wants_masks(&detect));
        let segment = prompt("Give the segmentation masks for the wooden and glass items. Output a JSON list of segmentation masks where each entry contains the 2D bounding box in the key \"box_2d\", the segmentation mask in key \"mask\", and the text label in the key \"label\".");
        assert!(is_detection_prompt(&segment) && wants_masks(&segment));
        assert!(!is_detection_prompt(&prompt("Caption this image.")));
        // The phrasings users copy from OpenAI's and Ollama's examples.
        assert!(is_detection_prompt(&prompt("Detect all objects and return their bounding boxes as JSON.")));
        assert!(is_detection_prompt(&prompt("Give the bbox of the cat.")));
        assert!(!is_detection_prompt(&prompt("Find the text that mentions a date.")));
    }

    #[test]
    fn pointing_prompts_are_told_from_detection() {
        let gemini = prompt("Point to no more than 10 items in the image. The label returned should be an identifying name for the object detected. The answer should follow the json format: [{\"point\": <point>, \"label\": <label1>}, ...]. The points are in [y, x] format normalized to 0-1000.");
        assert!(is_pointing_prompt(&gemini) && !is_detection_prompt(&gemini));
        assert!(is_pointing_prompt(&prompt("Point to the bicycle.")));
        assert!(!is_pointing_prompt(&prompt("What is the point of this sign?")));
        assert!(!is_pointing_prompt(&prompt("Detect the items, box_2d, and point out the largest.")));
        assert_eq!(box_centre([100, 200, 300, 601]), [200, 400]);
    }

    struct Half;
    impl MaskModel for Half {
        fn box_masks(&self, image: &DynamicImage, boxes: &[[f64; 4]]) -> Result<Vec<GrayImage>, GlimpseError> {
            Ok(boxes
                .iter()
                .map(|b| {
                    let (x0, y0, x1, y1) = pixel_crop(*b, (image.width(), image.height()));
                    GrayImage::from_pixel(x1 - x0, y1 - y0, image::Luma([128]))
                })
                .collect())
        }
    }

    #[test]
    fn masks_are_box_sized_png_data_urls() {
        let image = DynamicImage::new_rgb8(200, 100);
        let answer = add_masks(r#"[{"box_2d":[100,250,600,500],"label":"cat"}]"#, &image, &Half).unwrap();
        let items: Vec<Map<String, Value>> = serde_json::from_str(&answer).unwrap();
        assert_eq!(items[0].keys().collect::<Vec<_>>(), ["box_2d", "mask", "label"]);
        let url = items[0]["mask"].as_str().unwrap();
        let png = base64::engine::general_purpose::STANDARD.decode(url.strip_prefix("data:image/png;base64,").unwrap()).unwrap();
        let mask = image::load_from_memory(&png).unwrap();
        // box 250..500 of 200 px wide = x 50..100; 100..600 of 100 px high = y 10..60.
        assert_eq!((mask.width(), mask.height()), (50, 50));
        assert_eq!(pixel_crop([-3.0, 99.6, 0.2, 140.0], (200, 100)), (0, 99, 1, 100));
    }
}
