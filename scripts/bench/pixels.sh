#!/usr/bin/env bash
# The pixel-path benchmark: Glimpse against Hugging Face's Qwen2-VL image processor (PIL and torchvision backends)
# on the same generated files, in one run, then time to first token and countTokens over HTTP on `--model shapes`
# against transformers on the same checkpoint, then what a repeated photo costs on a vision tower of real size.
# Prints the tables the README quotes; everything is also written to out/bench-pixels/.
# Usage: scripts/bench/pixels.sh [--quick]   (--quick skips the real-size tower, which takes ~10 minutes)
set -euo pipefail
cd "$(dirname "$0")/../.."
quick=${1:-}
scripts/setup-deps.sh >/dev/null
export HF_HUB_OFFLINE=1
cargo build -q --locked --workspace --all-targets
py=$(scripts/bench/venv.sh torch torchvision transformers pillow_heif)
out=out/bench-pixels
mkdir -p "$out"
threads=$(nproc)
$py scripts/bench/make_images.py "$out/images" >&2
images=("$out"/images/photo-448x448.jpg "$out"/images/photo-1024x768.jpg "$out"/images/photo-1920x1080.jpg
        "$out"/images/photo-4032x3024.jpg "$out"/images/noise-4032x3024.jpg "$out"/images/photo-4032x3024.png
        "$out"/images/photo-4032x3024.webp "$out"/images/photo-4032x3024.heic)

# Two processor configurations: the bundled shapes model's (at most 140x140 pixels), and Qwen2.5-VL's with
# the 1280-token cap Qwen's documentation recommends (the configuration of shared/bench/hf_preprocess_cpu.py).
cp models/shapes/preprocessor_config.json "$out/shapes.json"
$py - "$out/qwen-1280.json" <<'PY'
import json, sys
config = json.load(open("models/shapes/preprocessor_config.json"))
config.update(min_pixels=256 * 28 * 28, max_pixels=1280 * 28 * 28, size={"shortest_edge": 256 * 28 * 28, "longest_edge": 1280 * 28 * 28})
json.dump(config, open(sys.argv[1], "w"), indent=2)
PY
for config in shapes qwen-1280; do
  target/debug/examples/pixel_path "$out/$config.json" "${images[@]}" > "$out/glimpse-$config.json"
  $py scripts/bench/pixels_reference.py "$out/$config.json" "${images[@]}" > "$out/hf-$config.json"
done
$py scripts/bench/ttft.py target/debug/glimpse models/shapes "$threads" "${images[@]}" > "$out/ttft.json"
if [ "$quick" != "--quick" ]; then
  [ -s "$out/wide-tower/model.safetensors" ] || $py scripts/bench/make_wide_tower.py "$out/wide-tower" >&2
  $py scripts/bench/cache.py target/debug/glimpse "$out/wide-tower" "$out/images/photo-4032x3024.jpg" > "$out/cache.json"
fi
$py scripts/bench/report_pixels.py "$out"
