"""Real-shape models on this CPU: Glimpse against transformers (and llama.cpp's llama-server where given) on the same
checkpoint, the same photo, the same threads, in one run.

For each engine: load time (start to ready), resident memory once loaded and at its peak, time to first token for
one photo (a 1-token answer, the better of two: the first pays for whatever the engine does once), and tokens/s for 1 and 4 concurrent text requests of 64 tokens each
(transformers: one batched `generate` of 4). One text request is the batch-1 decode rate: its prompt is 30-odd
tokens, a few percent of its time (a photo prompt's first token varies by more than the decode takes). The checkpoints' end tokens can never win
(scripts/models/make_real_shape.py), so every answer runs to its limit on every engine.

Glimpse: `glimpse serve --model DIR [--isq Q]` on a free loopback port (image, encoder and prefix caches off, as
transformers has none and llama.cpp is asked not to reuse its cache), Gemini REST. transformers: float32, sdpa attention, `torch.set_num_threads(THREADS)`, in a
child process of its own so that its memory is its own. llama.cpp: `llama-server -m model.gguf --mmproj
mmproj.gguf -t THREADS -np 4` (GGUF from llama.cpp's own converter), OpenAI chat completions with `ignore_eos`.

Usage: models.py GLIMPSE_BIN MODEL_DIR PHOTO THREADS [--isq Q]... [--llama-server BIN --gguf DIR...]
       -> one JSON object on stdout (a --gguf folder is named MODEL-TYPE: llama.cpp at TYPE is compared with
       Glimpse at the same --isq, f32 with f32)
       models.py --report RESULT.json... -> the README's table (and a line per --interleaved-ttft result)
       models.py --concurrency GLIMPSE_BIN MODEL_DIR PHOTO THREADS N... -> aggregate tokens/s of N text requests at
       once (64 tokens each) against one alone: Glimpse serving N concurrent HTTP requests, then transformers'
       batched `generate` of N, each engine alone in memory; one JSON object
       models.py --interleaved-ttft GLIMPSE_BIN MODEL_DIR PHOTO THREADS ROUNDS TABLE.json -> first token for the photo,
       Glimpse and transformers taking turns in one process (the machine's speed drifts by 10-15% over the
       minutes between the table's runs), medians and their ratio as one JSON object; nothing when the two
       engines' peaks in TABLE.json (this model's table run) add up to more than the memory available now
"""
import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from benchutil import PeakRss, free_port

PHOTO_PROMPT = "Describe this photo in detail."
TEXT_PROMPT = "Write a long story about a lighthouse keeper who finds a map in a bottle."
NEW_TOKENS = 64
CONCURRENT = 4
TIMEOUT = httpx.Timeout(3600.0)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(one_token, text_answer) -> dict:
    """The shared protocol, given the two request kinds as callables."""
    ttft = min(timed(one_token) for _ in range(2))
    single = timed(text_answer)
    with ThreadPoolExecutor(CONCURRENT) as pool:
        start = time.perf_counter()
        list(pool.map(lambda _: text_answer(), range(CONCURRENT)))
        together = time.perf_counter() - start
    return {
        "ttft_s": ttft,
        "text_1_tok_s": NEW_TOKENS / single,
        "text_4_tok_s": CONCURRENT * NEW_TOKENS / together,
    }


@contextmanager
def served(args: list[str], ready_url: str, env: dict | None = None):
    """Starts a server and waits until `ready_url` answers 200: yields (process, HTTP client, seconds it took);
    stops it afterwards. Its log goes to a temporary file (a pipe nobody reads would fill and stall it)."""
    log = tempfile.TemporaryFile()
    start = time.perf_counter()
    server = subprocess.Popen(args, stdout=log, stderr=log, env=env)
    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"{Path(args[0]).name} exited: {log.read().decode(errors='replace')[-2000:]}")
                try:
                    if client.get(ready_url).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            yield server, client, time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


# ---------------------------------------------------------------------------------------------------------------
# Glimpse
# ---------------------------------------------------------------------------------------------------------------
@contextmanager
def glimpse_served(binary: str, model: Path, photo: Path, threads: int, isq: str | None):
    """`glimpse serve` on the model (caches off, as transformers has none): yields (process, load seconds, the photo
    as a Gemini part, ask(parts, tokens) -> usageMetadata)."""
    port = free_port()
    args = [binary, "serve", "--port", str(port), "--data-dir", tempfile.mkdtemp(prefix="glimpse-bench-"),
            "--model", str(model), "--image-cache-bytes", "0", "--encoder-cache-bytes", "0", "--prefix-cache-entries", "0",
            "--cpu"]
    if isq:
        args += ["--isq", isq]
    env = dict(os.environ, RUST_LOG="warn", RAYON_NUM_THREADS=str(threads))
    base = f"http://127.0.0.1:{port}"
    with served(args, f"{base}/readyz", env) as (server, client, load_s):
        image = {"inline_data": {"mime_type": "image/jpeg", "data": base64.b64encode(photo.read_bytes()).decode()}}
        url = f"{base}/v1beta/models/{model.name}:generateContent"

        def ask(parts, tokens):
            body = {"contents": [{"role": "user", "parts": parts}],
                    "generationConfig": {"temperature": 0, "maxOutputTokens": tokens}}
            response = client.post(url, json=body)
            response.raise_for_status()
            usage = response.json()["usageMetadata"]
            assert usage["candidatesTokenCount"] == tokens, usage
            return usage

        yield server, load_s, image, ask


def glimpse(binary: str, model: Path, photo: Path, threads: int, isq: str | None) -> dict:
    with glimpse_served(binary, model, photo, threads, isq) as (server, load_s, image, ask), PeakRss(server.pid) as rss:
        usage = []
        result = measure(lambda: usage.append(ask([image, {"text": PHOTO_PROMPT}], 1)),
                         lambda: ask([{"text": TEXT_PROMPT}], NEW_TOKENS))
    return {"engine": f"glimpse {isq or 'f32'}", "load_s": load_s, "rss_loaded_mb": rss.before,
            "rss_peak_mb": rss.peak, "prompt_tokens": usage[0]["promptTokenCount"], **result}


# ---------------------------------------------------------------------------------------------------------------
# transformers (run in a child process: `models.py --transformers-child ...`)
# ---------------------------------------------------------------------------------------------------------------
def transformers_loaded(model: Path, photo: Path, threads: int):
    """The checkpoint in transformers (f32, SDPA, `threads` threads): (load seconds, photo_inputs(),
    text_inputs(n), generate(inputs, tokens))."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    torch.set_num_threads(threads)
    start = time.perf_counter()
    processor = AutoProcessor.from_pretrained(str(model))
    net = AutoModelForImageTextToText.from_pretrained(str(model), dtype=torch.float32, attn_implementation="sdpa").eval()
    load_s = time.perf_counter() - start
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    def photo_inputs():
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PHOTO_PROMPT}]}]
        text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return processor(text=[text], images=[Image.open(photo).convert("RGB")], return_tensors="pt")

    def text_inputs(n):
        messages = [{"role": "user", "content": [{"type": "text", "text": TEXT_PROMPT}]}]
        text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return processor(text=[text] * n, return_tensors="pt", padding=True)

    def generate(inputs, tokens):
        with torch.no_grad():
            out = net.generate(**inputs, do_sample=False, max_new_tokens=tokens, min_new_tokens=tokens)
        assert out.shape[1] - inputs["input_ids"].shape[1] == tokens

    return load_s, photo_inputs, text_inputs, generate


def transformers_child(model: Path, photo: Path, threads: int) -> dict:
    load_s, photo_inputs, text_inputs, generate = transformers_loaded(model, photo, threads)
    with PeakRss(os.getpid()) as rss:
        prompt_tokens = int(photo_inputs()["input_ids"].shape[1])  # the processor only
        ttft = min(timed(lambda: generate(photo_inputs(), 1)) for _ in range(2))
        single = timed(lambda: generate(text_inputs(1), NEW_TOKENS))
        together = timed(lambda: generate(text_inputs(CONCURRENT), NEW_TOKENS))
    return {"engine": "transformers f32", "load_s": load_s, "rss_loaded_mb": rss.before,
            "rss_peak_mb": rss.peak, "prompt_tokens": prompt_tokens, "ttft_s": ttft,
            "text_1_tok_s": NEW_TOKENS / single,
            "text_4_tok_s": CONCURRENT * NEW_TOKENS / together}


def transformers(model: Path, photo: Path, threads: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--transformers-child", str(model), str(photo), str(threads)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"transformers failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------------
# llama.cpp
# ---------------------------------------------------------------------------------------------------------------
def llama_cpp(server_bin: str, gguf: Path, photo: Path, threads: int, label: str) -> dict:
    port = free_port()
    args = [server_bin, "-m", str(gguf / "model.gguf"), "--mmproj", str(gguf / "mmproj.gguf"), "-t", str(threads),
            "-tb", str(threads), "-np", str(CONCURRENT), "-c", str(8192 * CONCURRENT), "--port", str(port),
            "--host", "127.0.0.1", "--no-warmup", "--cache-ram", "0"]
    base = f"http://127.0.0.1:{port}"
    with served(args, f"{base}/health") as (server, client, load_s), PeakRss(server.pid) as rss:
        data_url = "data:image/jpeg;base64," + base64.b64encode(photo.read_bytes()).decode()

        def ask(content, tokens):
            body = {"messages": [{"role": "user", "content": content}], "max_tokens": tokens, "temperature": 0,
                    "ignore_eos": True, "cache_prompt": False}
            response = client.post(f"{base}/v1/chat/completions", json=body)
            response.raise_for_status()
            usage = response.json()["usage"]
            assert usage["completion_tokens"] == tokens, usage
            return usage

        photo_content = [{"type": "image_url", "image_url": {"url": data_url}}, {"type": "text", "text": PHOTO_PROMPT}]
        usage = []
        result = measure(lambda: usage.append(ask(photo_content, 1)), lambda: ask(TEXT_PROMPT, NEW_TOKENS))
    return {"engine": f"llama.cpp {label}", "load_s": load_s, "rss_loaded_mb": rss.before,
            "rss_peak_mb": rss.peak, "prompt_tokens": usage[0]["prompt_tokens"], **result}


def report(files: list[Path]) -> None:
    """The README's table: one row per engine and model, with ratios against transformers (above 1: faster) and
    against llama.cpp at the same weight type."""
    print("| model | engine | load s | memory loaded / peak | photo prompt tokens | first token s "
          "| decode tok/s: 1 / 4 concurrent | vs transformers: first token, decode | vs llama.cpp: first token, decode |")
    print("|---|---|---|---|---|---|---|---|---|")
    results = [json.loads(file.read_text()) for file in files]
    for result in results:
        if "runs" not in result:
            continue
        runs = result["runs"]
        ref = next((r for r in runs if r["engine"].startswith("transformers")), None)
        peers = {r["engine"].split()[-1].split("-")[-1]: r for r in runs if r["engine"].startswith("llama.cpp")}
        for r in runs:
            vs_hf = vs_llama = ""
            if ref and r is not ref:
                vs_hf = f"{ref['ttft_s'] / r['ttft_s']:.2f}x, {r['text_1_tok_s'] / ref['text_1_tok_s']:.2f}x"
            peer = peers.get(r["engine"].split()[-1])
            if r["engine"].startswith("glimpse") and peer:
                vs_llama = f"{peer['ttft_s'] / r['ttft_s']:.2f}x, {r['text_1_tok_s'] / peer['text_1_tok_s']:.2f}x"
            print(f"| {result['model']} | {r['engine']} | {r['load_s']:.1f} | {r['rss_loaded_mb'] / 1024:.2f} / "
                  f"{r['rss_peak_mb'] / 1024:.2f} GB | {r['prompt_tokens']} | {r['ttft_s']:.2f} | "
                  f"{r['text_1_tok_s']:.1f} / {r['text_4_tok_s']:.1f} | {vs_hf} | {vs_llama} |")
    for result in (r for r in results if "tok_s" in r):
        glimpse, hf = result["tok_s"]["glimpse"], result["tok_s"]["transformers"]
        for n in (n for n in glimpse if n != "1"):
            print(f"{result['model']}: {n} text answers at once: glimpse {glimpse[n]:.1f} tok/s "
                  f"({glimpse[n] / glimpse['1']:.2f}x its one answer's {glimpse['1']:.1f}), transformers' batch of {n} "
                  f"{hf[n]:.1f} tok/s ({hf[n] / hf['1']:.2f}x its {hf['1']:.1f}): glimpse {glimpse[n] / hf[n]:.2f}x transformers")
    for result in (r for r in results if "median_s" in r):
        median = result["median_s"]
        print(f"{result['model']}: first token with the engines taking turns ({result['rounds']} each, medians): "
              f"glimpse {median['glimpse']:.2f} s, transformers {median['transformers']:.2f} s: "
              f"{result['glimpse_vs_transformers']:.2f}x")


def available_mb() -> float:
    """The machine's available memory now (MemAvailable), in MiB."""
    line = next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemAvailable:"))
    return int(line.split()[1]) / 1024


def interleaved_ttft(binary: str, model: Path, photo: Path, threads: int, rounds: int) -> dict:
    """Time to first token for the photo, Glimpse and transformers taking turns (`rounds` each, after one warm-up
    each), so that a machine whose speed drifts over minutes treats both alike: medians and their ratio."""
    _, photo_inputs, _, generate = transformers_loaded(model, photo, threads)
    times = {"glimpse": [], "transformers": []}
    with glimpse_served(binary, model, photo, threads, None) as (_, _, image, ask):
        glimpse_once = lambda: ask([image, {"text": PHOTO_PROMPT}], 1)
        transformers_once = lambda: generate(photo_inputs(), 1)
        glimpse_once(), transformers_once()
        for _ in range(rounds):
            times["glimpse"].append(timed(glimpse_once))
            times["transformers"].append(timed(transformers_once))
            print(json.dumps({k: round(v[-1], 2) for k, v in times.items()}), file=sys.stderr)
    median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {"model": model.name, "rounds": rounds, "ttft_s": times, "median_s": median,
            "glimpse_vs_transformers": median["transformers"] / median["glimpse"]}


def concurrency(binary: str, model: Path, photo: Path, threads: int, counts: list[int]) -> dict:
    """Aggregate decode tokens/s of `counts` text requests at once against one alone (after a warm-up answer), for
    Glimpse (concurrent HTTP requests, continuous batching) and then transformers (one batched `generate`)."""
    rates = {"glimpse": {}, "transformers": {}}
    with glimpse_served(binary, model, photo, threads, None) as (_, _, _, ask):
        answer = lambda: ask([{"text": TEXT_PROMPT}], NEW_TOKENS)
        answer()
        rates["glimpse"][1] = NEW_TOKENS / timed(answer)
        for n in counts:
            with ThreadPoolExecutor(n) as pool:
                rates["glimpse"][n] = n * NEW_TOKENS / timed(lambda: list(pool.map(lambda _: answer(), range(n))))
            print(json.dumps(rates), file=sys.stderr)
    _, _, text_inputs, generate = transformers_loaded(model, photo, threads)
    generate(text_inputs(1), 4)
    for n in [1, *counts]:
        rates["transformers"][n] = n * NEW_TOKENS / timed(lambda: generate(text_inputs(n), NEW_TOKENS))
        print(json.dumps(rates), file=sys.stderr)
    return {"model": model.name, "threads": threads, "new_tokens": NEW_TOKENS, "tok_s": rates}


def main() -> None:
    if sys.argv[1] == "--transformers-child":
        print(json.dumps(transformers_child(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))))
        return
    if sys.argv[1] == "--interleaved-ttft":
        binary, model, photo, threads, rounds, table = sys.argv[2:8]
        runs = {r["engine"]: r for r in json.loads(Path(table).read_text())["runs"]}
        both_mb = runs["glimpse f32"]["rss_peak_mb"] + runs["transformers f32"]["rss_peak_mb"]
        if both_mb > available_mb():
            print(f"{Path(model).name}: not taking turns, both engines need {both_mb / 1024:.1f} GB at once and "
                  f"{available_mb() / 1024:.1f} GB is available", file=sys.stderr)
            return
        print(json.dumps(interleaved_ttft(binary, Path(model), Path(photo), int(threads), int(rounds))))
        return
    if sys.argv[1] == "--concurrency":
        binary, model, photo, threads, *counts = sys.argv[2:]
        print(json.dumps(concurrency(binary, Path(model), Path(photo), int(threads), [int(n) for n in counts])))
        return
    if sys.argv[1] == "--report":
        report([Path(f) for f in sys.argv[2:]])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("glimpse")
    parser.add_argument("model", type=Path)
    parser.add_argument("photo", type=Path)
    parser.add_argument("threads", type=int)
    parser.add_argument("--isq", action="append", default=[])
    parser.add_argument("--llama-server")
    parser.add_argument("--gguf", type=Path, action="append", default=[], help="a folder with model.gguf + mmproj.gguf")
    parser.add_argument("--skip-transformers", action="store_true")
    args = parser.parse_args()
    runs = []
    for isq in [None, *args.isq]:
        runs.append(glimpse(args.glimpse, args.model, args.photo, args.threads, isq))
        print(json.dumps(runs[-1]), file=sys.stderr)
    if not args.skip_transformers:
        runs.append(transformers(args.model, args.photo, args.threads))
        print(json.dumps(runs[-1]), file=sys.stderr)
    for gguf in args.gguf if args.llama_server else []:
        runs.append(llama_cpp(args.llama_server, gguf, args.photo, args.threads, gguf.name))
        print(json.dumps(runs[-1]), file=sys.stderr)
    print(json.dumps({"model": args.model.name, "threads": args.threads, "runs": runs}))


if __name__ == "__main__":
    main()
