#!/usr/bin/env bash
# Runs the whole test suite: Rust unit and integration tests (including numerics parity with transformers),
# then the black-box conformance tests that drive `glimpse serve` with the official Python SDK and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
export HF_HUB_OFFLINE=1 CARGO_TERM_COLOR=never
# One feature set for everything: the binary the SDK tests start and the test targets share one build of
# mistralrs (building `-p glimpse-cli` alone would unify features differently and compile it twice).
cargo build --locked --workspace --all-targets
cargo test --locked --workspace
.venv/bin/python -m pytest tests/sdk -q -p no:cacheprovider
# The File API and Interactions tests again, against two replicas sharing PostgreSQL and S3 behind a balancer.
GLIMPSE_TEST_REPLICAS=2 .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/sdk/test_files.py tests/sdk/test_interactions.py tests/sdk/test_interactions_rest.py
