//! Model-family knowledge Glimpse needs outside the engine: the image placeholder the chat template uses,
//! and how the family's processor sizes an image (which fixes the image-token count).

use glimpse_core::grounding::BoxConvention;
use glimpse_core::GlimpseError;
use serde_json::{json, Value};

/// The largest per-image budget a request can ask for (MEDIA_RESOLUTION_ULTRA_HIGH).
const MAX_BUDGET_TOKENS: u64 = 2240;

#[derive(Debug, Clone, PartialEq)]
pub enum Family {
    /// Qwen2-VL, Qwen2.5-VL and Qwen3-VL: patches of `patch_size`, merged `merge_size`², sides multiples of
    /// `patch_size * merge_size`, total pixels within [min_pixels, max_pixels].
    QwenVl { name: &'static str, patch_size: u32, merge_size: u32, min_pixels: u64, max_pixels: u64 },
    /// Gemma 3: every image becomes one `image_size`² square of `tokens_per_image` soft tokens (pan-and-scan,
    /// off by default in the processor, is not used). The engine resizes, as transformers' processor does.
    Gemma3 { image_size: u32, tokens_per_image: u32 },
}

/// How one image is fed to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImagePlan {
    pub width: u32,
    pub height: u32,
    /// Placeholder tokens the image expands to in the prompt.
    pub tokens: u32,
}

fn get_u64(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

impl Family {
    pub fn detect(config: &Value, preprocessor: &Value) -> Result<Family, String> {
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
            other => {
                return Err(format!(
                    "model_type \"{other}\" is not supported yet; this build serves Qwen3-VL, Qwen2.5-VL, Qwen2-VL and \
                     Gemma 3 folders"
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
        }
    }

    /// What the chat template writes for an image (the engine expands the pad token).
    pub fn image_placeholder(&self) -> &'static str {
        match self {
            Family::QwenVl { .. } => "<|vision_start|><|image_pad|><|vision_end|>",
            Family::Gemma3 { .. } => "<start_of_image>",
        }
    }

    /// The token each unit of image input becomes in the expanded prompt (what usage counts as IMAGE).
    pub fn image_token(&self) -> &'static str {
        match self {
            Family::QwenVl { .. } => "<|image_pad|>",
            Family::Gemma3 { .. } => "<image_soft_token>",
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
        }
    }

    /// Control tokens that must not appear in client text: they would desynchronise images and placeholders.
    pub fn reserved_markers(&self) -> &'static [&'static str] {
        match self {
            Family::QwenVl { .. } => {
                &["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_pad|>", "<|placeholder|>"]
            }
            Family::Gemma3 { .. } => &["<start_of_image>", "<end_of_image>", "<image_soft_token>"],
        }
    }

    /// How the family writes boxes when asked for JSON detections: Qwen2.5-VL was trained on `bbox_2d` in pixels
    /// of its resized input; Qwen2-VL and Qwen3-VL on a 0–1000 grid, x before y. Families without a grounding
    /// format of their own are asked for Gemini's.
    pub fn box_convention(&self) -> BoxConvention {
        match self {
            Family::QwenVl { name: "qwen2_vl" | "qwen3_vl", .. } => BoxConvention::QwenThousandths,
            Family::QwenVl { .. } => BoxConvention::QwenInputPixels,
            Family::Gemma3 { .. } => BoxConvention::Gemini,
        }
    }

    /// The per-image token budget a detection request gets at least, unless the client chose a resolution: Qwen-VL
    /// grounds poorly below about 1024 image tokens.
    pub fn grounding_image_tokens(&self) -> u32 {
        match *self {
            Family::QwenVl { patch_size, merge_size, max_pixels, .. } => {
                let cell = (patch_size * merge_size) as u64;
                ((max_pixels / (cell * cell)) as u32).max(1024)
            }
            Family::Gemma3 { tokens_per_image, .. } => tokens_per_image,
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
                Ok(ImagePlan { width: w as u32, height: h as u32, tokens: tokens as u32 })
            }
            // A fixed square whatever the budget; the engine's processor resizes (Glimpse passes the image as is).
            Family::Gemma3 { tokens_per_image, .. } => Ok(ImagePlan { width, height, tokens: tokens_per_image }),
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
            Family::Gemma3 { .. } => config,
        }
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
        assert_eq!(plan, ImagePlan { width: 112, height: 56, tokens: 8 });
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
        let family = Family::detect(&config, &preprocessor).unwrap();
        assert_eq!(family.box_convention(), BoxConvention::QwenThousandths);
        // transformers' Qwen3-VL processor: 1920x1080 → 1920x1088, 60x34 merged tokens.
        let plan = family.plan_image(1920, 1080, None).unwrap();
        assert_eq!((plan.width, plan.height, plan.tokens), (1920, 1088, 60 * 34));
    }

    #[test]
    fn gemma3_is_one_fixed_square_whatever_the_budget() {
        let config = json!({"model_type": "gemma3", "mm_tokens_per_image": 256});
        let preprocessor = json!({"size": {"height": 896, "width": 896}});
        let family = Family::detect(&config, &preprocessor).unwrap();
        assert_eq!(family, Family::Gemma3 { image_size: 896, tokens_per_image: 256 });
        // The engine resizes; Glimpse passes the image through and counts 256 soft tokens.
        assert_eq!(family.plan_image(1920, 1080, Some(64)).unwrap(), ImagePlan { width: 1920, height: 1080, tokens: 256 });
        let plan = ImagePlan { width: 10, height: 10, tokens: 2 };
        assert_eq!(family.expand_placeholder(&plan), "\n\n<start_of_image><image_soft_token><image_soft_token><end_of_image>\n\n");
        assert_eq!(family.box_convention(), BoxConvention::Gemini);
    }

    #[test]
    fn tiny_and_extreme_images() {
        let plan = qwen(3136, 50176).plan_image(10, 10, None).unwrap();
        assert_eq!((plan.width, plan.height), (56, 56));
        assert!(qwen(3136, 50176).plan_image(10_000, 10, None).is_err());
    }
}
