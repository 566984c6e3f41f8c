"""Fixtures for the black-box conformance tests: they start the real `glimpse serve` binary and drive it
with the google-genai SDK and with raw HTTP.

Environment:
  GLIMPSE_BIN        server binary (default target/debug/glimpse under the repo root)
  GLIMPSE_MODEL_DIR  model folder (default fixtures/models/qwen2_5_vl-tiny)
  GLIMPSE_EXPECTED   reference file (default fixtures/expected/<model id>.json)
  GLIMPSE_ROOT       repo root the relative paths above (and the fixture image paths) resolve against
  GLIMPSE_STARTUP_TIMEOUT  seconds to wait for readiness (default 120)
  GLIMPSE_TEST_REPLICAS    with 2 (or more), the main server is that many replicas sharing a PostgreSQL
                           database and an S3 bucket behind a round-robin balancer (scripts/test.sh runs the
                           File API and Interactions tests so)
"""

from __future__ import annotations

import http.server as http_server
import itertools
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

import sdkutil
import services

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


def start_server(
    tmp_dir: Path,
    name: str,
    extra_args: list[str],
    env: dict[str, str] | None = None,
    *,
    fixture_model: bool = True,
    wrapper: list[str] | None = None,
) -> GlimpseServer:
    """Starts `glimpse serve` on the fixture model with `extra_args` (and `env` instead of this process's
    environment); stop it with `stop_server`. `fixture_model=False` starts it with no model at all: the
    built-in toolkit answers. `wrapper` is a command the server runs under (e.g. `unshare`)."""
    return _start_server(tmp_dir, name, extra_args, env, fixture_model, wrapper)


def stop_server(server: GlimpseServer) -> None:
    _stop_server(server)


def _start_server(
    tmp_dir: Path,
    name: str,
    extra_args: list[str],
    env: dict[str, str] | None = None,
    fixture_model: bool = True,
    wrapper: list[str] | None = None,
) -> GlimpseServer:
    if not sdkutil.GLIMPSE_BIN.is_file():
        pytest.fail(f"server binary not found: {sdkutil.GLIMPSE_BIN} (build it, or set GLIMPSE_BIN)", pytrace=False)
    if not sdkutil.MODEL_DIR.is_dir():
        pytest.fail(f"model folder not found: {sdkutil.MODEL_DIR} (set GLIMPSE_MODEL_DIR)", pytrace=False)
    port = services.free_port()
    # Every server keeps its files in its own folder unless the test names one (restart tests share one).
    if "--data-dir" not in extra_args:
        extra_args = [*extra_args, "--data-dir", str(tmp_dir / f"{name}-data")]
    # The fixture model unless the test names its own models.
    named = "--model" in extra_args or "--config" in extra_args
    models = [] if named or not fixture_model else ["--model", str(sdkutil.MODEL_DIR)]
    args = [
        *(wrapper or []),
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
def glimpse_server(tmp_path_factory, request) -> GlimpseServer:
    """`glimpse serve --model fixtures/models/qwen2_5_vl-tiny` with default limits and no alias; with
    GLIMPSE_TEST_REPLICAS=N, N such replicas behind a round-robin balancer (its URL is `url`)."""
    replicas = int(os.environ.get("GLIMPSE_TEST_REPLICAS", "1"))
    tmp = tmp_path_factory.mktemp("glimpse")
    if replicas < 2:
        server = _start_server(tmp, "glimpse-main", [])
        yield server
        _stop_server(server)
        return
    shared = request.getfixturevalue("shared_storage")
    servers = start_replicas(tmp, "glimpse-main", replicas, shared)
    balancer = services.RoundRobin([s.url for s in servers])
    yield GlimpseServer(url=balancer.url, log_path=servers[0].log_path, args=servers[0].args)
    balancer.stop()
    assert set(balancer.picks) == set(range(replicas)), "the balancer did not reach every replica"
    for server in servers:
        _stop_server(server)


@pytest.fixture(scope="session")
def base_url(glimpse_server) -> str:
    return glimpse_server.url


# ---------------------------------------------------------------------------------------------
# Shared storage for replicas: one PostgreSQL server and one S3 server for the session
# ---------------------------------------------------------------------------------------------
@dataclass
class SharedStorage:
    postgres: services.Service
    s3: services.Service
    _groups: itertools.count = field(default_factory=lambda: itertools.count(1))

    def new_group(self, name: str) -> tuple[str, str, str]:
        """A fresh database and bucket for one group of replicas: (database URL, blob URL, bucket)."""
        group = f"{name.replace('-', '_').lower()}_{next(self._groups)}"
        database = services.create_database(self.postgres, group)
        bucket = group.replace("_", "-")
        services.make_bucket(self.s3.url, bucket)
        return database, f"s3://{bucket}/glimpse", bucket

    def env(self) -> dict[str, str]:
        return {**os.environ, **services.S3_CREDENTIALS, "AWS_ENDPOINT_URL": self.s3.url}


@pytest.fixture(scope="session")
def shared_storage() -> SharedStorage:
    postgres = services.start_postgres()
    try:
        s3 = services.start_s3()
    except BaseException:
        postgres.stop()
        raise
    yield SharedStorage(postgres, s3)
    s3.stop()
    postgres.stop()


def start_replicas(
    tmp_dir: Path, name: str, count: int, shared: SharedStorage, extra_args: list[str] | None = None
) -> list[GlimpseServer]:
    """`count` servers on one new database and bucket, each with its own (empty) data folder."""
    database, blob_url, _ = shared.new_group(name)
    args = [*(extra_args or []), "--database-url", database, "--blob-url", blob_url]
    servers = []
    try:
        for i in range(count):
            servers.append(_start_server(tmp_dir, f"{name}-{i}", args, shared.env()))
    except BaseException:
        for server in servers:
            _stop_server(server)
        raise
    return servers


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
# No error body may show the server's file system: every 4xx/5xx answer any client of the suite reads
# (httpx, and the SDK's httpx2) is searched for the folders the servers run in.
# ---------------------------------------------------------------------------------------------
_LEAKS: list[str] = []
_SERVER_PATHS: list[str] = []


def _check_error_body(response) -> None:
    if response.status_code < 400 or not _SERVER_PATHS:
        return
    text = response.text
    for path in _SERVER_PATHS:
        if path in text:
            _LEAKS.append(f"{response.request.method} {response.request.url} -> {response.status_code}: {text[:300]}")


def _watch(module) -> None:
    for cls in (module.Client, module.AsyncClient):
        original = cls.send
        if getattr(original, "_glimpse_watched", False):
            continue
        if cls is module.Client:
            def send(self, request, *a, _original=original, **kw):
                response = _original(self, request, *a, **kw)
                if not kw.get("stream"):
                    _check_error_body(response)
                return response
        else:
            async def send(self, request, *a, _original=original, **kw):
                response = await _original(self, request, *a, **kw)
                if not kw.get("stream"):
                    _check_error_body(response)
                return response
        send._glimpse_watched = True
        cls.send = send


@pytest.fixture(scope="session", autouse=True)
def _error_bodies_show_no_server_paths(tmp_path_factory):
    _SERVER_PATHS[:] = [str(tmp_path_factory.getbasetemp()), str(sdkutil.ROOT), "/tmp/glimpse-"]
    _watch(httpx)
    try:
        import httpx2

        _watch(httpx2)
    except ImportError:
        pass
    yield


@pytest.fixture(autouse=True)
def _no_leak_in_this_test(_error_bodies_show_no_server_paths):
    start = len(_LEAKS)
    yield
    leaked = _LEAKS[start:]
    assert not leaked, "error bodies showed a server path:\n" + "\n".join(leaked)


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

