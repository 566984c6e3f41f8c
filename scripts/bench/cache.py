"""What a repeated image costs: time to first token for the same photo sent twice in a row, with the caches on
(the defaults: decoded pixels and vision-tower output) and with both off, on a model with a vision tower of real
size (make_wide_tower.py).

Usage: cache.py GLIMPSE_BIN MODEL_DIR FILE   -> one JSON object
"""
import base64
import json
import sys
import time
from pathlib import Path

from benchutil import first_token, glimpse_server


def run(binary: str, model: str, body: bytes, extra: list[str]) -> list[float]:
    with glimpse_server(binary, model, extra) as (url, client):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            first_token(client, url, body)
            times.append((time.perf_counter() - t) * 1000)
        return times


def main() -> None:
    binary, model, path = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    inline = {"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(path.read_bytes()).decode()}}
    body = json.dumps({"contents": [{"parts": [inline, {"text": "What is in this picture?"}]}],
                       "generationConfig": {"maxOutputTokens": 1}}).encode()
    cached = run(binary, model, body, [])
    uncached = run(binary, model, body, ["--image-cache-bytes", "0", "--encoder-cache-bytes", "0"])
    report = {"file": path.name, "cached_ms": cached, "uncached_ms": uncached,
              "second_over_first": cached[1] / cached[0], "second_over_first_uncached": uncached[1] / uncached[0]}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
