#!/usr/bin/env bash
# Real-size models on this CPU, in one run: for each model, a random-weight checkpoint of the published shape
# (scripts/models/make_real_shape.py, cached outside the checkout), its parity with transformers
# (crates/glimpse-backend-mistralrs/tests/parity.rs, real_shape_matches_transformers), then load time, memory, time
# to first token for a 1024x768 photo, decode tokens/s and 1 / 4 concurrent requests for Glimpse (f32, --isq q8_0,
# --isq q4k), transformers (f32) and llama.cpp's llama-server (f32 and q8_0 GGUF from llama.cpp's own converter).
# Prints the README's table; the JSON goes to out/bench-models/.
# Takes about 15 minutes per small model and an hour for Qwen2.5-VL-3B on 2 cores (24 GB of memory needed for it).
# Usage: scripts/bench/models.sh [MODEL...]   (default: smolvlm-256m qwen2_5_vl-3b; any folder of
#        scripts/models/configs). ISQ="q8_0 q4k" and GGUF_TYPES="f32 q8_0" (the defaults) choose the quantised runs;
#        TTFT_ROUNDS=3 (the default; 0 skips it) times the photo's first token again with Glimpse and transformers
#        taking turns, both loaded at once (the machine's speed drifts between the table's runs), where their peaks
#        fit in the memory available (not Qwen2.5-VL-3B on 24 GB); CONCURRENCY="4 16" (default: none) also times that
#        many 64-token text answers at once against one, Glimpse and transformers' batched generate.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup-deps.sh >/dev/null
export HF_HUB_OFFLINE=1
cargo build -q --locked --workspace --all-targets
py=$(scripts/bench/venv.sh torch transformers httpx)
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(smolvlm-256m qwen2_5_vl-3b)
cache="${GLIMPSE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/glimpse}/real-shape"
out=out/bench-models
mkdir -p "$out"
server=$(scripts/peer/llama-server.sh)
llama_src=$(scripts/peer/llama-cpp-source.sh)
$py scripts/bench/make_images.py "$out/images" >&2
threads=$(nproc)

for model in "${models[@]}"; do
  $py scripts/models/make_real_shape.py --out "$cache" --reference "$model" >&2
  echo "== $model: parity with transformers" >&2
  GLIMPSE_REAL_SHAPE="$cache/$model" cargo test -q --locked --workspace --test parity real_shape_matches_transformers \
    -- --ignored --nocapture 2>&1 | grep -E "prompt tokens|test result|panicked|differ" >&2
  case "$model" in
    qwen*) pre=qwen2 ;;
    *) pre=gpt-2 ;;
  esac
  ggufs=()
  for type in ${GGUF_TYPES-f32 q8_0}; do
    dir="$cache/gguf/$model-$type"
    if [ ! -s "$dir/mmproj.gguf" ]; then
      $py scripts/peer/convert_to_gguf.py "$llama_src" "$cache/$model" "$dir" "$pre" "$type" >"$out/convert-$model-$type.log" 2>&1 \
        || { tail -20 "$out/convert-$model-$type.log" >&2; exit 1; }
    fi
    ggufs+=(--gguf "$dir")
  done
  echo "== $model: timing" >&2
  $py scripts/bench/models.py target/debug/glimpse "$cache/$model" "$out/images/photo-1024x768.jpg" "$threads" \
    $(for q in ${ISQ-q8_0 q4k}; do echo --isq "$q"; done) --llama-server "$server" "${ggufs[@]}" > "$out/$model.json"
  rm -f "$out/$model-ttft.json"
  if [ "${TTFT_ROUNDS:-3}" -gt 0 ]; then
    echo "== $model: first token, Glimpse and transformers taking turns" >&2
    $py scripts/bench/models.py --interleaved-ttft target/debug/glimpse "$cache/$model" "$out/images/photo-1024x768.jpg" \
      "$threads" "${TTFT_ROUNDS:-3}" "$out/$model.json" > "$out/$model-ttft.json"
  fi
  rm -f "$out/$model-concurrency.json"
  if [ -n "${CONCURRENCY:-}" ]; then
    echo "== $model: text answers at once ($CONCURRENCY) against one" >&2
    $py scripts/bench/models.py --concurrency target/debug/glimpse "$cache/$model" "$out/images/photo-1024x768.jpg" \
      "$threads" $CONCURRENCY > "$out/$model-concurrency.json"
  fi
done
files=()
for model in "${models[@]}"; do files+=("$out/$model.json"); done
for model in "${models[@]}"; do [ ! -s "$out/$model-ttft.json" ] || files+=("$out/$model-ttft.json"); done
for model in "${models[@]}"; do [ ! -s "$out/$model-concurrency.json" ] || files+=("$out/$model-concurrency.json"); done
$py scripts/bench/models.py --report "${files[@]}"
echo "(machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $threads threads)"
