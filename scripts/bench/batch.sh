#!/usr/bin/env bash
# The Batch API and context caching, measured: 1,000 toolkit requests and 200 `shapes` requests as a batch job
# against the same requests sent one by one (and from concurrent clients), interactive latency while a batch
# runs, and time to first token with a cachedContent (a 12 MP photo and a long system instruction) against the
# same request sent in full, on a vision tower of real size. Prints the lines the README quotes; the JSON is
# written to out/bench-batch/. Takes about 25 minutes on 2 cores (the real-size tower is made once, ~5 minutes).
# Usage: scripts/bench/batch.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup-deps.sh >/dev/null
export HF_HUB_OFFLINE=1
cargo build -q --locked --workspace --all-targets
py=$(scripts/bench/venv.sh torch transformers httpx)
out=out/bench-batch
mkdir -p "$out"
$py scripts/bench/batch.py target/debug/glimpse toolkit 1000 > "$out/toolkit.json"
$py scripts/bench/batch.py target/debug/glimpse shapes 200 --clients 4 > "$out/shapes.json"
$py scripts/bench/make_images.py "$out/images" >&2
tower=out/bench-pixels/wide-tower
[ -s "$tower/model.safetensors" ] || $py scripts/bench/make_wide_tower.py "$tower" >&2
$py scripts/bench/cache_ttft.py target/debug/glimpse "$tower" "$out/images/photo-4032x3024.jpg" 600 > "$out/cache.json"
$py - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| model | requests | one by one | concurrent clients | batch (default share) | batch (all slots) | interactive p50 idle / during batch |")
print("|---|---|---|---|---|---|---|")
for name in ("toolkit", "shapes"):
    r = json.loads((out / f"{name}.json").read_text())
    print(f"| {name} | {r['requests']} | {r['one_by_one_per_s']:.1f}/s | {r['concurrent_clients_per_s']:.1f}/s "
          f"({r['concurrent_clients']}) | {r['batch_default_share_per_s']:.1f}/s | {r['batch_all_slots_per_s']:.1f}/s "
          f"| {r['interactive_idle_p50_ms']:.0f} / {r['interactive_during_batch_p50_ms']:.0f} ms |")
c = json.loads((out / "cache.json").read_text())
print(f"\nTTFT, 12 MP photo + system instruction ({c['cache_tokens']} tokens cached), Qwen2.5-VL-3B-sized vision tower: "
      f"full request cold {c['cold_ms']:.0f} ms, full request again {c['warm_ms']:.0f} ms, with cachedContent "
      f"{c['cached_ms']:.0f} ms ({c['cached_over_cold']:.3f} of cold, {c['cached_over_warm']:.2f} of again); "
      f"creating the cache {c['cache_create_ms']:.0f} ms")
PY
