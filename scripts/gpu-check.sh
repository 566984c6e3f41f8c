#!/usr/bin/env bash
# The GPU check: Glimpse's CUDA build against transformers on the same card (scripts/gpu/gpu_check.py says what is
# measured). Run it on the GPU machine from the repository root, with the archive scripts/build-cuda.sh made:
#
#     scripts/gpu-check.sh out/glimpse-cuda.tar.xz      # table on stdout, $OUT/gpu-check.{json,md}
#     scripts/gpu-check.sh --dry-run                     # the same on this machine's CPU build, small checkpoint
#
# On the GPU machine nothing is fetched: it needs the NVIDIA driver, and a python3 with torch, transformers,
# tokenizers, safetensors, httpx and Pillow (the lent machines' image has them), whose `nvidia-*` wheels hold the
# CUDA 13 libraries the binary links (cuBLAS, cuRAND, NVRTC, the runtime). The checkpoint, Qwen2.5-VL-7B's
# published shape with random bf16 weights (8.3 B parameters, 16.6 GB), is drawn on the GPU by
# scripts/models/make_real_shape.py into $WORK (default /tmp/glimpse-gpu-check). Sized to fit one 10-minute device
# command (an estimate: it has not run on a GPU yet; docs/gpu.md).
#
# The dry run uses target/debug/glimpse (built if missing) and the same checkpoint with 2 layers and 2 vision
# blocks (every tensor its published shape), float32 on the CPU, 16 tokens and 4 concurrent requests.
set -euo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-out/gpu-check}
work=${WORK:-/tmp/glimpse-gpu-check}
mkdir -p "$OUT" "$work"

if [ "${1:-}" = "--dry-run" ]; then
  python=$(scripts/bench/venv.sh)
  [ -x target/debug/glimpse ] || cargo build --locked -p glimpse-cli --bin glimpse
  "$python" scripts/models/make_real_shape.py --out "$work" --dtype bfloat16 --layers 2 qwen2_5_vl-7b >/dev/null
  exec "$python" scripts/gpu/gpu_check.py --glimpse target/debug/glimpse --model "$work/qwen2_5_vl-7b-2layers" \
    --device cpu --dtype float32 --new-tokens 16 --concurrent 4 --reps 1 --out "$OUT"
fi

archive=${1:?usage: scripts/gpu-check.sh ARCHIVE | --dry-run}
python=${PYTHON:-python3}
started=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

rm -rf "$work/glimpse-cuda"
tar -C "$work" -xJf "$archive"
cat "$work/glimpse-cuda/BUILD.txt"
# The CUDA libraries of the machine's PyTorch wheels (nvidia/cu13/lib, or one folder per library in older ones).
libs=$("$python" - <<'EOF'
import pathlib, nvidia
roots = [pathlib.Path(p) for p in nvidia.__path__]
print(":".join(sorted({str(d) for r in roots for d in r.glob("**/lib") if d.is_dir()})))
EOF
)
export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
binary=$work/glimpse-cuda/glimpse
if ldd "$binary" | grep "not found"; then
  echo "the binary's libraries are missing (above); LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >&2
  exit 1
fi

"$python" scripts/models/make_real_shape.py --out "$work" --dtype bfloat16 --device cuda qwen2_5_vl-7b >/dev/null
echo "== checkpoint ready after $(( $(date +%s) - started )) s"
"$python" scripts/gpu/gpu_check.py --glimpse "$binary" --model "$work/qwen2_5_vl-7b" --out "$OUT"
echo "== done in $(( $(date +%s) - started )) s"
