//! Model-family knowledge Glimpse needs outside the engine: the image placeholder the chat template uses,
//! and how the family's processor sizes an image (which fixes the image-token count).

use glimpse_core::grounding::BoxConvention;
use glimpse_core::GlimpseError;
use serde_json::{json, Value};

/// The largest per-image budget a request can ask for.
const MAX_BUDGET_TOKENS: u64 = glimpse_core::media_resolution::MAX_TOKEN_BUDGET as u64;

#[derive(Debug, Clone, PartialEq)]
pub enum Family {
    /// Qwen2-VL, Qwen2.5-VL and Qwen3-VL: patches of `patch_size`, merged `merge_size`², sides multiples of
    /// `patch_size * merge_size`, total pixels within [min_pixels, max_pixels].
    QwenVl { name: &'static str, patch_size: u32, merge_size: u32, min_pixels: u64, max_pixels: u64 },
    /// Gemma 3: every image becomes one `image_size`² square of `tokens_per_image` soft tokens (pan-and-scan,
    /// off by default in the processor, is not used). The engine resizes, as transformers' processor does.
    Gemma3 { image_size: u32, tokens_per_image: u32 },
    /// Idefics3 / SmolVLM: the image is scaled to `longest_edge`, cut into `tile`-pixel tiles plus one global
    /// tile, each `seq_len` tokens. The engine resizes and cuts; Glimpse mirrors its arithmetic to count.
    Idefics3 { longest_edge: Option<u32>, tile: u32, seq_len: u32, splitting: bool },
}

/// How one image is fed to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImagePlan {
    pub width: u32,
    pub height: u32,
    /// Placeholder tokens the image expands to in the prompt.
    pub tokens: u32,
    /// Rows and columns of tiles the engine cuts the image into ((0, 0): not cut).
    pub tiles: (u32, u32),
}

impl ImagePlan {
    fn whole(width: u32, height: u32, tokens: u32) -> ImagePlan {
        ImagePlan { width, height, tokens, tiles: (0, 0) }
    }
}

fn get_u64(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

impl Family {
    /// `processor` is processor_config.json (Null when the folder has none).
    pub fn detect(config: &Value, preprocessor: &Value, processor: &Value) -> Result<Family, String> {
        let model_type = config.get("model_type").and_then(Value::as_str).unwrap_or_default();
        // (name, the processor's patch size when its config leaves it out)
        let (name, default_patch) = match model_type {
            "qwen2_5_vl" => ("qwen2_5_vl", 14),
            "qwen2_vl" => ("qwen2_vl", 14),
            "qwen3_vl" => ("qwen3_vl", 16),
            "gemma3" => {
                let image_size = preprocessor
                    .pointer("/size/height")
                    .and_then(Value::as_u64)
                    .or_else(|| config.pointer("/vision_config/image_size").and_then(Value::as_u64))
                    .unwrap_or(896) as u32;
                let tokens_per_image = get_u64(config, "mm_tokens_per_image").unwrap_or(256) as u32;
                return Ok(Family::Gemma3 { image_size, tokens_per_image });
            }
            "idefics3" => {
                // mistralrs's defaults where the files are silent (its Idefics3 processor: 364-px tiles, 169
                // tokens, splitting on, resizing only when asked).
                let resize = preprocessor.get("do_resize").and_then(Value::as_bool) == Some(true);
                let longest_edge = resize.then(|| preprocessor.pointer("/size/longest_edge").and_then(Value::as_u64)).flatten();
                return Ok(Family::Idefics3 {
                    longest_edge: longest_edge.map(|e| e as u32),
                    tile: preprocessor.pointer("/max_image_size/longest_edge").and_then(Value::as_u64).unwrap_or(364) as u32,
                    seq_len: get_u64(processor, "image_seq_len").unwrap_or(169) as u32,
                    splitting: preprocessor.get("do_image_splitting").and_then(Value::as_bool).unwrap_or(true),
                });
            }
            other => {
                return Err(format!(
                    "model_type \"{other}\" is not supported yet; this build serves Qwen3-VL, Qwen2.5-VL, Qwen2-VL, \
                     Gemma 3 and Idefics3 (SmolVLM) folders"
                ))
            }
        };
        let patch_size = get_u64(preprocessor, "patch_size").unwrap_or(default_patch) as u32;
        let merge_size = get_u64(preprocessor, "merge_size").unwrap_or(2) as u32;
        let size = preprocessor.get("size").cloned().unwrap_or(Value::Null);
        let min_pixels = get_u64(preprocessor, "min_pixels").or_else(|| get_u64(&size, "shortest_edge")).unwrap_or(56 * 56);
        let max_pixels =
            get_u64(preprocessor, "max_pixels").or_else(|| get_u64(&size, "longest_edge")).unwrap_or(28 * 28 * 1280);
        Ok(Family::QwenVl { name, patch_size, merge_size, min_pixels, max_pixels })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Family::QwenVl { name, .. } => name,
            Family::Gemma3 { .. } => "gemma3",
            Family::Idefics3 { .. } => "idefics3",
        }
    }

    /// Whether the engine may continue a prompt from a cached prefix's KV cache (mistralrs's prefix cacher): only
    /// where a prefix hit is verified to answer as the full prompt does (vendor change 12 and the shapes test
    /// `test_a_prefix_hit_answers_as_the_full_prompt`). Qwen2-VL and Qwen3-VL compute their positions the way
    /// Qwen2.5-VL did before that change; Gemma 3 and Idefics3 are untested with it.
    pub fn reuses_prefixes(&self) -> bool {
        matches!(self, Family::QwenVl { name: "qwen2_5_vl", .. })
    }

    /// What the chat template writes for an image (the engine expands the pad token).
    pub fn image_placeholder(&self) -> &'static str {
        match self {
            Family::QwenVl { .. } => "<|vision_start|><|image_pad|><|vision_end|>",
            Family::Gemma3 { .. } => "<start_of_image>",
            Family::Idefics3 { .. } => "<image>",
        }
    }

    /// The token each unit of image input becomes in the expanded prompt (what usage counts as IMAGE).
    pub fn image_token(&self) -> &'static str {
        match self {
            Family::QwenVl { .. } => "<|image_pad|>",
            Family::Gemma3 { .. } => "<image_soft_token>",
            Family::Idefics3 { .. } => "<image>",
        }
    }

    /// The prompt text one image's placeholder becomes inside the engine, as the family's processor expands it:
    /// counting the tokens of the expanded text gives exactly what the model consumes.
    pub fn expand_placeholder(&self, plan: &ImagePlan) -> String {
        match self {
            Family::QwenVl { .. } => {
                format!("<|vision_start|>{}<|vision_end|>", "<|image_pad|>".repeat(plan.tokens as usize))
            }
            Family::Gemma3 { .. } => {
                format!("\n\n<start_of_image>{}<end_of_image>\n\n", "<image_soft_token>".repeat(plan.tokens as usize))
            }
            // As mistralrs's (and transformers') Idefics3 processor writes it.
            Family::Idefics3 { seq_len, .. } => {
                let tile = "<image>".repeat(*seq_len as usize);
                let global = format!("<fake_token_around_image><global-img>{tile}<fake_token_around_image>");
                let (rows, cols) = plan.tiles;
                let mut text = String::new();
                for row in 1..=rows {
                    for col in 1..=cols {
                        text.push_str(&format!("<fake_token_around_image><row_{row}_col_{col}>{tile}"));
                    }
                    text.push('\n');
                }
                if rows > 0 {
                    text.push('\n');
                }
                text + &global
            }
        }
    }

    /// A rendered chat template with every image placeholder expanded (in order, one plan each).
    pub fn expand_placeholders(&self, templated: &str, plans: &[ImagePlan]) -> Result<String, GlimpseError> {
        if plans.is_empty() {
            return Ok(templated.to_string());
        }
        let pieces: Vec<&str> = templated.split(self.image_placeholder()).collect();
        if pieces.len() != plans.len() + 1 {
            return Err(GlimpseError::Engine(format!(
                "the chat template placed {} image placeholders for {} images",
                pieces.len() - 1,
                plans.len()
            )));
        }
        let mut expanded = String::with_capacity(templated.len());
        for (piece, plan) in pieces.iter().zip(plans) {
            expanded.push_str(piece);
            expanded.push_str(&self.expand_placeholder(plan));
        }
        expanded.push_str(pieces[pieces.len() - 1]);
        Ok(expanded)
    }

    /// Whether messages go to the engine as typed parts (`{"type": "text"}` / `{"type": "image"}`) rather than one
    /// string: SmolVLM's chat template renders only typed content (a string's text would be dropped).
    pub fn typed_content(&self) -> bool {
        matches!(self, Family::Idefics3 { .. })
    }

    /// Control tokens that must not appear in client text: they would desynchronise images and placeholders.
    pub fn reserved_markers(&self) -> &'static [&'static str] {
        match self {
            Family::QwenVl { .. } => {
                &["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_pad|>", "<|placeholder|>"]
            }
            Family::Gemma3 { .. } => &["<start_of_image>", "<end_of_image>", "<image_soft_token>"],
            Family::Idefics3 { .. } => &["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"],
        }
    }

    /// How the family writes boxes when asked for JSON detections: Qwen2.5-VL was trained on `bbox_2d` in pixels
    /// of its resized input; Qwen2-VL and Qwen3-VL on a 0–1000 grid, x before y. Families without a grounding
    /// format of their own are asked for Gemini's.
    pub fn box_convention(&self) -> BoxConvention {
        match self {
            Family::QwenVl { name: "qwen2_vl" | "qwen3_vl", .. } => BoxConvention::QwenThousandths,
            Family::QwenVl { .. } => BoxConvention::QwenInputPixels,
            Family::Gemma3 { .. } | Family::Idefics3 { .. } => BoxConvention::Gemini,
        }
    }

    /// Sizes an image for the model. `budget_tokens` is the request's per-image budget; `None` keeps the
    /// processor's own maximum.
    pub fn plan_image(&self, width: u32, height: u32, budget_tokens: Option<u32>) -> Result<ImagePlan, GlimpseError> {
        match *self {
            Family::QwenVl { patch_size, merge_size, min_pixels, max_pixels, .. } => {
                let factor = (patch_size * merge_size) as u64;
                let max_pixels = match budget_tokens {
                    Some(tokens) => (tokens as u64 * factor * factor).max(min_pixels),
                    None => max_pixels,
                };
                let (h, w) = smart_resize(height as u64, width as u64, factor, min_pixels, max_pixels)?;
                let tokens = (h / factor) * (w / factor);
                Ok(ImagePlan::whole(w as u32, h as u32, tokens as u32))
            }
            // A fixed square whatever the budget; the engine's processor resizes (Glimpse passes the image as is).
            Family::Gemma3 { tokens_per_image, .. } => Ok(ImagePlan::whole(width, height, tokens_per_image)),
            // The engine resizes and cuts; the budget does not change its rules.
            Family::Idefics3 { longest_edge, tile, seq_len, splitting } => {
                let (rows, cols) = idefics3_tiles(width, height, longest_edge, tile, splitting);
                Ok(ImagePlan { width, height, tokens: seq_len * (rows * cols + 1), tiles: (rows, cols) })
            }
        }
    }

    /// The preprocessor config the engine gets: any aligned size Glimpse chose passes through unchanged.
    pub fn widen_preprocessor(&self, mut config: Value) -> Value {
        match *self {
            Family::QwenVl { patch_size, merge_size, max_pixels, .. } => {
                let factor = (patch_size * merge_size) as u64;
                let min = factor * factor;
                let max = max_pixels.max(MAX_BUDGET_TOKENS * factor * factor);
                if let Value::Object(map) = &mut config {
                    map.insert("min_pixels".into(), json!(min));
                    map.insert("max_pixels".into(), json!(max));
                    map.insert("size".into(), json!({"shortest_edge": min, "longest_edge": max}));
                    map.entry("patch_size").or_insert(json!(patch_size));
                    map.entry("merge_size").or_insert(json!(merge_size));
                    map.entry("temporal_patch_size").or_insert(json!(2));
                }
                config
            }
            Family::Gemma3 { .. } | Family::Idefics3 { .. } => config,
        }
    }
}

/// Tile rows and columns of an image as mistralrs 0.8.1's Idefics3 processor computes them (its rounding, in
/// f32, which differs from transformers' for a few sizes; the engine's count is what the model consumes).
fn idefics3_tiles(width: u32, height: u32, longest_edge: Option<u32>, tile: u32, splitting: bool) -> (u32, u32) {
    const MAX_IMAGE_SIZE: f32 = 4096.0;
    let (mut h, mut w) = (height as f32, width as f32);
    if let Some(max_len) = longest_edge.map(|e| e as f32) {
        let aspect = w / h;
        if w >= h {
            w = max_len;
            h = (w / aspect).round();
            if h as u32 % 2 != 0 {
                h += 1.0;
            }
        } else {
            h = max_len;
            w = (h * aspect).round();
            if w as u32 % 2 != 0 {
                w += 1.0;
            }
        }
        let (h1, w1) = (h.max(1.0), w.max(1.0));
        let aspect = w1 / h1;
        (h, w) = (h1, w1);
        if w >= h && w > MAX_IMAGE_SIZE {
            w = MAX_IMAGE_SIZE;
            h = (w / aspect).round();
        } else if h > w && h > MAX_IMAGE_SIZE {
            h = MAX_IMAGE_SIZE;
            w = (h * aspect).round();
        }
        (h, w) = (h.max(1.0), w.max(1.0));
    }
    if !splitting {
        return (0, 0);
    }
    let t = tile as f32;
    let aspect = w / h;
    let (h, w) = if w >= h {
        let new_w = (w / t).ceil() * t;
        let new_h = ((new_w / aspect) as u32) as f32;
        ((new_h / t).ceil() * t, new_w)
    } else {
        let new_h = (h / t).ceil() * t;
        let new_w = ((new_h * aspect) as u32) as f32;
        (new_h, (new_w / t).ceil() * t)
    };
    if w > t || h > t {
        ((h / t).ceil() as u32, (w / t).ceil() as u32)
    } else {
        (0, 0)
    }
}

/// Qwen2-VL's `smart_resize` as transformers implements it: sides rounded to multiples of `factor` (at least
/// one factor each), then scaled down or up to keep the pixel count within [min_pixels, max_pixels].
pub fn smart_resize(height: u64, width: u64, factor: u64, min_pixels: u64, max_pixels: u64) -> Result<(u64, u64), GlimpseError> {
    if height == 0 || width == 0 {
        return Err(GlimpseError::invalid("The image has no pixels."));
    }
    let ratio = height.max(width) as f64 / height.min(width) as f64;
    if ratio > 200.0 {
        return Err(GlimpseError::invalid(format!(
            "The image's aspect ratio must be smaller than 200:1, got {ratio:.1}:1."
        )));
    }
    let f = factor as f64;
    let round = |x: f64| ((x / f).round() as u64 * factor).max(factor);
    let mut h_bar = round(height as f64);
    let mut w_bar = round(width as f64);
    if h_bar * w_bar > max_pixels {
        let beta = ((height * width) as f64 / max_pixels as f64).sqrt();
        h_bar = (((height as f64 / beta) / f).floor() as u64 * factor).max(factor);
        w_bar = (((width as f64 / beta) / f).floor() as u64 * factor).max(factor);
    } else if h_bar * w_bar < min_pixels {
        let beta = (min_pixels as f64 / (height * width) as f64).sqrt();
        h_bar = ((height as f64 * beta) / f).ceil() as u64 * factor;
        w_bar = ((width as f64 * beta) / f).ceil() as u64 * factor;
    }
    Ok((h_bar, w_bar))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qwen(min_pixels: u64, max_pixels: u64) -> Family {
        Family::QwenVl { name: "qwen2_5_vl", patch_size: 14, merge_size: 2, min_pixels, max_pixels }
    }

    #[test]
    fn aligned_images_within_limits_are_unchanged() {
        let plan = qwen(3136, 50176).plan_image(112, 56, None).unwrap();
        assert_eq!(plan, ImagePlan::whole(112, 56, 8));
    }

    #[test]
    fn matches_transformers_on_known_sizes() {
        // Qwen2.5-VL defaults (min 3136, max 12845056): 1920x1080 → 1932x1092 (69x39 = 2691 tokens).
        let plan = qwen(3136, 12_845_056).plan_image(1920, 1080, None).unwrap();
        assert_eq!((plan.width, plan.height, plan.tokens), (1932, 1092, 69 * 39));
        // A budget caps the pixels: 280 tokens → at most 280 * 784 pixels.
        let low = qwen(3136, 12_845_056).plan_image(1920, 1080, Some(280)).unwrap();
        assert!(low.tokens <= 280 && low.tokens > 200, "{low:?}");
    }

    #[test]
    fn qwen3_vl_sizes_by_32_pixel_cells() {
        let config = json!({"model_type": "qwen3_vl"});
        let preprocessor = json!({"size": {"shortest_edge": 65536, "longest_edge": 16777216}});
        let family = Family::detect(&config, &preprocessor, &Value::Null).unwrap();
        assert_eq!(family.box_convention(), BoxConvention::QwenThousandths);
        // transformers' Qwen3-VL processor: 1920x1080 → 1920x1088, 60x34 merged tokens.
        let plan = family.plan_image(1920, 1080, None).unwrap();
        assert_eq!((plan.width, plan.height, plan.tokens), (1920, 1088, 60 * 34));
    }

    #[test]
    fn gemma3_is_one_fixed_square_whatever_the_budget() {
        let config = json!({"model_type": "gemma3", "mm_tokens_per_image": 256});
        let preprocessor = json!({"size": {"height": 896, "width": 896}});
        let family = Family::detect(&config, &preprocessor, &Value::Null).unwrap();
        assert_eq!(family, Family::Gemma3 { image_size: 896, tokens_per_image: 256 });
        // The engine resizes; Glimpse passes the image through and counts 256 soft tokens.
        assert_eq!(family.plan_image(1920, 1080, Some(64)).unwrap(), ImagePlan::whole(1920, 1080, 256));
        let plan = ImagePlan::whole(10, 10, 2);
        assert_eq!(family.expand_placeholder(&plan), "\n\n<start_of_image><image_soft_token><image_soft_token><end_of_image>\n\n");
        assert_eq!(family.box_convention(), BoxConvention::Gemini);
    }

    #[test]
    fn idefics3_tiles_like_the_engine() {
        // SmolVLM-256M: images scaled to 2048 on the long side, 512-px tiles of 64 tokens, plus the global tile.
        let config = json!({"model_type": "idefics3"});
        let preprocessor = json!({"do_resize": true, "size": {"longest_edge": 2048}, "max_image_size": {"longest_edge": 512}});
        let family = Family::detect(&config, &preprocessor, &json!({"image_seq_len": 64})).unwrap();
        let plan = family.plan_image(1920, 1080, None).unwrap();
        // 1920x1080 → 2048x1152 → 2048x1536: 3 rows x 4 columns + global = 13 tiles.
        assert_eq!((plan.tiles, plan.tokens), ((3, 4), 13 * 64));
        let expansion = family.expand_placeholder(&ImagePlan { width: 1, height: 1, tokens: 64 * 3, tiles: (1, 2) });
        assert!(expansion.starts_with("<fake_token_around_image><row_1_col_1><image>"));
        assert!(expansion.contains("<row_1_col_2>") && expansion.ends_with("<fake_token_around_image>"));
        assert_eq!(expansion.matches("<image>").count(), 64 * 3);
        assert!(family.typed_content());
    }

    #[test]
    fn tiny_and_extreme_images() {
        let plan = qwen(3136, 50176).plan_image(10, 10, None).unwrap();
        assert_eq!((plan.width, plan.height), (56, 56));
        assert!(qwen(3136, 50176).plan_image(10_000, 10, None).is_err());
    }
}
