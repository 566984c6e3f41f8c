//! The toolkit's raw findings on a list of images, for `scripts/toolkit/evaluate.py` to score against ground truth.
//!
//! evaluate MANIFEST.json > predictions.json
//!
//! The manifest is `[{"id", "image": path, "task": "detect" | "read"}]`. Detections are reported down to a score
//! of 0.05 (after the served suppression) so that the scorer can show the served threshold and others; reading
//! reports each line with its box, as served. The runtime is the server's choice (`GLIMPSE_TOOLKIT_RUNTIME`).

use std::path::PathBuf;
use std::time::Instant;

use glimpse_backend_toolkit::Toolkit;
use serde_json::{json, Value};

/// The lowest detection score reported.
const LOWEST_SCORE: f32 = 0.05;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = std::env::args().nth(1).ok_or("usage: evaluate MANIFEST.json")?;
    let items: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&manifest)?)?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let toolkit = Toolkit::load(&glimpse_backend_toolkit::default_model_dir())?;
    let mut out = Vec::new();
    for item in &items {
        let path = root.join(item["image"].as_str().ok_or("an item without an image")?);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let image = glimpse_core::media::decode_image(&bytes, None, &Default::default())?.image;
        let start = Instant::now();
        let found = match item["task"].as_str() {
            Some("detect") => toolkit
                .detector()
                .detect(&image, LOWEST_SCORE)?
                .iter()
                .map(|d| json!({"label": d.label, "score": d.score, "box": d.bbox.to_array()}))
                .collect::<Vec<_>>(),
            Some("read") => toolkit
                .reader()
                .read(&image)?
                .iter()
                .map(|l| json!({"text": l.text, "score": l.score, "box": l.bbox.to_array()}))
                .collect(),
            other => return Err(format!("unknown task {other:?}").into()),
        };
        let seconds = start.elapsed().as_secs_f64();
        out.push(json!({"id": item["id"], "size": [image.width(), image.height()], "seconds": seconds, "found": found}));
    }
    println!("{}", json!({"runtime": toolkit.runtime().name(), "items": out}));
    Ok(())
}
