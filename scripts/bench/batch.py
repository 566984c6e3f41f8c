"""The Batch API against the same requests sent one by one, and interactive latency while a batch runs.

For a model: N requests (the Debian darknet photos cycled, each asked for detection) are run
  1. one at a time through generateContent (a client waiting for each answer),
  2. through generateContent from `--clients` concurrent clients (as many as the model has slots),
  3. as one batch job from a JSONL file (upload → create → SUCCEEDED), at the default batch share of the model
     (one slot) and with `--max-batch-concurrent` set to all of them,
and, while a batch of the same requests runs, single interactive requests are timed (p50) against the same
request on an idle server.

Usage: batch.py GLIMPSE_BIN MODEL REQUESTS [--max-output-tokens N] [--clients N]   (MODEL: toolkit, shapes, a folder)
Prints one JSON object.
"""
import argparse
import base64
import json
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from benchutil import glimpse_process

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = sorted((ROOT / "fixtures/photos").glob("*.jpg"))
HEADERS = {"x-goog-api-key": "bench"}
DETECT = "Detect the objects in the image, box_2d"


def request_body(index: int, max_tokens: int) -> dict:
    photo = PHOTOS[index % len(PHOTOS)]
    image = {"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(photo.read_bytes()).decode()}}
    return {"contents": [{"role": "user", "parts": [image, {"text": DETECT}]}],
            "generationConfig": {"maxOutputTokens": max_tokens}}


def generate(client: httpx.Client, url: str, body: dict) -> float:
    started = time.perf_counter()
    r = client.post(f"{url}/v1beta/models/m:generateContent", json=body)
    assert r.status_code == 200, r.text[:300]
    return time.perf_counter() - started


def one_by_one(url: str, bodies: list[dict], clients: int) -> float:
    started = time.perf_counter()
    with httpx.Client(timeout=600, headers=HEADERS) as client, ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda body: generate(client, url, body), bodies))
    return time.perf_counter() - started


def upload_jsonl(client: httpx.Client, url: str, bodies: list[dict]) -> str:
    data = "".join(json.dumps({"key": f"r{i}", "request": body}) + "\n" for i, body in enumerate(bodies)).encode()
    start = client.post(f"{url}/upload/v1beta/files", json={"file": {"mimeType": "jsonl"}}, headers={
        "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(len(data)), "X-Goog-Upload-Header-Content-Type": "jsonl"})
    assert start.status_code == 200, start.text
    done = client.post(start.headers["x-goog-upload-url"], content=data,
                       headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"})
    assert done.status_code == 200, done.text
    return done.json()["file"]["name"]


def start_batch(client: httpx.Client, url: str, file_name: str) -> str:
    r = client.post(f"{url}/v1beta/models/m:batchGenerateContent", json={"batch": {"inputConfig": {"fileName": file_name}}})
    assert r.status_code == 200, r.text
    return r.json()["name"]


def job(client: httpx.Client, url: str, name: str) -> dict:
    return client.get(f"{url}/v1beta/{name}").json()


def wait_batch(client: httpx.Client, url: str, name: str) -> dict:
    while not (state := job(client, url, name))["done"]:
        time.sleep(0.2)
    assert state["metadata"]["state"] == "BATCH_STATE_SUCCEEDED", state["metadata"]
    assert state["metadata"]["batchStats"]["failedRequestCount"] == "0", state["metadata"]["batchStats"]
    return state


def run_batch(url: str, bodies: list[dict]) -> float:
    """Seconds from upload to the last result (the results file is written by then)."""
    with httpx.Client(timeout=600, headers=HEADERS) as client:
        started = time.perf_counter()
        wait_batch(client, url, start_batch(client, url, upload_jsonl(client, url, bodies)))
        return time.perf_counter() - started


def interactive_during_batch(url: str, bodies: list[dict], probe: dict, samples: int) -> tuple[list[float], list[float]]:
    """Latencies of `samples` requests on the idle server, then while a batch of `bodies` runs (one at a time,
    a short pause between, as a user of the playground would send them)."""
    with httpx.Client(timeout=600, headers=HEADERS) as client:
        generate(client, url, probe)
        idle = [generate(client, url, probe) for _ in range(samples)]
        name = start_batch(client, url, upload_jsonl(client, url, bodies))
        while int(job(client, url, name)["metadata"]["batchStats"]["successfulRequestCount"]) < 2:
            time.sleep(0.05)
        busy = []
        for _ in range(samples):
            busy.append(generate(client, url, probe))
            time.sleep(0.1)
        pending = int(job(client, url, name)["metadata"]["batchStats"]["pendingRequestCount"])
        client.post(f"{url}/v1beta/{name}:cancel")
        assert pending > 0, "the batch ended before the interactive requests did: use more requests"
        return idle, busy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("model")
    parser.add_argument("requests", type=int)
    parser.add_argument("--max-output-tokens", type=int, default=256)
    parser.add_argument("--clients", type=int, default=2, help="concurrent clients (the model's slots)")
    args = parser.parse_args()
    bodies = [request_body(i, args.max_output_tokens) for i in range(args.requests)]
    model_args = [] if args.model == "toolkit" else ["--model", args.model]
    report = {"model": args.model, "requests": args.requests}
    with glimpse_process(args.binary, model_args) as (url, _):
        info = httpx.get(f"{url}/v1beta/models", headers=HEADERS).json()["models"][0]
        report["served_as"] = info["name"]
        report["one_by_one_s"] = one_by_one(url, bodies, 1)
        report["batch_default_share_s"] = run_batch(url, bodies)
        idle, busy = interactive_during_batch(url, bodies, bodies[0], 15)
        report["interactive_idle_p50_ms"] = statistics.median(idle) * 1000
        report["interactive_during_batch_p50_ms"] = statistics.median(busy) * 1000
        report["interactive_during_batch_max_ms"] = max(busy) * 1000
    # The batch share raised to every slot (clamped to the model's), against as many concurrent clients.
    with glimpse_process(args.binary, [*model_args, "--max-batch-concurrent", "1000"]) as (url, _):
        report["concurrent_clients"] = args.clients
        report["concurrent_clients_s"] = one_by_one(url, bodies, args.clients)
        report["batch_all_slots_s"] = run_batch(url, bodies)
    for key in ("one_by_one_s", "concurrent_clients_s", "batch_default_share_s", "batch_all_slots_s"):
        report[key.removesuffix("_s") + "_per_s"] = args.requests / report[key]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
