//! Numerics parity with Hugging Face transformers on the committed tiny checkpoints of each family.
//!
//! `fixtures/expected/<model>.json` was produced by transformers (float32, eager attention) from the same folder
//! by `scripts/fixtures/make_tiny_<family>.py`. For every case Glimpse must produce
//! - exactly the same expanded prompt token ids, and the same prompt token count from `count_tokens` (and from
//!   the processor alone, without the weights: `LocalProcessor`, for models on an upstream engine);
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

use glimpse_backend_mistralrs::{LocalProcessor, LoadOptions, MistralRsEngine};
use glimpse_core::collect;
use glimpse_core::media::{ImageLimits, ImageSource};
use glimpse_core::{
    Engine, GenerateRequest, ImageInput, OutputConstraint, Part, Prompt, Role, SamplingOptions, Turn,
};
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
/// Real-shape checkpoints, as a fraction of the first step's logit spread (standard deviation): their photo is
/// resampled by both sides (the resized tolerance above is 1.5% of that fixture's spread), and dozens of layers
/// of float32 summation-order differences add to it.
const REAL_SHAPE_LOGIT_TOLERANCE: f32 = 0.02;

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
                        Part::Image(ImageInput::new(ImageSource::probe(bytes, None, &ImageLimits::default()).unwrap()))
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

/// `count_tokens` gives the reference's prompt and image token counts; returns the image tokens.
async fn assert_counts(engine: &MistralRsEngine, prompt: &Prompt, case: &Value, name: &str) -> u64 {
    let counted = engine.count_tokens(prompt).await.unwrap();
    assert_eq!(counted.total() as u64, case["prompt_token_count"].as_u64().unwrap(), "{name}: prompt tokens");
    let image_tokens: u64 = case["image_token_counts"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(counted.image as u64, image_tokens, "{name}: image tokens");
    image_tokens
}

fn token_ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
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

        assert_counts(&engine, &prompt, case, name).await;

        let max_new = case["max_new_tokens"].as_u64().unwrap() as u32;
        let probe = engine.probe(&prompt, max_new).await.unwrap();

        let want_ids = token_ids(&case["input_ids"]);
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

/// A checkpoint of a published model's real shape (random weights), written with transformers' reference by
/// `scripts/models/make_real_shape.py --reference MODEL`: `GLIMPSE_REAL_SHAPE=<its folder>`. One 1024×768 photo:
/// the same expanded prompt and image token count as the processor, the first step's logits within
/// `REAL_SHAPE_LOGIT_TOLERANCE` of the logits' spread, and the same greedy tokens up to the first step where the
/// reference's top-2 margin is within twice the logits' measured difference (random weights give some near-ties;
/// past one, a rounding difference may pick the other token). Minutes on 2 cores, and the checkpoint is not in the
/// repository: ignored by default (`scripts/bench/models.sh` runs it for every model).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs GLIMPSE_REAL_SHAPE=<folder from scripts/models/make_real_shape.py --reference>"]
async fn real_shape_matches_transformers() {
    let folder = PathBuf::from(std::env::var("GLIMPSE_REAL_SHAPE").expect("GLIMPSE_REAL_SHAPE=<checkpoint folder>"));
    let text = std::fs::read_to_string(folder.join("expected.json")).expect("expected.json: run with --reference");
    let expected: Value = serde_json::from_str(&text).unwrap();
    let options = LoadOptions { force_cpu: true, ..Default::default() };
    let engine = MistralRsEngine::load(&folder, options).await.unwrap();
    for case in expected["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let prompt = prompt_from_messages(&case["messages"]);
        let image_tokens = assert_counts(&engine, &prompt, case, name).await;

        let want_tokens: Vec<String> =
            case["greedy_tokens"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
        let started = std::time::Instant::now();
        let probe = engine.probe(&prompt, want_tokens.len() as u32).await.unwrap();
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(probe.prompt_ids, token_ids(&case["input_ids"]), "{name}: expanded prompt ids");

        let want_logits = floats(&case["first_step_logits"]);
        assert_eq!(probe.first_logits.len(), want_logits.len(), "{name}: vocab size");
        let spread = case["first_step_logits_std"].as_f64().unwrap() as f32;
        let tolerance = REAL_SHAPE_LOGIT_TOLERANCE * spread;
        let diff = max_abs_diff(&probe.first_logits, &want_logits);
        assert!(diff <= tolerance, "{name}: first-step logits differ by {diff} (tolerance {tolerance})");

        // A step whose reference top-2 margin is over twice the logits' measured difference cannot flip by it.
        let margins = floats(&case["step_top2_margins"]);
        let firm = margins.iter().take_while(|m| **m > 2.0 * diff.max(1e-3)).count();
        assert_eq!(probe.tokens[..firm], want_tokens[..firm], "{name}: greedy tokens");
        eprintln!(
            "{}: {name}: {} prompt tokens ({image_tokens} image), max |Δ first-step logit| {diff:.2e} (spread \
             {spread:.1}), {firm} of {} greedy tokens compared, all equal; {seconds:.1} s for the probe",
            expected["repo"].as_str().unwrap_or("?"),
            case["prompt_token_count"],
            want_tokens.len()
        );
    }
}

/// Three images in one prompt (the six cases have at most two): the expanded prompt ids and the first step's
/// logits from `scripts/fixtures/make_three_images_reference.py`. mistralrs 0.8.1 gave the third image rows of
/// the second image's embeddings, which moved these logits by 3.8 (vendor/README.md, seventh fix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qwen2_5_vl_three_images_first_step_matches_transformers() {
    let reference = expected("qwen2_5_vl-tiny-three_images");
    let engine = engine("qwen2_5_vl-tiny").await;
    let probe = engine.probe(&prompt_from_messages(&reference["messages"]), 1).await.unwrap();
    assert_eq!(probe.prompt_ids, token_ids(&reference["input_ids"]), "expanded prompt ids");
    let diff = max_abs_diff(&probe.first_logits, &floats(&reference["first_step_logits"]));
    assert!(diff <= LOGIT_TOLERANCE, "first-step logits differ by {diff}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qwen2_5_vl_answers_side_by_side_as_alone() {
    answers_side_by_side_as_alone("qwen2_5_vl-tiny").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qwen3_vl_answers_side_by_side_as_alone() {
    answers_side_by_side_as_alone("qwen3_vl-tiny").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemma3_answers_side_by_side_as_alone() {
    answers_side_by_side_as_alone("gemma3-tiny").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idefics3_answers_side_by_side_as_alone() {
    answers_side_by_side_as_alone("idefics3-tiny").await;
}

/// Image requests sent together must each get the answer they get alone (which the test above holds to
/// transformers). Each part caught a defect of mistralrs 0.8.1 (vendor/README.md, sixth and seventh fixes):
/// - Different lengths: mistralrs decodes them in turns, parking the others in its waiting list; when the short
///   one finished while the long one was parked, the long one was prefilled again without its images. The short
///   request stops after 1 to 5 tokens, so its end falls on each turn of the alternation; at 1 token its prompt
///   step finishes it, which also left it decoding one step more.
/// - The same prompt twice: the two prompts were prefilled as one batch (Qwen2.5-VL and Gemma 3 failed), and
///   once level the two sequences decode as one batch (Qwen2.5-VL failed). Sent three times over, as the
///   second may arrive after the first has finished.
/// - Two same-length prompts with different answers, which decode as one batch: the CPU attention gave every
///   sequence of a batch the last one's output, which the same prompt twice cannot show.
async fn answers_side_by_side_as_alone(model: &str) {
    let expected = expected(model);
    let engine = engine(model).await;
    let case = |name: &str| {
        expected["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone()
    };
    let (short, long) = (case("caption_square"), case("two_images"));
    let short_prompt = prompt_from_messages(&short["messages"]);
    let long_prompt = prompt_from_messages(&long["messages"]);
    assert_ne!(
        short["prompt_token_count"], long["prompt_token_count"],
        "the two prompts must differ in length to be decoded in turns"
    );
    let long_max = long["max_new_tokens"].as_u64().unwrap() as u32;
    let long_alone = greedy(&engine, &long_prompt, long_max).await;

    for short_max in 1..=5 {
        let short_alone = greedy(&engine, &short_prompt, short_max).await;
        let (short_together, long_together) =
            tokio::join!(greedy(&engine, &short_prompt, short_max), greedy(&engine, &long_prompt, long_max));
        assert_eq!(short_together, short_alone, "{model}: short request ({short_max} tokens) beside the long one");
        assert_eq!(long_together, long_alone, "{model}: long request beside a {short_max}-token one");
    }
    for round in 0..3 {
        let (first, second) =
            tokio::join!(greedy(&engine, &long_prompt, long_max), greedy(&engine, &long_prompt, long_max));
        assert_eq!(first, long_alone, "{model}: the first of the same request sent twice, round {round}");
        assert_eq!(second, long_alone, "{model}: the second of the same request sent twice, round {round}");
    }

    let full_alone = greedy(&engine, &short_prompt, long_max).await;
    let (other_prompt, other_alone) =
        same_length_other_answer(&engine, &short["messages"], &full_alone, long_max).await;
    for round in 0..3 {
        let (full_together, other_together) =
            tokio::join!(greedy(&engine, &short_prompt, long_max), greedy(&engine, &other_prompt, long_max));
        assert_eq!(full_together, full_alone, "{model}: one of two same-length image requests, round {round}");
        assert_eq!(other_together, other_alone, "{model}: the other same-length image request, round {round}");
    }
}

/// `messages` (one image, then text) with another fixture image and question that give the prompt the same token
/// count, so that the two requests decode as one batch, and a different answer alone, so that answers trading
/// tokens between the two show.
async fn same_length_other_answer(
    engine: &MistralRsEngine,
    messages: &Value,
    answer: &str,
    max_output_tokens: u32,
) -> (Prompt, String) {
    let want = engine.count_tokens(&prompt_from_messages(messages)).await.unwrap();
    let mut images: Vec<_> = std::fs::read_dir(repo_root().join("fixtures/images"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".png"))
        .collect();
    images.sort();
    for question in ["Caption this image.", "Describe the image.", "What is this?", "What colour is it?"] {
        for name in &images {
            let mut other = messages.clone();
            other[0]["content"][0]["path"] = Value::from(format!("fixtures/images/{name}"));
            other[0]["content"][1]["text"] = Value::from(question);
            let prompt = prompt_from_messages(&other);
            if engine.count_tokens(&prompt).await.unwrap() != want {
                continue;
            }
            let other_answer = greedy(engine, &prompt, max_output_tokens).await;
            if other_answer != answer {
                return (prompt, other_answer);
            }
        }
    }
    panic!("no fixture image and question give a prompt of the same length with another answer");
}

async fn greedy(engine: &MistralRsEngine, prompt: &Prompt, max_output_tokens: u32) -> String {
    let sampling =
        SamplingOptions { temperature: Some(0.0), max_output_tokens: Some(max_output_tokens), ..Default::default() };
    let request = GenerateRequest { prompt: prompt.clone(), sampling, constraint: OutputConstraint::None, caller: None, priority: Default::default() };
    collect(engine.generate(request).await.unwrap()).await.unwrap().0
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max)
}

/// The model folder without its weights: every file but `*.safetensors`, copied into a temporary folder.
fn processor_only(model: &str) -> tempfile::TempDir {
    let source = repo_root().join("fixtures/models").join(model);
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "safetensors") {
            continue;
        }
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

/// The processor without weights (`LocalProcessor`, what a model on an upstream engine is counted with) counts
/// every case of every family as transformers did, from the folder's config, tokenizer and chat template alone.
#[test]
fn the_processor_alone_counts_as_transformers() {
    for model in ["qwen2_5_vl-tiny", "qwen3_vl-tiny", "gemma3-tiny", "idefics3-tiny"] {
        let folder = processor_only(model);
        let processor = LocalProcessor::open(folder.path()).unwrap_or_else(|e| panic!("{model}: {e}"));
        let text = std::fs::read_to_string(repo_root().join(format!("fixtures/expected/{model}.json"))).unwrap();
        let expected: Value = serde_json::from_str(&text).unwrap();
        for case in expected["cases"].as_array().unwrap() {
            let name = format!("{model}/{}", case["name"].as_str().unwrap());
            let prompt = prompt_from_messages(&case["messages"]);
            let counted = processor.count(&processor.prepare(&prompt).unwrap()).unwrap();
            assert_eq!(counted.total() as u64, case["prompt_token_count"].as_u64().unwrap(), "{name}: prompt tokens");
            let image: u64 = case["image_token_counts"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum();
            assert_eq!(counted.image as u64, image, "{name}: image tokens");
        }
    }
}
