#!/usr/bin/env bash
# The main job: build Glimpse and serve the Gemini API on the committed tiny Qwen2.5-VL fixture model.
# Usage: scripts/serve-fixture.sh [extra `glimpse serve` flags]   (port 8080 unless GLIMPSE_PORT is set)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
export HF_HUB_OFFLINE=1
# The same build as scripts/test.sh, so running both compiles mistralrs once.
cargo build --locked --workspace --all-targets
exec target/debug/glimpse serve --model fixtures/models/qwen2_5_vl-tiny "$@"
