#!/usr/bin/env bash
# Prints the benchmarks' Python (.venv-bench, from scripts/bench/requirements.txt: torch, transformers and the
# rest of the references), creating or completing the venv first when it cannot import the modules named.
# Usage: py=$(scripts/bench/venv.sh torch transformers httpx)
set -euo pipefail
cd "$(dirname "$0")/../.."
modules=$(IFS=,; echo "$*")
if [ ! -x .venv-bench/bin/python ] || ! .venv-bench/bin/python -c "import $modules" 2>/dev/null; then
  python3 -m venv .venv-bench >&2
  .venv-bench/bin/pip install -q --disable-pip-version-check -r scripts/bench/requirements.txt >&2
fi
echo .venv-bench/bin/python
