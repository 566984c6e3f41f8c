#!/usr/bin/env bash
# The long fuzzing campaign (issue 36): each target of crates/glimpse-fuzz under libFuzzer (cargo-fuzz, nightly),
# coverage-guided, for GLIMPSE_FUZZ_RUNS executions (default 1,000,000), GLIMPSE_FUZZ_JOBS targets at a time
# (default: the number of cores). Usage: scripts/fuzz.sh [TARGET...]   (default: every target)
#
# A run fails on a panic (a broken property included), a hang over 10 s, more than 2 GB resident or one
# allocation over 512 MB. Crashing inputs land in out/fuzz/artifacts/TARGET/; copy one into
# fuzz/regressions/TARGET/ once fixed, and CI's short pass (`cargo test -p glimpse-fuzz`) replays it for ever.
# The corpus grows in out/fuzz/corpus/TARGET/ (seeded from fuzz/seeds/TARGET/) and is reused by later runs.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${GLIMPSE_FUZZ_RUNS:-1000000}
jobs=${GLIMPSE_FUZZ_JOBS:-$(nproc)}

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
# No sanitizer: the targets are safe Rust over C libraries that cargo-fuzz would not instrument anyway, and
# without ASan a run is about twice as fast.
(cd fuzz && cargo +nightly fuzz build --sanitizer none --release)
bin=fuzz/target/x86_64-unknown-linux-gnu/release
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)

mkdir -p out/fuzz
run_one() {
  local t=$1 bin=$2 runs=$3
  mkdir -p "out/fuzz/corpus/$t" "out/fuzz/artifacts/$t"
  # The File API's database and blobs on tmpfs where there is one: SQLite's syncs would otherwise set the pace.
  local data
  data="$([ -d /dev/shm ] && echo /dev/shm || echo out/fuzz)/glimpse-fuzz-data-$t"
  rm -rf "$data"
  local started=$SECONDS rc=0
  GLIMPSE_FUZZ_DATA="$data" "$bin/$t" "out/fuzz/corpus/$t" "fuzz/seeds/$t" -runs="$runs" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 -artifact_prefix="out/fuzz/artifacts/$t/" \
    >"out/fuzz/$t.log" 2>&1 || rc=$?
  rm -rf "$data"
  local execs
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "out/fuzz/$t.log" | grep -o '[0-9]*$' || echo 0)
  printf '%-22s %12s executions %7s s  %s\n' "$t" "$execs" "$((SECONDS - started))" \
    "$([ $rc = 0 ] && echo ok || echo "FAILED (rc $rc): see out/fuzz/$t.log and out/fuzz/artifacts/$t/")"
  return $rc
}
export -f run_one
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} "$bin" "$runs" | tee out/fuzz/summary.txt
! grep -q FAILED out/fuzz/summary.txt
