"""Helpers the benchmark scripts share: timing, and a `glimpse serve` on a free loopback port."""
import os
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx


def median_ms(fn, min_runs=5, budget_s=0.0, max_runs=200) -> float:
    """Median wall time of `fn` in ms after one warm-up call: at least `min_runs` runs, more while under
    `budget_s` seconds (up to `max_runs`)."""
    fn()
    times, start = [], time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < budget_s and len(times) < max_runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[len(times) // 2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def glimpse_process(binary: str, args: list[str], env: dict | None = None):
    """`glimpse serve ARGS` on a free loopback port with a fresh data folder: yields (its root URL, the process)
    once `/readyz` answers 200; stops it afterwards."""
    port = free_port()
    server = subprocess.Popen(
        [binary, "serve", "--port", str(port), "--data-dir", tempfile.mkdtemp(prefix="glimpse-bench-"), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, RUST_LOG="warn", **(env or {})),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(3000):
            if server.poll() is not None:
                raise SystemExit(f"glimpse serve exited with status {server.returncode}; run it by hand to see why")
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=60)


@contextmanager
def glimpse_server(binary: str, model: str, extra: list[str], env: dict | None = None):
    """Yields (base URL of the v1beta API, an httpx client) once the server answers; stops it afterwards."""
    with glimpse_process(binary, ["--model", model, *extra], env) as (url, _):
        yield f"{url}/v1beta", httpx.Client(timeout=1800, headers={"x-goog-api-key": "bench"})


def first_token(client: httpx.Client, url: str, body: bytes) -> None:
    """Sends a streamGenerateContent request and returns at its first event."""
    with client.stream("POST", f"{url}/models/m:streamGenerateContent?alt=sse", content=body,
                       headers={"content-type": "application/json"}) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data:"):
                return


def rss_mib(pid: int) -> float:
    """A process's resident memory now (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakSampler:
    """`with PeakSampler(read, every) as p:` calls `read()` every `every` seconds while the block runs; then
    `p.before` (the reading when it was made) and `p.peak` (the largest, the reading at the block's end included).
    A reading that fails inside the block (the process it reads is gone) ends the sampling."""

    def __init__(self, read, every: float):
        self.read, self.every = read, every
        self.before = self.peak = read()
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample)

    def _sample(self):
        while not self._done.is_set():
            try:
                self.peak = max(self.peak, self.read())
            except (OSError, subprocess.CalledProcessError):
                return
            time.sleep(self.every)

    def __enter__(self):
        self._sampler.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._sampler.join()
        self.peak = max(self.peak, self.read())


class PeakRss(PeakSampler):
    """`with PeakRss(pid) as rss:` samples the process's resident memory every 20 ms while the block runs;
    then `rss.before` and `rss.peak` (MiB)."""

    def __init__(self, pid: int):
        super().__init__(lambda: rss_mib(pid), 0.02)
