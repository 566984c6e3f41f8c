"""Real servers the tests share: PostgreSQL (Debian's `postgresql` package: initdb in a temporary folder, a free
loopback port) and an S3 server (`moto[server]` from PyPI) for the replica tests, llama.cpp's server for the
upstream-backend tests, plus a round-robin HTTP load balancer that sends each request to the next replica. Each stops when its `stop()` is called (the fixtures
call it at the end of the session, and at exit if the session is killed).
"""

from __future__ import annotations

import atexit
import glob
import http.client
import http.server
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

STARTUP_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    """A server process this module started."""

    name: str
    url: str
    proc: subprocess.Popen
    folder: Path
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        shutil.rmtree(self.folder, ignore_errors=True)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "<no log>"


def _wait(service: Service, ready) -> Service:
    atexit.register(service.stop)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not ready():
        if service.proc.poll() is not None or time.monotonic() > deadline:
            log = service.log_text()
            service.stop()
            raise RuntimeError(f"{service.name} did not start:\n{log}")
        time.sleep(0.2)
    return service


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} was not found: install Debian's postgresql (scripts/setup-deps.sh does)")
    return path


def start_postgres() -> Service:
    """A throwaway PostgreSQL cluster: trust authentication on 127.0.0.1, no fsync. The URL names the
    `postgres` database as user `glimpse`. PostgreSQL refuses to run as root, so as root it runs as the
    `postgres` user the Debian package creates."""
    folder = Path(tempfile.mkdtemp(prefix="glimpse-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    subprocess.run(
        [*as_user, _postgres_bin("initdb"), "-D", str(data), "-U", "glimpse", "-A", "trust", "--no-sync", "-E", "UTF8"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    port = free_port()
    log_path = folder / "postgres.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [*as_user, _postgres_bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(folder),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    service = Service("PostgreSQL", f"postgres://glimpse@127.0.0.1:{port}/postgres", proc, folder, log_path)

    def ready() -> bool:
        return subprocess.run(
            [_postgres_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL
        ).returncode == 0

    return _wait(service, ready)


def create_database(postgres: Service, name: str) -> str:
    """A new, empty database on `postgres`; returns its URL."""
    port = postgres.url.rsplit(":", 1)[1].split("/")[0]
    subprocess.run(
        [_postgres_bin("createdb"), "-h", "127.0.0.1", "-p", port, "-U", "glimpse", name],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    return postgres.url.rsplit("/", 1)[0] + "/" + name


# What every process that talks to the S3 server needs (Glimpse reads the standard AWS variables).
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "glimpse-test",
    "AWS_SECRET_ACCESS_KEY": "glimpse-test-secret",
    "AWS_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}


def start_s3() -> Service:
    """moto's S3 server on a free loopback port; `url` is its endpoint."""
    folder = Path(tempfile.mkdtemp(prefix="glimpse-s3-"))
    port = free_port()
    log_path = folder / "moto.log"
    log = open(log_path, "wb")
    moto = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    service = Service("moto S3 server", f"http://127.0.0.1:{port}", proc, folder, log_path)

    def ready() -> bool:
        try:
            return httpx.get(service.url, timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    return _wait(service, ready)


def s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_CREDENTIALS["AWS_REGION"],
    )


def make_bucket(endpoint: str, name: str) -> None:
    s3_client(endpoint).create_bucket(Bucket=name)


def bucket_keys(endpoint: str, name: str, prefix: str = "") -> list[str]:
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=name, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


# ---------------------------------------------------------------------------------------------
# A round-robin load balancer
# ---------------------------------------------------------------------------------------------
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class RoundRobin:
    """Forwards each request to the next backend in turn, streaming the answer back (SSE included), with the
    client's Host header so upload URLs the replicas build point back here. `picks` records which backend
    answered each request, in order."""

    def __init__(self, backends: list[str]):
        self.backends = [b.removeprefix("http://") for b in backends]
        self._next = itertools.cycle(range(len(self.backends)))
        self._lock = threading.Lock()
        self.picks: list[int] = []
        balancer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _body(self) -> bytes | None:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    pieces = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        pieces.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(pieces)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            def _forward(self):
                with balancer._lock:
                    index = next(balancer._next)
                    balancer.picks.append(index)
                body = self._body()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream = http.client.HTTPConnection(balancer.backends[index], timeout=300)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    self.send_response_only(answer.status, answer.reason)
                    for key, value in answer.getheaders():
                        if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                            self.send_header(key, value)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    while piece := answer.read1(65536):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                finally:
                    upstream.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_llama_server(model: Path, mmproj: Path, api_key: str, context: int = 8192, extra: tuple = ("--jinja",)) -> Service:
    """llama.cpp's `llama-server` (built and cached by scripts/peer/llama-server.sh) serving a GGUF model and its
    vision projector on a loopback port with an API key and `extra` flags (default: the model's own chat template,
    `--jinja`); four slots share `context` tokens."""
    root = Path(__file__).resolve().parents[2]
    binary = subprocess.run(
        [str(root / "scripts" / "peer" / "llama-server.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    folder = Path(tempfile.mkdtemp(prefix="glimpse-llama-"))
    port = free_port()
    log_path = folder / "llama-server.log"
    args = [binary, "-m", str(model), "--mmproj", str(mmproj), "--host", "127.0.0.1", "--port", str(port),
            *extra, "-c", str(context), "-np", "4", "-t", "2", "--api-key", api_key]
    proc = subprocess.Popen(args, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    service = Service("llama-server", f"http://127.0.0.1:{port}", proc, folder, log_path)

    def ready() -> bool:
        try:
            return httpx.get(f"{service.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return _wait(service, ready)
