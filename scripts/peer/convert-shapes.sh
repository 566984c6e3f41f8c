#!/usr/bin/env bash
# Converts the bundled shapes model (models/shapes) to GGUF with llama.cpp's own converter, for llama-server
# (the peer engine of tests/sdk/test_upstream.py): fixtures/peer/shapes.gguf (the language model) and
# shapes-mmproj.gguf (its vision projector), float32, with fixtures/peer/source.json recording the sha256 of
# the weights they come from and of each file. Run it again after retraining shapes (the test checks the hashes).
# The converter needs PyTorch, which PyPI ships only with CUDA libraries (gigabytes), so the conversion is
# committed rather than run by every test set-up; it uses the benchmarks' venv (.venv-bench).
set -euo pipefail
cd "$(dirname "$0")/../.."

src=$(scripts/peer/llama-cpp-source.sh)
py=$(scripts/bench/venv.sh torch transformers)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
$py scripts/peer/convert_to_gguf.py "$src" models/shapes "$out" >"$out/convert.log" 2>&1 \
  || { tail -30 "$out/convert.log" >&2; exit 1; }
mkdir -p fixtures/peer
mv "$out/model.gguf" fixtures/peer/shapes.gguf
mv "$out/mmproj.gguf" fixtures/peer/shapes-mmproj.gguf
python3 - <<'PY'
import hashlib, json, pathlib
digest = lambda p: hashlib.sha256(pathlib.Path(p).read_bytes()).hexdigest()
source = {
    "llama.cpp": "from llama-cpp-python 0.3.36 (scripts/peer/llama-cpp-source.sh)",
    "model.safetensors": digest("models/shapes/model.safetensors"),
    "shapes.gguf": digest("fixtures/peer/shapes.gguf"),
    "shapes-mmproj.gguf": digest("fixtures/peer/shapes-mmproj.gguf"),
}
pathlib.Path("fixtures/peer/source.json").write_text(json.dumps(source, indent=2) + "\n")
PY
echo "fixtures/peer: shapes.gguf, shapes-mmproj.gguf, source.json"
