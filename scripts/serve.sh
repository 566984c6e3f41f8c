#!/usr/bin/env bash
# The main job: install what Glimpse needs, build it, show the built-in toolkit at work on a real photograph
# (`glimpse ask` prints Gemini-format detections for Debian darknet's dog.jpg), then serve the Gemini API with
# the toolkit as the default model on port 8080 (GLIMPSE_PORT overrides).
# Usage: scripts/serve.sh [extra `glimpse serve` flags, e.g. --model /path/to/Qwen2.5-VL-3B-Instruct]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
export HF_HUB_OFFLINE=1
# The same build as scripts/test.sh, so running both compiles everything once.
cargo build --locked --workspace --all-targets
photo=fixtures/photos/dog.jpg   # Debian darknet's sample photo, unpacked by setup-deps.sh
echo "glimpse ask $photo \"Detect the all of the prominent items in the image. ...\""
target/debug/glimpse ask "$photo" \
  "Detect the all of the prominent items in the image. The box_2d should be [ymin, xmin, ymax, xmax] normalized to 0-1000."
exec target/debug/glimpse serve "$@"
