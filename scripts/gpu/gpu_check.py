"""The GPU check: Glimpse's CUDA build against transformers on the same card, the same checkpoint, in one run.

For each engine, on one Qwen2.5-VL checkpoint (scripts/gpu-check.sh writes the 7B shape with random bf16 weights
whose end tokens never win, so every answer runs to its limit):

* load time, and GPU memory once loaded and at its peak (the card's used memory less what it used before the
  engine started, sampled every 100 ms; on a CPU dry run the process's resident memory);
* time to first token for one image at 448×448, 1024×768 and 1920×1080 with a short question: a 1-token answer,
  request to answer, pixel path included (transformers: its processor, then `generate(max_new_tokens=1)`), the
  median of `--reps` after one warm-up; transformers' forward pass alone on the processor's tensors (what
  `../shared/bench/hf_vlm_gpu_baseline.py` times) is reported beside it;
* decode tokens/s at batch 1: one streamed answer of `--new-tokens` tokens to the 1024×768 prompt, the tokens after
  the first over the time after the first (transformers: `generate` of N tokens less the 1-token time, as the
  baseline script estimates it);
* aggregate tokens/s of `--concurrent` requests at once (transformers: one batched `generate` of that many);
* agreement: the processor's prompt length equals Glimpse's `promptTokenCount` at every size, and Glimpse's greedy
  answer (8 tokens) equals transformers' up to the first step whose top-2 margin is within `--tie-margin` (the two
  engines' rounding in bf16 may pick either side of a near tie).

Prints one table with ratios and the issue's goals; writes the numbers to OUT/gpu-check.json.

Usage: gpu_check.py --glimpse BIN --model DIR [--device cuda|cpu] [--dtype bfloat16|float32] [--new-tokens N]
                    [--concurrent N] [--reps N] [--out DIR]
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from benchutil import PeakSampler, free_port, rss_mib  # noqa: E402
from models import served  # noqa: E402

SIZES = [(448, 448), (1024, 768), (1920, 1080)]
QUESTION = "Describe this photo in detail."
GREEDY_TOKENS = 8
# The goals of issue 38 on an H100 (Qwen2.5-VL-7B shape, bf16).
GOALS = {"ttft_448x448_ms": 50, "ttft_1024x768_ms": 90, "ttft_1920x1080_ms": 200, "decode_b1_tok_s": 127,
         "concurrent_tok_s": 850}


def photo(width: int, height: int) -> bytes:
    """A photo-like JPEG (smooth shapes and grain) that needs no file: the weights are random, only the size
    matters, but a JPEG of noise or of one colour would decode unlike a photo."""
    rng = np.random.default_rng(width * 7919 + height)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for c in range(3):
        fx, fy, phase = rng.uniform(1, 6, 2).tolist() + [rng.uniform(0, 6.28)]
        channels.append(128 + 90 * np.sin(fx * x / width * 6.28 + phase) * np.cos(fy * y / height * 6.28))
    pixels = np.stack(channels, axis=-1) + rng.normal(0, 12, (height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def gpu_used_mb() -> float:
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[0])


def memory_reading(device: str, pid: int, gpu_baseline: float):
    """What an engine's memory is measured by (MiB): the card's used memory less `gpu_baseline` (what it used
    before the engine started; nvidia-smi), or on a CPU run the process's resident memory. Sampled by
    `PeakSampler` every 100 ms."""
    if device == "cuda":
        return lambda: gpu_used_mb() - gpu_baseline
    return lambda: rss_mib(pid)


# ---------------------------------------------------------------------------------------------------------------
# transformers, in a child process (`gpu_check.py --transformers-child ...`): its memory is its own
# ---------------------------------------------------------------------------------------------------------------
def transformers_child(model: Path, images: dict, device: str, dtype: str, new_tokens: int, concurrent: int,
                       reps: int) -> dict:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    memory = memory_reading(device, os.getpid(), gpu_used_mb() if device == "cuda" else 0.0)
    start = time.perf_counter()
    processor = AutoProcessor.from_pretrained(str(model))
    # Straight onto the GPU (device_map needs accelerate, which the GPU machine has); on a CPU dry run, as is.
    placement = {"device_map": device} if device == "cuda" else {}
    net = AutoModelForImageTextToText.from_pretrained(str(model), dtype=getattr(torch, dtype),
                                                      attn_implementation="sdpa", **placement).eval()
    sync()
    result = {"engine": f"transformers {dtype}", "load_s": time.perf_counter() - start}
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}],
        tokenize=False, add_generation_prompt=True)

    def inputs(size: str, n: int = 1):
        image = Image.open(images[size]).convert("RGB")
        return processor(text=[text] * n, images=[image] * n, return_tensors="pt", padding=True).to(device)

    def generate(batch, tokens, **extra):
        with torch.inference_mode():
            out = net.generate(**batch, do_sample=False, max_new_tokens=tokens, min_new_tokens=tokens, **extra)
        sync()
        return out

    def timed(fn) -> float:
        sync()
        t = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t

    with PeakSampler(memory, 0.1) as sampled:
        for size in images:
            prepared = inputs(size)
            forward = lambda: net(**prepared)  # noqa: E731
            with torch.inference_mode():
                forward()
                forward_s = median([timed(forward) for _ in range(reps)])
            generate(inputs(size), 1)  # warm-up
            ttft = median([timed(lambda: generate(inputs(size), 1)) for _ in range(reps)])
            result[f"prompt_tokens_{size}"] = int(prepared["input_ids"].shape[1])
            result[f"ttft_{size}_ms"] = ttft * 1000
            result[f"forward_{size}_ms"] = forward_s * 1000

        photo_size = "1024x768"
        batch = inputs(photo_size)
        out = generate(batch, GREEDY_TOKENS, output_scores=True, return_dict_in_generate=True)
        ids = out.sequences[0, batch["input_ids"].shape[1]:].tolist()
        margins = [float(s[0].float().topk(2).values.diff().abs()) for s in out.scores]
        result["greedy_ids"], result["greedy_margins"] = ids, margins

        total = timed(lambda: generate(inputs(photo_size), new_tokens))
        result["decode_b1_tok_s"] = new_tokens / max(total - result[f"ttft_{photo_size}_ms"] / 1000, 1e-6)
        together = timed(lambda: generate(inputs(photo_size, concurrent), new_tokens))
        result["concurrent_tok_s"] = concurrent * new_tokens / together
    result["memory_loaded_mb"], result["memory_peak_mb"] = sampled.before, sampled.peak
    return result


def transformers(model: Path, images: dict, args) -> dict:
    command = [sys.executable, __file__, "--transformers-child", str(model), json.dumps({k: str(v) for k, v in images.items()}),
               args.device, args.dtype, str(args.new_tokens), str(args.concurrent), str(args.reps)]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"transformers failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------------
# Glimpse
# ---------------------------------------------------------------------------------------------------------------
def glimpse(binary: str, model: Path, images: dict, args) -> dict:
    port = free_port()
    command = [binary, "serve", "--port", str(port), "--data-dir", tempfile.mkdtemp(prefix="glimpse-gpu-check-"),
               "--model", str(model), "--image-cache-bytes", "0", "--encoder-cache-bytes", "0",
               "--prefix-cache-entries", "0", "--max-concurrent", str(max(args.concurrent, 16)),
               "--dtype", {"bfloat16": "bf16", "float32": "f32"}[args.dtype]]
    if args.device == "cpu":
        command.append("--cpu")
    base = f"http://127.0.0.1:{port}"
    gpu_baseline = gpu_used_mb() if args.device == "cuda" else 0.0
    with (served(command, f"{base}/readyz", dict(os.environ, RUST_LOG="warn")) as (server, client, load_s),
          PeakSampler(memory_reading(args.device, server.pid, gpu_baseline), 0.1) as sampled):
        result = {"engine": f"glimpse {args.dtype}", "load_s": load_s}
        parts = {size: {"inline_data": {"mime_type": "image/jpeg", "data": base64.b64encode(Path(path).read_bytes()).decode()}}
                 for size, path in images.items()}

        def body(size: str, tokens: int) -> dict:
            return {"contents": [{"role": "user", "parts": [parts[size], {"text": QUESTION}]}],
                    "generationConfig": {"temperature": 0, "maxOutputTokens": tokens}}

        def ask(size: str, tokens: int) -> dict:
            response = client.post(f"{base}/v1beta/models/{model.name}:generateContent", json=body(size, tokens))
            response.raise_for_status()
            return response.json()

        def stream(size: str, tokens: int) -> tuple[float, float, int]:
            """Seconds to the first text, seconds to the end, tokens answered."""
            start, first, count = time.perf_counter(), None, 0
            url = f"{base}/v1beta/models/{model.name}:streamGenerateContent?alt=sse"
            with client.stream("POST", url, json=body(size, tokens)) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    chunk = json.loads(line[5:])
                    if first is None and any(p.get("text") for c in chunk.get("candidates", [])
                                             for p in c.get("content", {}).get("parts", [])):
                        first = time.perf_counter() - start
                    count = chunk.get("usageMetadata", {}).get("candidatesTokenCount", count)
            return first or 0.0, time.perf_counter() - start, count

        for size in images:
            usage = ask(size, 1)["usageMetadata"]  # warm-up
            result[f"prompt_tokens_{size}"] = usage["promptTokenCount"]
            times = []
            for _ in range(args.reps):
                t = time.perf_counter()
                ask(size, 1)
                times.append(time.perf_counter() - t)
            result[f"ttft_{size}_ms"] = median(times) * 1000

        answer = ask("1024x768", GREEDY_TOKENS)
        result["greedy_text"] = "".join(p.get("text", "") for p in answer["candidates"][0]["content"]["parts"])

        first, total, count = stream("1024x768", args.new_tokens)
        result["decode_b1_tok_s"] = (count - 1) / max(total - first, 1e-6)
        result["decode_b1_tokens"] = count
        with ThreadPoolExecutor(args.concurrent) as pool:
            start = time.perf_counter()
            counts = list(pool.map(lambda _: stream("1024x768", args.new_tokens)[2], range(args.concurrent)))
            together = time.perf_counter() - start
        result["concurrent_tok_s"] = sum(counts) / together
        result["concurrent_tokens"] = sum(counts)
    result["memory_loaded_mb"], result["memory_peak_mb"] = sampled.before, sampled.peak
    return result


# ---------------------------------------------------------------------------------------------------------------
# Agreement and the table
# ---------------------------------------------------------------------------------------------------------------
def agreement(model: Path, reference: dict, ours: dict, tie_margin: float) -> dict:
    """How many of transformers' greedy tokens Glimpse's answer repeats, and whether a difference is a near tie."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
    # Glimpse answers text without special tokens and without the leading space of its first piece, as the SDKs
    # show it: transformers' tokens are compared by the text they decode to, step by step (a re-tokenised answer
    # could split differently).
    theirs, text = reference["greedy_ids"], ours["greedy_text"].lstrip()
    decoded = lambda n: tokenizer.decode(theirs[:n], skip_special_tokens=True).lstrip()  # noqa: E731
    same = 0
    while same < len(theirs) and text.startswith(decoded(same + 1)):
        same += 1
    margin_there = reference["greedy_margins"][same] if same < len(theirs) else None
    prompts = {size: (reference[f"prompt_tokens_{size}"], ours[f"prompt_tokens_{size}"])
               for size in (f"{w}x{h}" for w, h in SIZES) if f"prompt_tokens_{size}" in ours}
    tokens_ok = same == len(theirs) or (margin_there is not None and margin_there <= tie_margin)
    return {"greedy_tokens_equal": same, "greedy_tokens": len(theirs), "margin_at_first_difference": margin_there,
            "prompt_tokens": prompts, "prompts_equal": all(a == b for a, b in prompts.values()),
            "agree": tokens_ok and all(a == b for a, b in prompts.values())}


def table(ours: dict, reference: dict, check: dict, device_name: str) -> str:
    rows = [("load (s)", "load_s", None, False)]
    for w, h in SIZES:
        rows.append((f"first token, {w}×{h} (ms)", f"ttft_{w}x{h}_ms", GOALS.get(f"ttft_{w}x{h}_ms"), False))
    rows += [("decode, batch 1 (tokens/s)", "decode_b1_tok_s", GOALS["decode_b1_tok_s"], True),
             ("concurrent requests (tokens/s)", "concurrent_tok_s", GOALS["concurrent_tok_s"], True),
             ("memory loaded (GB)", "memory_loaded_mb", None, False),
             ("memory peak (GB)", "memory_peak_mb", None, False)]
    lines = [f"GPU check on {device_name}", "",
             "| | goal | Glimpse | transformers | Glimpse vs transformers |", "|---|---|---|---|---|"]
    for label, key, goal, higher_better in rows:
        a, b = ours.get(key), reference.get(key)
        scale = 1 / 1024 if key.startswith("memory") else 1
        fmt = (lambda v: "" if v is None else f"{v * scale:.2f}" if scale != 1 or v < 100 else f"{v:.0f}")  # noqa: E731
        ratio = "" if not a or not b else f"{(a / b if higher_better else b / a):.2f}x"
        met = "" if goal is None or a is None else (" ✓" if (a >= goal if higher_better else a <= goal) else " ✗")
        goal_text = "" if goal is None else (f"≥ {goal}" if higher_better else f"≤ {goal}")
        lines.append(f"| {label} | {goal_text} | {fmt(a)}{met} | {fmt(b)} | {ratio} |")
    forward = ", ".join(f"{w}×{h} {reference[f'forward_{w}x{h}_ms']:.0f}"
                        for w, h in SIZES if f"forward_{w}x{h}_ms" in reference)
    lines += ["", f"transformers' forward pass alone (the baseline script's measure), ms: {forward}",
              f"prompt tokens (processor, Glimpse): {check['prompt_tokens']}",
              f"greedy tokens equal: {check['greedy_tokens_equal']} of {check['greedy_tokens']}"
              + ("" if check["margin_at_first_difference"] is None
                 else f" (first difference at a top-2 margin of {check['margin_at_first_difference']:.3f})"),
              f"agreement: {'yes' if check['agree'] else 'NO'}"]
    return "\n".join(lines)


def main() -> int:
    if sys.argv[1:2] == ["--transformers-child"]:
        model, images, device, dtype, new_tokens, concurrent, reps = sys.argv[2:9]
        print(json.dumps(transformers_child(Path(model), json.loads(images), device, dtype, int(new_tokens),
                                            int(concurrent), int(reps))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--glimpse", required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--concurrent", type=int, default=16)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tie-margin", type=float, default=None,
                        help="a top-2 margin within which the engines may differ (default: 1.0 in bf16, 0.05 in f32)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out/gpu-check")))
    args = parser.parse_args()
    tie_margin = args.tie_margin if args.tie_margin is not None else (1.0 if args.dtype == "bfloat16" else 0.05)
    args.out.mkdir(parents=True, exist_ok=True)

    folder = Path(tempfile.mkdtemp(prefix="gpu-check-images-"))
    images = {}
    for w, h in SIZES:
        images[f"{w}x{h}"] = folder / f"photo-{w}x{h}.jpg"
        images[f"{w}x{h}"].write_bytes(photo(w, h))
    device_name = "CPU (dry run)"
    if args.device == "cuda":
        device_name = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                     capture_output=True, text=True, check=True).stdout.strip()
    print(f"== transformers on {device_name}", file=sys.stderr, flush=True)
    reference = transformers(args.model, images, args)
    print(json.dumps(reference), file=sys.stderr, flush=True)
    print(f"== Glimpse on {device_name}", file=sys.stderr, flush=True)
    ours = glimpse(args.glimpse, args.model, images, args)
    print(json.dumps(ours), file=sys.stderr, flush=True)
    check = agreement(args.model, reference, ours, tie_margin)
    report = table(ours, reference, check, device_name)
    print(report)
    (args.out / "gpu-check.md").write_text(report + "\n")
    (args.out / "gpu-check.json").write_text(json.dumps(
        {"device": device_name, "model": str(args.model), "dtype": args.dtype, "new_tokens": args.new_tokens,
         "concurrent": args.concurrent, "reps": args.reps, "goals": GOALS, "glimpse": ours, "transformers": reference,
         "agreement": check}, indent=1))
    return 0 if check["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
