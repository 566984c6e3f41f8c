"""Fixtures for the black-box conformance tests: they start the real `glimpse serve` binary and drive it
with the google-genai SDK and with raw HTTP.

Environment:
  GLIMPSE_BIN        server binary (default target/debug/glimpse under the repo root)
  GLIMPSE_MODEL_DIR  model folder (default fixtures/models/qwen2_5_vl-tiny)
  GLIMPSE_EXPECTED   reference file (default fixtures/expected/<model id>.json)
  GLIMPSE_ROOT       repo root the relative paths above (and the fixture image paths) resolve against
  GLIMPSE_STARTUP_TIMEOUT  seconds to wait for readiness (default 120)
"""

from __future__ import annotations

import http.server as http_server
import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

import sdkutil

# The SDK reads these; a developer's shell must not redirect the client away from the local server.
for _var in (
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_GENAI_API_VERSION",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_VERTEX_BASE_URL",
):
    os.environ.pop(_var, None)

STARTUP_TIMEOUT_S = float(os.environ.get("GLIMPSE_STARTUP_TIMEOUT", "120"))
LOG_TAIL_BYTES = 8000


@dataclass
class GlimpseServer:
    url: str
    log_path: Path
    args: list[str]
    proc: subprocess.Popen | None = None
    _log_file: object = field(default=None, repr=False)

    def log_text(self, start: int = 0, limit: int = LOG_TAIL_BYTES) -> str:
        try:
            data = self.log_path.read_bytes()[start:]
        except OSError:
            return "<no log>"
        if len(data) > limit:
            data = b"...[cut]...\n" + data[-limit:]
        return data.decode("utf-8", errors="replace")

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0


# Servers that are running now; the report hook prints their log on a failure.
_RUNNING: list[GlimpseServer] = []


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    tmp_dir: Path, name: str, extra_args: list[str], env: dict[str, str] | None = None, *, fixture_model: bool = True
) -> GlimpseServer:
    """Starts `glimpse serve` on the fixture model with `extra_args` (and `env` instead of this process's
    environment); stop it with `stop_server`. `fixture_model=False` starts it with no model at all: the
    built-in toolkit answers."""
    return _start_server(tmp_dir, name, extra_args, env, fixture_model)


def stop_server(server: GlimpseServer) -> None:
    _stop_server(server)


def _start_server(
    tmp_dir: Path, name: str, extra_args: list[str], env: dict[str, str] | None = None, fixture_model: bool = True
) -> GlimpseServer:
    if not sdkutil.GLIMPSE_BIN.is_file():
        pytest.fail(f"server binary not found: {sdkutil.GLIMPSE_BIN} (build it, or set GLIMPSE_BIN)", pytrace=False)
    if not sdkutil.MODEL_DIR.is_dir():
        pytest.fail(f"model folder not found: {sdkutil.MODEL_DIR} (set GLIMPSE_MODEL_DIR)", pytrace=False)
    port = _free_port()
    # Every server keeps its files in its own folder unless the test names one (restart tests share one).
    if "--data-dir" not in extra_args:
        extra_args = [*extra_args, "--data-dir", str(tmp_dir / f"{name}-data")]
    # The fixture model unless the test names its own models.
    named = "--model" in extra_args or "--config" in extra_args
    models = [] if named or not fixture_model else ["--model", str(sdkutil.MODEL_DIR)]
    args = [
        str(sdkutil.GLIMPSE_BIN),
        "serve",
        *models,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra_args,
    ]
    log_path = tmp_dir / f"{name}.log"
    log_file = open(log_path, "wb")
    env = dict(os.environ if env is None else env)
    env.setdefault("RUST_BACKTRACE", "1")
    proc = subprocess.Popen(
        args, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=sdkutil.ROOT, env=env
    )
    server = GlimpseServer(url=f"http://127.0.0.1:{port}", log_path=log_path, args=args, proc=proc, _log_file=log_file)

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer yet"
    while True:
        rc = proc.poll()
        if rc is not None:
            _stop_server(server)
            pytest.fail(
                f"glimpse exited with status {rc} before it was ready.\ncommand: {' '.join(args)}\n"
                f"--- server output ({log_path}) ---\n{server.log_text()}",
                pytrace=False,
            )
        try:
            r = httpx.get(f"{server.url}/v1beta/models", headers={"x-goog-api-key": sdkutil.API_KEY}, timeout=2)
            # 400/403: a server with API keys refusing the test key is up all the same.
            if r.status_code in (200, 400, 403) and r.headers.get("content-type", "").startswith("application/json"):
                break
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as e:
            last = repr(e)
        if time.monotonic() > deadline:
            _stop_server(server)
            pytest.fail(
                f"glimpse was not ready after {STARTUP_TIMEOUT_S:.0f} s (GET /v1beta/models: {last}).\n"
                f"command: {' '.join(args)}\n--- server output ({log_path}) ---\n{server.log_text()}",
                pytrace=False,
            )
        time.sleep(0.2)
    _RUNNING.append(server)
    return server


def _stop_server(server: GlimpseServer) -> None:
    proc = server.proc
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if server._log_file is not None:
        server._log_file.close()
        server._log_file = None
    if server in _RUNNING:
        _RUNNING.remove(server)


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def glimpse_server(tmp_path_factory) -> GlimpseServer:
    """`glimpse serve --model fixtures/models/qwen2_5_vl-tiny` with default limits and no alias."""
    server = _start_server(tmp_path_factory.mktemp("glimpse"), "glimpse-main", [])
    yield server
    _stop_server(server)


@pytest.fixture(scope="session")
def base_url(glimpse_server) -> str:
    return glimpse_server.url


@pytest.fixture(scope="module")
def alias_server(tmp_path_factory) -> GlimpseServer:
    """A second server, `--alias gemini-3-flash-preview`: only the model id and the alias resolve.

    It is also started with small limits (`--max-images 2 --max-inline-bytes 100000`) so that the
    flags can be checked without big requests; its other requests use one 56x56 image.
    """
    server = _start_server(
        tmp_path_factory.mktemp("glimpse-alias"),
        "glimpse-alias",
        ["--alias", sdkutil.ALIAS, "--max-images", "2", "--max-inline-bytes", "100000"],
    )
    yield server
    _stop_server(server)


@pytest.fixture(scope="module")
def alias_url(alias_server) -> str:
    return alias_server.url


# ---------------------------------------------------------------------------------------------
# Reference
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def expected() -> dict:
    """The transformers reference, as {case name: case}."""
    path = sdkutil.EXPECTED_PATH
    if not path.is_file():
        pytest.fail(f"reference file missing: {path} (generate it, or set GLIMPSE_EXPECTED)", pytrace=False)
    data = json.loads(path.read_text())
    cases = {c["name"]: c for c in data["cases"]}
    missing = [n for n in sdkutil.CASE_NAMES if n not in cases]
    assert not missing, f"reference file {path} lacks cases {missing}"
    return cases


# ---------------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sdk_client_factory(base_url):
    """sdk_client_factory(api_version=None) -> client for the main server."""

    def factory(api_version: str | None = None, **kw):
        return sdkutil.make_client(base_url, api_version, **kw)

    return factory


@pytest.fixture(scope="session")
def client(sdk_client_factory):
    """Client with the SDK's default api_version (v1 on google-genai 3.x)."""
    return sdk_client_factory(None)


@pytest.fixture(scope="session")
def http(base_url):
    """httpx client for raw REST calls against the main server."""
    with httpx.Client(
        base_url=base_url,
        headers={"x-goog-api-key": sdkutil.API_KEY},
        timeout=httpx.Timeout(sdkutil.REQUEST_TIMEOUT_S, connect=10),
    ) as c:
        yield c


@pytest.fixture(scope="module")
def alias_http(alias_url):
    with httpx.Client(
        base_url=alias_url,
        headers={"x-goog-api-key": sdkutil.API_KEY},
        timeout=httpx.Timeout(sdkutil.REQUEST_TIMEOUT_S, connect=10),
    ) as c:
        yield c


# ---------------------------------------------------------------------------------------------
# On a failure, show what the server(s) logged while the test ran.
# ---------------------------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item._glimpse_log_offsets = {id(s): s.log_size() for s in _RUNNING}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    offsets = getattr(item, "_glimpse_log_offsets", {})
    for server in list(_RUNNING):
        start = offsets.get(id(server), 0)
        text = server.log_text(start)
        if text.strip():
            rep.sections.append((f"glimpse server output ({server.log_path.name}, during {rep.when})", text))


class _ImageHandler(http_server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=str(sdkutil.IMAGES_DIR), **kw)

    def log_message(self, *a):
        pass


@pytest.fixture()
def image_site():
    """A local web site serving fixtures/images (for image-URL tests; servers must --fetch-allow loopback)."""
    httpd = http_server.ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()

