//! Numerics parity with Hugging Face transformers on the committed tiny checkpoints of each family.
//!
//! `fixtures/expected/<model>.json` was produced by transformers (float32, eager attention) from the same folder
//! by `scripts/fixtures/make_tiny_<family>.py`. For every case Glimpse must produce
//! - exactly the same expanded prompt token ids, and the same prompt token count from `count_tokens`;
//! - first-position logits within `LOGIT_TOLERANCE`;
//! - every greedy token of the reference, through mistralrs's cached decoding, with each step's
//!   log-probability within `LOGPROB_TOLERANCE`. The fixtures keep every top-1/top-2 gap ≥ 0.22, so float
//!   rounding cannot flip a token: a different token is a real defect.
//!
//! Tolerances: the logits have a standard deviation of ~16. mistralrs's vision mergers use the tanh
//! approximation of GELU where transformers uses the exact erf form; re-running the reference with the tanh
//! form moved first-step logits by up to 0.006 (Qwen2.5-VL) and 0.0035 (Qwen3-VL), recorded per case under
//! `robustness`. Summation-order
//! differences in float32 add ~1e-5 relative. 0.02 absolute (≈1e-3 of a logit's spread) covers both with
//! margin while still catching any real layout or rope error, which moves logits by whole units.
//! The resized case (`resize_odd`) adds a resampling difference; see `RESIZED_LOGIT_TOLERANCE`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use glimpse_backend_mistralrs::{LoadOptions, MistralRsEngine};
use glimpse_core::media::{decode_image, ImageLimits};
use glimpse_core::{Engine, ImageInput, Part, Prompt, Role, Turn};
use serde_json::Value;

const LOGIT_TOLERANCE: f32 = 0.02;
const LOGPROB_TOLERANCE: f32 = 0.01;
/// For an image that must be resized (150×100 → 140×112 for Qwen2.5-VL, 160×96 for Qwen3-VL; every image for
/// Idefics3): Glimpse or the engine resamples with the `image` crate's CatmullRom / Triangle / Lanczos3,
/// transformers with PIL's bicubic / bilinear / Lanczos; the pixels differ by a few levels and the logits by up
/// to 0.10 (measured). 0.25 is 1.5% of the logit spread: a wrong grid or layout would move them by whole units.
const RESIZED_LOGIT_TOLERANCE: f32 = 0.25;
/// The same resampling difference carried through 24 decode steps moved log-probabilities by 0.031 (measured).
const RESIZED_LOGPROB_TOLERANCE: f32 = 0.06;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn expected(model: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join(format!("fixtures/expected/{model}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn engine(model: &str) -> MistralRsEngine {
    let options = LoadOptions { force_cpu: true, ..Default::default() };
    MistralRsEngine::load(&repo_root().join("fixtures/models").join(model), options).await.unwrap()
}

/// transformers chat messages → a Glimpse prompt.
fn prompt_from_messages(messages: &Value) -> Prompt {
    let mut prompt = Prompt::default();
    for message in messages.as_array().unwrap() {
        let role = message["role"].as_str().unwrap();
        let parts: Vec<Part> = match &message["content"] {
            Value::String(text) => vec![Part::Text(text.clone())],
            Value::Array(items) => items
                .iter()
                .map(|item| match item["type"].as_str().unwrap() {
                    "text" => Part::Text(item["text"].as_str().unwrap().to_string()),
                    "image" => {
                        let bytes = std::fs::read(repo_root().join(item["path"].as_str().unwrap())).unwrap();
                        let decoded = decode_image(&bytes, None, &ImageLimits::default()).unwrap();
                        Part::Image(ImageInput { image: Arc::new(decoded.image), format: decoded.format, resolution: None })
                    }
                    other => panic!("unknown content type {other}"),
                })
                .collect(),
            other => panic!("unexpected content {other}"),
        };
        match role {
            "system" => {
                let Part::Text(text) = &parts[0] else { panic!("system must be text") };
                prompt.system = Some(text.clone());
            }
            "user" => prompt.turns.push(Turn { role: Role::User, parts }),
            "assistant" => prompt.turns.push(Turn { role: Role::Model, parts }),
            other => panic!("unknown role {other}"),
        }
    }
    prompt
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qwen2_5_vl_greedy_decoding_matches_transformers() {
    greedy_decoding_matches_transformers("qwen2_5_vl-tiny", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qwen3_vl_greedy_decoding_matches_transformers() {
    greedy_decoding_matches_transformers("qwen3_vl-tiny", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemma3_greedy_decoding_matches_transformers() {
    greedy_decoding_matches_transformers("gemma3-tiny", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idefics3_greedy_decoding_matches_transformers() {
    // Every fixture image is rescaled to the 128-px long side before tiling: resampled by both sides.
    greedy_decoding_matches_transformers("idefics3-tiny", true).await;
}

/// `every_image_resampled`: the family's processor rescales every image (not only the odd-sized one), so every
/// image case carries the resampling difference and gets the resized tolerances.
async fn greedy_decoding_matches_transformers(model: &str, every_image_resampled: bool) {
    let expected = expected(model);
    let engine = engine(model).await;
    let mut report = Vec::new();
    for case in expected["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let prompt = prompt_from_messages(&case["messages"]);
        let has_images = !case["image_sizes_wh"].as_array().unwrap().is_empty();
        let resized = name == "resize_odd" || (every_image_resampled && has_images);

        let counted = engine.count_tokens(&prompt).await.unwrap();
        assert_eq!(counted.total() as u64, case["prompt_token_count"].as_u64().unwrap(), "{name}: prompt tokens");
        let image_tokens: u64 = case["image_token_counts"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(counted.image as u64, image_tokens, "{name}: image tokens");

        let max_new = case["max_new_tokens"].as_u64().unwrap() as u32;
        let probe = engine.probe(&prompt, max_new).await.unwrap();

        let want_ids: Vec<u32> =
            case["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(probe.prompt_ids, want_ids, "{name}: expanded prompt ids");

        let want_logits = floats(&case["first_step_logits"]);
        assert_eq!(probe.first_logits.len(), want_logits.len(), "{name}: vocab size");
        let max_logit_diff = max_abs_diff(&probe.first_logits, &want_logits);
        let tolerance = if resized { RESIZED_LOGIT_TOLERANCE } else { LOGIT_TOLERANCE };
        assert!(max_logit_diff <= tolerance, "{name}: first-step logits differ by {max_logit_diff}");

        // Every greedy token: the same count, the same text (the reference skips the end token), the same
        // finish, and each step's log-probability.
        let want_count = case["greedy_token_ids"].as_array().unwrap().len();
        assert_eq!(probe.tokens.len(), want_count, "{name}: generated {:?}", probe.tokens);
        let ends_on_eos = case["finish"] == "eos";
        let text_tokens = if ends_on_eos { &probe.tokens[..want_count - 1] } else { &probe.tokens[..] };
        assert_eq!(text_tokens.concat(), case["greedy_text"].as_str().unwrap(), "{name}: greedy text");
        assert_eq!(probe.finish_reason, if ends_on_eos { "stop" } else { "length" }, "{name}: finish");
        let max_lp_diff = max_abs_diff(&probe.logprobs, &floats(&case["step_logprobs"]));
        let tolerance = if resized { RESIZED_LOGPROB_TOLERANCE } else { LOGPROB_TOLERANCE };
        assert!(max_lp_diff <= tolerance, "{name}: step log-probabilities differ by {max_lp_diff}");

        report.push(format!(
            "{name}: {want_count} tokens identical, max |Δ first-step logit| {max_logit_diff:.2e}, \
             max |Δ step log-prob| {max_lp_diff:.2e}"
        ));
    }
    eprintln!("{model} parity report:\n{}", report.join("\n"));
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max)
}
