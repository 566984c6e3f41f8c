#!/usr/bin/env bash
# Many clients at once against the default model (the built-in toolkit): 200 clients sending 1 MP photos, then
# 50 clients sending 40 MP photos, each run checked against its targets (every answer 200 or 429, peak RSS at most
# 1.5 GB, `GET models` under 100 ms); then the first run again with admission control turned off, for comparison.
# Prints the table the README quotes. Takes about 2 minutes on 2 cores after the build; the last run takes the
# server to about 14 GB.
# Usage: scripts/bench/load.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup-deps.sh >/dev/null
cargo build -q --locked --workspace --all-targets
.venv/bin/python scripts/bench/load.py --check
echo "admission control off (--max-concurrent 1000):"
.venv/bin/python scripts/bench/load.py --runs 200x1 --extra --max-concurrent 1000
