"""Many clients at once against `glimpse serve` (the built-in toolkit, the default model): each sends one photo
for detection. Prints the answers by status, the latency percentiles, the server's peak resident memory and how
long `GET models` took meanwhile. Every answer must be 200 or 429 (none dropped, none 5xx).

    .venv/bin/python scripts/bench/load.py                       # 200 clients, 1 MP photos; then 50 × 40 MP
    .venv/bin/python scripts/bench/load.py --runs 200x1 --extra --max-queue 50

`--check` exits non-zero unless every run met issue 36's targets: every answer 200 or 429, peak RSS at most
1.5 GB, `GET models` always under 100 ms. scripts/bench/load.sh runs both, with `--check` on the first.

Needs the build of scripts/serve.sh (target/debug/glimpse) and fixtures/photos (scripts/setup-deps.sh).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import io
import multiprocessing
import os
import time
from pathlib import Path

import httpx
import PIL.Image

from benchutil import PeakRss, glimpse_process

ROOT = Path(__file__).resolve().parents[2]

PROMPT = "Detect the all of the prominent items in the image. The box_2d should be [ymin, xmin, ymax, xmax] normalized to 0-1000."


def photo(megapixels: float) -> bytes:
    """Debian darknet's dog.jpg scaled to about `megapixels` (JPEG, quality 90)."""
    image = PIL.Image.open(ROOT / "fixtures/photos/dog.jpg").convert("RGB")
    scale = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
    image = image.resize((round(image.width * scale), round(image.height * scale)), PIL.Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def probe_models(url: str, stop, found) -> None:
    """`GET models` every 0.25 s from a process of its own: in the clients' event loop it would time that loop's
    own delays (sending hundreds of megabytes) along with the server's. It runs at raised priority where allowed
    (root): the clients' process shares the server's cores here, as remote clients would not, and at equal priority
    it delayed the probe's own sends by tens of milliseconds."""
    times = []
    try:
        os.nice(-10)
    except PermissionError:
        pass
    with httpx.Client(timeout=60, headers={"x-goog-api-key": "bench"}) as client:
        while not stop.is_set():
            start = time.perf_counter()
            client.get(f"{url}/v1beta/models")
            times.append((time.perf_counter() - start) * 1000)
            time.sleep(0.25)
    found.put(times)


async def run(url: str, clients: int, body: bytes, pid: int) -> dict:
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients + 10)
    headers = {"x-goog-api-key": "bench", "content-type": "application/json"}
    with PeakRss(pid) as rss:
        async with httpx.AsyncClient(timeout=900, limits=limits, headers=headers) as client:

            async def one():
                start = time.perf_counter()
                try:
                    r = await client.post(f"{url}/v1beta/models/toolkit:generateContent", content=body)
                    status = r.status_code
                except httpx.HTTPError:
                    status = 0  # dropped
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1

            stop = multiprocessing.Event()
            found: multiprocessing.Queue = multiprocessing.Queue()
            prober = multiprocessing.Process(target=probe_models, args=(url, stop, found))
            prober.start()
            start = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(clients)))
            wall = time.perf_counter() - start
            stop.set()
            models_ms = found.get(timeout=60)
            prober.join()
    latencies.sort()
    models_ms.sort()
    return {
        "statuses": statuses,
        "wall": wall,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "rss_before": rss.before,
        "rss_peak": rss.peak,
        "models_max_ms": models_ms[-1] if models_ms else float("nan"),
        "models_p50_ms": models_ms[len(models_ms) // 2] if models_ms else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=str(ROOT / "target/debug/glimpse"))
    parser.add_argument("--runs", nargs="+", default=["200x1", "50x40"], help="CLIENTSxMEGAPIXELS")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every run met the targets")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `glimpse serve` flags")
    args = parser.parse_args()
    rows = []
    for spec in args.runs:
        clients, megapixels = spec.split("x")
        image = photo(float(megapixels))
        body = ('{"contents":[{"parts":[{"inline_data":{"mime_type":"image/jpeg","data":"'
                + base64.b64encode(image).decode() + '"}},{"text":"' + PROMPT + '"}]}]}').encode()
        with glimpse_process(args.binary, args.extra) as (url, server):
            result = asyncio.run(run(url, int(clients), body, server.pid))
        rows.append((int(clients), float(megapixels), len(image), result))
    print(f"{'clients':>7} {'photo':>6} {'answers (status: count)':<28} {'wall s':>7} {'p50 s':>6} {'p99 s':>6} "
          f"{'RSS before':>10} {'RSS peak':>9} {'GET models p50/max ms':>22}")
    for clients, megapixels, size, r in rows:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
        print(f"{clients:>7} {megapixels:>4.0f}MP {answers:<28} {r['wall']:>7.1f} {r['p50']:>6.1f} {r['p99']:>6.1f} "
              f"{r['rss_before']:>8.0f}MB {r['rss_peak']:>7.0f}MB {r['models_p50_ms']:>10.1f} / {r['models_max_ms']:.1f}")
    if args.check:
        missed = [f"{clients}x{megapixels:.0f}MP: {why}" for clients, megapixels, _, r in rows for why in missed_targets(r)]
        if missed:
            raise SystemExit("targets missed: " + "; ".join(missed))
        print("targets met: every answer 200 or 429, peak RSS <= 1500 MB, GET models < 100 ms")


def missed_targets(result: dict) -> list[str]:
    """Issue 36's targets that one run missed."""
    missed = []
    others = {status: n for status, n in result["statuses"].items() if status not in (200, 429)}
    if others:
        missed.append(f"answers other than 200/429 {others}")
    if result["rss_peak"] > 1500:
        missed.append(f"peak RSS {result['rss_peak']:.0f} MB")
    if not result["models_max_ms"] < 100:
        missed.append(f"GET models took {result['models_max_ms']:.1f} ms")
    return missed


if __name__ == "__main__":
    main()
