//! The pixel path, timed on one thread: an image's request bytes (base64, as a client sends it inline) to the
//! tensor a Qwen-VL model consumes, through the code the server runs: base64 decoding, the header check, the plan
//! from the processor config, decoding at the planned size, and the engine's `pixel_values` for an image already at
//! its size (mistralrs's Qwen-VL processors, patched to do it in one pass: `vendor/README.md`, ninth fix).
//! `scripts/bench/pixels.sh` runs it beside Hugging Face's processors on the same files.
//!
//! cargo run --example pixel_path -p glimpse-backend-mistralrs -- PREPROCESSOR_CONFIG.json FILE...
//! prints one JSON object: {file: {"ms": median, "width", "height", "tokens"}}

use std::time::Instant;

use base64::Engine as _;
use glimpse_backend_mistralrs::Family;
use glimpse_core::media::{ImageLimits, ImageSource};
use serde_json::{json, Value};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let config_path = args.next().ok_or("usage: pixel_path PREPROCESSOR_CONFIG.json FILE...")?;
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&config_path)?)?;
    let family = Family::detect(&json!({"model_type": "qwen2_5_vl"}), &config, &Value::Null)?;
    let limits = ImageLimits::default();
    let size = |key: &str, default: u64| config[key].as_u64().unwrap_or(default) as usize;
    let triple = |key: &str| -> Result<[f64; 3], Error> {
        let values: Vec<f64> = config[key].as_array().ok_or(key)?.iter().filter_map(Value::as_f64).collect();
        Ok(values.try_into().map_err(|_| format!("{key} needs three values"))?)
    };
    let mut report = serde_json::Map::new();
    for file in args {
        let request_bytes = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&file)?);
        let once = || -> Result<(Vec<usize>, u32, u32, u32), Error> {
            let bytes = base64::engine::general_purpose::STANDARD.decode(&request_bytes)?;
            let source = ImageSource::probe(bytes, None, &limits)?;
            let plan = family.plan_image(source.width(), source.height(), None)?;
            let pixels = source.pixels(plan.width, plan.height)?;
            let (mean, std) = (triple("image_mean")?, triple("image_std")?);
            let tensor = mistralrs_core::qwen_vl_patches(&pixels, mean, std, size("temporal_patch_size", 2), size("patch_size", 14), size("merge_size", 2))?;
            Ok((tensor.dims().to_vec(), plan.width, plan.height, plan.tokens))
        };
        let (tensor, width, height, tokens) = once()?;
        let mut times = Vec::new();
        let start = Instant::now();
        while times.len() < 5 || (start.elapsed().as_secs_f64() < 2.0 && times.len() < 200) {
            let t = Instant::now();
            once()?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let name = std::path::Path::new(&file).file_name().and_then(|n| n.to_str()).unwrap_or(&file).to_string();
        eprintln!("{name}: {:.2} ms -> {width}x{height} ({tokens} tokens), tensor {tensor:?}", times[times.len() / 2]);
        report.insert(name, json!({"ms": times[times.len() / 2], "width": width, "height": height, "tokens": tokens}));
    }
    println!("{}", Value::Object(report));
    Ok(())
}
