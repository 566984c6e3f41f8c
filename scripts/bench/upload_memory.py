"""Memory of `glimpse serve` while a large file is uploaded through the official SDK (resumable, 8 MiB chunks):
resident memory before and its peak during the upload (sampled every 20 ms), for a small and a large upload, on the folder store and on an
S3 server (moto, started here on a free loopback port). Flat memory means the peak does not grow with size.

    .venv/bin/python scripts/bench/upload_memory.py [--sizes-mb 64 2000] [--stores folder s3]

Needs the build of scripts/serve.sh (target/debug/glimpse) and the test venv (google-genai, moto, boto3).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from google import genai
from google.genai import types

from benchutil import PeakRss, glimpse_process

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sdk"))
import services  # noqa: E402  (the test suite's S3 starter)


def big_file(folder: Path, size: int) -> Path:
    """A PNG signature, then random bytes (the file ends FAILED: it is not an image; the bytes still travel)."""
    path = folder / f"upload-{size}.bin"
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        left = size - 8
        block = os.urandom(1 << 20)
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)
    return path


def measure(binary: str, store: str, sizes: list[int], work: Path) -> list[tuple]:
    env = {}
    extra = []
    s3 = None
    if store == "s3":
        s3 = services.start_s3()
        services.make_bucket(s3.url, "bench")
        env = {**services.S3_CREDENTIALS, "AWS_ENDPOINT_URL": s3.url}
        extra = ["--blob-url", "s3://bench/uploads"]
    args = ["--model", "shapes", "--max-file-bytes", str(max(sizes) + 1), "--project-quota-bytes", str(4 * sum(sizes)), *extra]
    rows = []
    try:
        with glimpse_process(binary, args, env) as (url, server):
            client = genai.Client(api_key="bench", http_options=types.HttpOptions(base_url=url, timeout=3_600_000))
            for size in sizes:
                path = big_file(work, size)
                with PeakRss(server.pid) as rss:
                    start = time.perf_counter()
                    uploaded = client.files.upload(file=str(path), config={"mime_type": "image/png"})
                    seconds = time.perf_counter() - start
                assert uploaded.size_bytes == size, uploaded
                rows.append((store, size, seconds, rss.before, rss.peak))
                client.files.delete(name=uploaded.name)
                path.unlink()
    finally:
        if s3:
            s3.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=str(ROOT / "target/debug/glimpse"))
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[64, 2000])
    parser.add_argument("--stores", nargs="+", default=["folder", "s3"], choices=["folder", "s3"])
    args = parser.parse_args()
    sizes = [mb * 1_000_000 for mb in args.sizes_mb]
    with tempfile.TemporaryDirectory(prefix="glimpse-upload-bench-") as work:
        rows = [row for store in args.stores for row in measure(args.binary, store, sizes, Path(work))]
    print(f"{'store':<7} {'upload':>9} {'seconds':>8} {'MB/s':>6} {'RSS before':>11} {'peak RSS':>9} {'growth':>7}")
    for store, size, seconds, before, peak in rows:
        print(f"{store:<7} {size / 1e6:>7.0f}MB {seconds:>8.1f} {size / 1e6 / seconds:>6.0f} "
              f"{before:>9.0f}MB {peak:>7.0f}MB {peak - before:>5.0f}MB")


if __name__ == "__main__":
    main()
