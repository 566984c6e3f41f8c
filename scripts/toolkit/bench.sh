#!/usr/bin/env bash
# Images per second per toolkit task on this machine: the Rust toolkit (tract-onnx, pipelines as served) and,
# in the same run, onnxruntime on the same ONNX files with the same preprocessing (one thread each), with the
# ratio tract / onnxruntime where both run the task. Usage: scripts/toolkit/bench.sh [passes]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
passes=${1:-3}
cargo build -q --locked --workspace --all-targets
.venv/bin/python -c "import onnxruntime" 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check onnxruntime==1.32.0
rust=$(target/debug/examples/bench "$passes" | tee /dev/stderr | tail -n 1)
reference=$(.venv/bin/python scripts/toolkit/bench_reference.py "$passes")
echo "onnxruntime: $reference" >&2
.venv/bin/python - "$rust" "$reference" <<'PY'
import json, sys
rust, ref = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{'task':<10} {'tract img/s':>12} {'onnxruntime img/s':>18} {'ratio':>7}")
for task, value in rust.items():
    other = ref.get(task)
    ratio = f"{value / other:7.2f}" if other else "      -"
    print(f"{task:<10} {value:12.2f} {other if other else '-':>18} {ratio}")
PY
