"""Prints the pixel benchmark's tables (scripts/bench/pixels.sh) from the JSON it wrote."""
import json
import platform
import sys
from pathlib import Path

out = Path(sys.argv[1])


def load(name):
    path = out / name
    return json.loads(path.read_text()) if path.exists() else None


cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
print(f"Machine: {cpu}, {len(open('/proc/cpuinfo').read().split('processor')) - 1} cores\n")
for config, title in (("shapes", "`shapes` processor (at most 140×140)"), ("qwen-1280", "Qwen2.5-VL processor, 1280-token cap (≈1 MP)")):
    glimpse, hf = load(f"glimpse-{config}.json"), load(f"hf-{config}.json")
    print(f"Pixel path, request bytes → the model's input tensor, one thread, {title}, median ms:\n")
    print("| image | planned | Glimpse | HF PIL | HF torchvision | torchvision ÷ Glimpse |")
    print("|---|---|---|---|---|---|")
    for name, g in glimpse.items():
        pil, tv = hf["pil"][name], hf["torchvision"][name]
        print(f"| {name} | {g['width']}×{g['height']} | {g['ms']:.1f} | {pil:.1f} | {tv:.1f} | {tv / g['ms']:.1f}× |")
    print()
ttft = load("ttft.json")
print("`--model shapes`, time to first token (median ms; Glimpse over HTTP with the image inline, transformers in-process,"
      " same threads) and Glimpse's countTokens:\n")
print("| image | Glimpse TTFT | transformers TTFT | Glimpse ÷ transformers | countTokens inline | countTokens by file |")
print("|---|---|---|---|---|---|")
first = None
for name, g in ttft["glimpse"].items():
    t = ttft["transformers"][name]["ttft_ms"]
    first = first or g["ttft_ms"]
    print(f"| {name} | {g['ttft_ms']:.1f} | {t:.1f} | {g['ttft_ms'] / t:.2f} | {g['count_tokens_inline_ms']:.1f} | {g['count_tokens_file_ms']:.1f} |")
big = ttft["glimpse"].get("photo-4032x3024.jpg", {}).get("ttft_ms")
small = ttft["glimpse"].get("photo-448x448.jpg", {}).get("ttft_ms")
if big and small:
    print(f"\nTTFT 12 MP JPEG ÷ 448² JPEG: {big / small:.2f}")
cache = load("cache.json")
if cache:
    c, u = cache["cached_ms"], cache["uncached_ms"]
    print(f"\nThe same 12 MP photo three times in a row, Qwen2.5-VL-3B-sized vision tower (TTFT ms): caches on "
          f"{c[0]:.0f} / {c[1]:.0f} / {c[2]:.0f} (second ÷ first {cache['second_over_first']:.2f}); caches off "
          f"{u[0]:.0f} / {u[1]:.0f} / {u[2]:.0f} ({cache['second_over_first_uncached']:.2f})")
