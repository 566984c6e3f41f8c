"""Time to first token with a `cachedContent` against the same request sent in full, on a vision tower of real
size (make_wide_tower.py): a 12 MP photo and a long system instruction, then a short question.

  cold     the full request (photo inline + instruction), the first time the server sees the photo
  warm     the same full request again (the photo's pixels and vision-tower output are in the server's caches)
  cached   the question alone, naming a cache made of the photo and the instruction

Usage: cache_ttft.py GLIMPSE_BIN MODEL_DIR PHOTO [INSTRUCTION_TOKENS]   -> one JSON object
"""
import base64
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

from benchutil import glimpse_process

QUESTION = "What is in this picture?"


def ttft_ms(client: httpx.Client, url: str, body: dict) -> float:
    started = time.perf_counter()
    with client.stream("POST", f"{url}/v1beta/models/m:streamGenerateContent?alt=sse", json=body) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data:"):
                return (time.perf_counter() - started) * 1000
    raise AssertionError("no event")


def instruction_of(client: httpx.Client, url: str, tokens: int) -> str:
    """A system instruction of about `tokens` tokens for this model's tokenizer."""
    sentence = "Describe the photograph plainly and name every object in it. "
    text = sentence
    while True:
        count = client.post(f"{url}/v1beta/models/m:countTokens", json={"generateContentRequest": {
            "systemInstruction": {"parts": [{"text": text}]}, "contents": [{"parts": [{"text": "x"}]}]}}).json()
        if count["totalTokens"] >= tokens:
            return text
        text += sentence * max(1, (tokens - count["totalTokens"]) // 20)


def main() -> None:
    binary, model, photo = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    tokens = int(sys.argv[4]) if len(sys.argv) > 4 else 1200
    image = {"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(photo.read_bytes()).decode()}}
    config = {"maxOutputTokens": 1}
    with glimpse_process(binary, ["--model", model]) as (url, _):
        client = httpx.Client(timeout=1800, headers={"x-goog-api-key": "bench"})
        system = {"parts": [{"text": instruction_of(client, url, tokens)}]}
        full = {"systemInstruction": system, "generationConfig": config,
                "contents": [{"role": "user", "parts": [image]}, {"role": "user", "parts": [{"text": QUESTION}]}]}
        cold = ttft_ms(client, url, full)
        warm = [ttft_ms(client, url, full) for _ in range(3)]
        started = time.perf_counter()
        cache = client.post(f"{url}/v1beta/cachedContents", json={
            "model": "models/m", "systemInstruction": system, "contents": [{"role": "user", "parts": [image]}],
            "ttl": "600s"}).json()
        create_ms = (time.perf_counter() - started) * 1000
        question = {"cachedContent": cache["name"], "generationConfig": config,
                    "contents": [{"role": "user", "parts": [{"text": QUESTION}]}]}
        cached = [ttft_ms(client, url, question) for _ in range(3)]
    report = {
        "photo": photo.name, "cache_tokens": cache["usageMetadata"]["totalTokenCount"], "cold_ms": cold,
        "warm_ms": statistics.median(warm), "cache_create_ms": create_ms, "cached_ms": statistics.median(cached),
    }
    report["cached_over_cold"] = report["cached_ms"] / cold
    report["cached_over_warm"] = report["cached_ms"] / report["warm_ms"]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
