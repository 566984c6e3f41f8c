#!/usr/bin/env bash
# Images per second per toolkit task on this machine: the Rust toolkit (pipelines as served) on ONNX Runtime and on
# tract and, in the same run, Python onnxruntime on the same ONNX files with the same preprocessing (Pillow), one
# thread each, with the ratio Glimpse (ONNX Runtime) / Python onnxruntime where both run the task; then whole
# captions one per core at once. Each rate is the median of its passes. Usage: scripts/toolkit/bench.sh [passes]
# (default 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
passes=${1:-5}
cargo build -q --locked --workspace --all-targets
scripts/toolkit/fetch-onnxruntime.sh >/dev/null
.venv/bin/python -c "import onnxruntime" 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check onnxruntime==1.32.0
echo "Glimpse on ONNX Runtime:" >&2
ort=$(GLIMPSE_TOOLKIT_RUNTIME=onnxruntime target/debug/examples/bench "$passes" | tee /dev/stderr | tail -n 1)
echo "Glimpse on tract:" >&2
tract=$(GLIMPSE_TOOLKIT_RUNTIME=tract target/debug/examples/bench "$passes" | tee /dev/stderr | tail -n 1)
reference=$(.venv/bin/python scripts/toolkit/bench_reference.py "$passes")
echo "Python onnxruntime: $reference" >&2
.venv/bin/python - "$ort" "$tract" "$reference" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" <<'PY'
import json, sys
ort, tract, ref = (json.loads(a) for a in sys.argv[1:4])
print(f"{sys.argv[5]}, {sys.argv[4]} cores; images/s, one thread each")
print(f"{'task':<12} {'glimpse (ORT)':>14} {'glimpse (tract)':>16} {'onnxruntime (Python)':>21} {'ratio':>6} {'ms/image':>9}")
for task, value in ort.items():
    other = ref.get(task)
    ratio = f"{value / other:6.2f}" if other else "     -"
    print(f"{task:<12} {value:14.2f} {tract.get(task, 0):16.2f} {other if other else '-':>21} {ratio} {1000 / value:9.1f}")
single = ort["caption"]
for task, value in ort.items():
    if task.startswith("caption_x"):
        print(f"{task}: {value / single:.2f}x one caption at a time ({task[9:]} at once)")
PY
