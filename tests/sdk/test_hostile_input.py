"""The hostile-input suite: the holes a probe of the running server found, over real HTTP, so they stay closed.

1. Authentication decided by the matched route, not by a query string (`?upload_id=` exempted any path with
   `/upload/` in it).
2. Proxy variables in the server's environment are never used for image URLs; an explicit `--fetch-proxy` gets
   only checked addresses. A listener standing in for the proxy must see no connection.
3. IPv6 forms that embed a refused IPv4 address.
4. Custom file names per project (another key's name was 409 ALREADY_EXISTS: an oracle and a way to squat).
5. Recursive response schemas are 400 before any model work (they were 500 "NoExtensionBias").
6. Every error in the Google envelope: axum's 405 and path-decoding rejections included.
7. `--host` takes names and bare IPv6; the "no keys off loopback" rule applies to what they resolve to.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import threading
import time

import httpx
import pytest

import sdkutil
from conftest import start_server, stop_server
from services import free_port

ALPHA, BETA = "alpha-key", "beta-key"
RED_PNG = (sdkutil.IMAGES_DIR / "red_square_56x56.png").read_bytes()


def assert_envelope(r: httpx.Response, code: int, status: str | None = None) -> dict:
    err = sdkutil.assert_google_error(r, code, status)
    assert "Extension" not in r.text and "glimpse_router" not in r.text, r.text
    return err


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("hostile"), "hostile-keys", ["--api-key", ALPHA, "--api-key", BETA])
    yield server
    stop_server(server)


# ---------------------------------------------------------------------------------------------
# 1. Authentication
# ---------------------------------------------------------------------------------------------
BYPASS_PROBES = [
    ("GET", "/v1beta/openai/models/upload/x?upload_id=x"),
    ("GET", "/upload/files?upload_id=x"),
    ("GET", "/upload/files/abc?upload_id=x"),
    ("DELETE", "/upload/files/abc?upload_id=x"),
    ("POST", "/upload/models/M:generateContent?upload_id=x"),
    ("POST", "/upload/interactions?upload_id=x"),
    ("POST", "/v1beta/interactions/upload/cancel?upload_id=x"),
    ("GET", "/v1beta/files?upload_id=x"),
    ("GET", "/v1beta/models?upload_id=x"),
    ("POST", "/v1beta/models/m:generateContent?upload_id=x&upload_protocol=resumable"),
]


@pytest.mark.parametrize("method,path", BYPASS_PROBES)
def test_an_upload_id_in_the_query_does_not_skip_authentication(keyed, method, path):
    r = httpx.request(method, keyed.url + path, content=b"{}", timeout=30)
    assert_envelope(r, 403, "PERMISSION_DENIED")


def start_upload(url: str, key: str, name: str | None = None, data: bytes = RED_PNG) -> str:
    meta = {"file": {"name": name}} if name else {}
    r = httpx.post(
        f"{url}/upload/v1beta/files",
        headers={
            "x-goog-api-key": key,
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(len(data)),
            "X-Goog-Upload-Header-Content-Type": "image/png",
        },
        json=meta,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.headers["x-goog-upload-url"]


def send_chunk(upload_url: str, data: bytes = RED_PNG, key: str | None = None) -> httpx.Response:
    headers = {"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"}
    if key:
        headers["x-goog-api-key"] = key
    return httpx.post(upload_url, headers=headers, content=data, timeout=30)


def test_an_upload_continues_without_a_key_as_its_own_project(keyed):
    # The Python SDK sends no key on chunks: the upload id handed out at start is the credential.
    r = send_chunk(start_upload(keyed.url, ALPHA))
    assert r.status_code == 200 and r.headers["x-goog-upload-status"] == "final", r.text
    name = r.json()["file"]["name"]
    assert httpx.get(f"{keyed.url}/v1beta/{name}", headers={"x-goog-api-key": ALPHA}).status_code == 200
    assert_envelope(httpx.get(f"{keyed.url}/v1beta/{name}", headers={"x-goog-api-key": BETA}), 403)

    # The JS SDK sends its key: another project's key finds no such upload, a wrong key is refused.
    r = send_chunk(start_upload(keyed.url, ALPHA), key=BETA)
    assert_envelope(r, 404, "NOT_FOUND")
    assert r.headers["x-goog-upload-status"] == "final"
    r = send_chunk(start_upload(keyed.url, ALPHA), key="not-a-key")
    assert_envelope(r, 400, "INVALID_ARGUMENT")
    # An id the server never handed out, or one already finished.
    assert_envelope(send_chunk(f"{keyed.url}/upload/v1beta/files?upload_id=nope&upload_protocol=resumable"), 404)
    finished = start_upload(keyed.url, ALPHA)
    assert send_chunk(finished).status_code == 200
    assert_envelope(send_chunk(finished), 404)
    # A start request needs a key like any other.
    r = httpx.post(f"{keyed.url}/upload/v1beta/files", headers={"X-Goog-Upload-Protocol": "resumable"}, json={})
    assert_envelope(r, 403, "PERMISSION_DENIED")


# ---------------------------------------------------------------------------------------------
# 2. Proxies, and 3. IPv6 forms
# ---------------------------------------------------------------------------------------------
class Canary:
    """A TCP listener standing in for a proxy: it counts connections and answers 502."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.connections = 0
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            try:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            conn.close()

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()


def url_request(uri: str) -> dict:
    return {"contents": [{"parts": [{"fileData": {"fileUri": uri, "mimeType": "image/png"}}, {"text": "What is this?"}]}],
            "generationConfig": {"maxOutputTokens": 2}}


def generate(url: str, body: dict, key: str = sdkutil.API_KEY) -> httpx.Response:
    return httpx.post(f"{url}/v1beta/models/m:generateContent", headers={"x-goog-api-key": key}, json=body, timeout=60)


PROXY_PROBES = [
    "http://localhost:{port}/red.png",  # a name for 127.0.0.1
    "http://glimpse-no-such-host.invalid/red.png",  # a name that does not resolve
    "https://glimpse-no-such-host.invalid/red.png",
    "http://[::ffff:127.0.0.1]:{port}/red.png",
]


@pytest.mark.parametrize("explicit", [False, True], ids=["environment", "fetch-proxy"])
def test_image_urls_never_reach_a_proxy_unchecked(tmp_path, explicit):
    canary = Canary()
    env = dict(os.environ)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[var] = canary.url
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    args = ["--fetch-proxy", canary.url] if explicit else []
    server = start_server(tmp_path, "proxy", args, env=env)
    try:
        port = canary.sock.getsockname()[1]
        for probe in PROXY_PROBES:
            r = generate(server.url, url_request(probe.format(port=port)))
            err = assert_envelope(r, 400, "INVALID_ARGUMENT")
            assert "Cannot fetch" in err["message"], err
        assert canary.connections == 0, f"{canary.connections} request(s) reached the proxy"
    finally:
        stop_server(server)
        canary.close()


IPV6_FORMS = {
    "compatible": "::127.0.0.1",
    "mapped": "::ffff:127.0.0.1",
    "translated": "::ffff:0:7f00:1",
    "6to4": "2002:7f00:1::1",
    "teredo": "2001:0:4136:e378:8000:63bf:80ff:fffe",
    "nat64": "64:ff9b::7f00:1",
    "nat64-metadata": "64:ff9b::a9fe:a9fe",
}


@pytest.mark.parametrize("form", IPV6_FORMS)
def test_ipv6_forms_of_loopback_are_refused(keyed, form):
    r = generate(keyed.url, url_request(f"http://[{IPV6_FORMS[form]}]:8080/red.png"), key=ALPHA)
    err = assert_envelope(r, 400, "INVALID_ARGUMENT")
    assert "not publicly routable" in err["message"], err


# ---------------------------------------------------------------------------------------------
# 4. File names per project
# ---------------------------------------------------------------------------------------------
def test_another_keys_file_name_is_indistinguishable_from_a_free_one(keyed):
    name = f"files/private-name-{int(time.time() * 1000) % 100000}"
    taken = send_chunk(start_upload(keyed.url, ALPHA, name))
    assert taken.json()["file"]["name"] == name
    # BETA may create its own file of that name; its bytes are its own.
    other = b"not an image at all"
    r = send_chunk(start_upload(keyed.url, BETA, name, other), other)
    assert r.status_code == 200 and r.json()["file"]["name"] == name, r.text
    a = httpx.get(f"{keyed.url}/v1beta/{name}", headers={"x-goog-api-key": ALPHA}).json()
    b = httpx.get(f"{keyed.url}/v1beta/{name}", headers={"x-goog-api-key": BETA}).json()
    assert (int(a["sizeBytes"]), a["state"]) == (len(RED_PNG), "ACTIVE")
    assert (int(b["sizeBytes"]), b["state"]) == (len(other), "FAILED")
    # Within one project a name is still unique.
    r = httpx.post(
        f"{keyed.url}/upload/v1beta/files",
        headers={"x-goog-api-key": ALPHA, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start"},
        json={"file": {"name": name}},
    )
    assert_envelope(r, 409, "ALREADY_EXISTS")


# ---------------------------------------------------------------------------------------------
# 5. Schemas
# ---------------------------------------------------------------------------------------------
RECURSIVE = {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}}


def test_a_recursive_schema_is_invalid_argument_on_every_surface(keyed):
    h = {"x-goog-api-key": ALPHA}
    image = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(RED_PNG).decode()}}
    gemini = {"contents": [{"parts": [image, {"text": "Describe it as JSON."}]}],
              "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": RECURSIVE}}
    err = assert_envelope(httpx.post(f"{keyed.url}/v1beta/models/m:generateContent", headers=h, json=gemini, timeout=60), 400, "INVALID_ARGUMENT")
    assert "refers to itself" in err["message"], err
    openai = {"model": "m", "messages": [{"role": "user", "content": "Describe it as JSON."}],
              "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": RECURSIVE}}}
    r = httpx.post(f"{keyed.url}/v1beta/openai/chat/completions", headers={"Authorization": f"Bearer {ALPHA}"}, json=openai, timeout=60)
    assert r.status_code == 400 and "refers to itself" in r.text, r.text
    interaction = {"model": "m", "input": "Describe it as JSON.", "response_format": {"type": "text", "schema": RECURSIVE},
                   "store": False}
    r = httpx.post(f"{keyed.url}/v1beta/interactions", headers=h, json=interaction, timeout=60)
    assert r.status_code == 400 and "refers to itself" in r.text, r.text


# ---------------------------------------------------------------------------------------------
# 6. Errors from the router itself
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method,path,code",
    [
        ("PUT", "/v1beta/models/m:generateContent", 405),
        ("DELETE", "/v1beta/models", 405),
        ("PATCH", "/v1beta/files/abc", 405),
        ("GET", "/upload/v1beta/files", 405),
        ("POST", "/v1beta/models/%FF%FE:generateContent", 400),
        ("GET", "/v1beta/files/%C3%28", 400),
        ("GET", "/no/such/route", 404),
    ],
)
def test_router_errors_are_google_envelopes(keyed, method, path, code):
    r = httpx.request(method, keyed.url + path, headers={"x-goog-api-key": ALPHA}, content=b"{}", timeout=30)
    assert_envelope(r, code)


# ---------------------------------------------------------------------------------------------
# 7. --host
# ---------------------------------------------------------------------------------------------
def serve_on(tmp_path, host: str, *extra: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    args = [str(sdkutil.GLIMPSE_BIN), "serve", "--model", str(sdkutil.MODEL_DIR), "--host", host, "--port", str(port),
            "--data-dir", str(tmp_path / f"data-{port}"), *extra]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=sdkutil.ROOT)
    return proc, port


def wait_ready(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
        try:
            if httpx.get(f"{url}/v1beta/models", headers={"x-goog-api-key": ALPHA}, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"not ready at {url}")


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("host", ["localhost", "::", "[::]", "::1"])
def test_host_takes_names_and_bare_ipv6(tmp_path, host):
    if ":" in host and not ipv6_available():
        pytest.skip("this machine has no IPv6 loopback")
    loopback = host in ("localhost", "::1")
    extra = [] if loopback else ["--api-key", ALPHA]
    proc, port = serve_on(tmp_path, host, *extra)
    try:
        connect = "[::1]" if host != "localhost" else "127.0.0.1"
        wait_ready(proc, f"http://{connect}:{port}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("host", ["::", "0.0.0.0"])
def test_a_wildcard_host_without_keys_is_refused(tmp_path, host):
    if ":" in host and not ipv6_available():
        pytest.skip("this machine has no IPv6 loopback")
    proc, _ = serve_on(tmp_path, host)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "refusing to serve" in out.decode(errors="replace")
