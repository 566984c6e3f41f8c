"""The hostile-input suite, part two: payloads built to hurt, over real HTTP and raw sockets. Each is answered
with its Google-format 4xx, quickly and without the server's memory growing; where a payload aims at another
host, a local listener proves no forbidden connection was made.

1. Decompression bombs in every format (a real PNG bomb, and headers that claim more pixels than allowed).
2. Truncated images in every format, at several cuts.
3. 3,601 images by reference to one upload.
4. JSON 100,000 levels deep, invalid UTF-8, numbers too large for any field.
5. Slow senders: a body over the limit sent slowly is refused at once; a body that stops arriving is answered
   408 after `--read-timeout`; a resumable upload chunk cut that way resumes from its last offset; a
   steady trickle within the timeout is served.
6. SSRF: IPv4 in decimal, octal, hex and short forms; redirects to loopback; a DNS name whose answers change
   between lookups (DNS rebinding, with the server's resolver pointed at a local DNS server).
7. Random mutations of real requests, byte-level on the socket (request line, headers, bodies): no 5xx, the
   server stays up (`GLIMPSE_HOSTILE_MUTATIONS`, default 10,500, as many as the probe that first ran this).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import threading
import time
import zlib

import httpx
import pytest

import sdkutil
from conftest import start_server, stop_server
from test_hostile_input import Canary, assert_envelope, url_request

GEN = "/v1beta/models/m:generateContent"
HEADERS = {"x-goog-api-key": sdkutil.API_KEY}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("payloads"), "payloads", ["--read-timeout", "1"])
    yield running
    stop_server(running)


def rss_mb(server) -> float:
    for line in open(f"/proc/{server.proc.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def image_body(data: bytes, mime: str) -> dict:
    return {"contents": [{"parts": [{"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}, {"text": "What is this?"}]}],
            "generationConfig": {"maxOutputTokens": 2}}


def post(server, body, path: str = GEN, timeout: float = 60) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(server.url + path, headers={**HEADERS, "content-type": "application/json"}, content=content, timeout=timeout)


# ---------------------------------------------------------------------------------------------
# 1. Decompression bombs
# ---------------------------------------------------------------------------------------------
def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A real PNG of zeros: each row compresses to almost nothing."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + width)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(sdkutil.jpeg_bytes(16))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def webp_claiming(width: int, height: int) -> bytes:
    """A VP8X header (the extended format's canvas size) in front of a real lossy frame."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(out, "WEBP")
    frame = out.getvalue()[12:]  # the VP8 chunk
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    payload = b"WEBP" + vp8x + frame
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def heic_claiming(width: int, height: int) -> bytes:
    """Every `ispe` (image spatial extents) box of a real HEIC rewritten: the size each item declares."""
    data = bytearray((sdkutil.IMAGES_DIR / "tiny.heic").read_bytes())
    at = data.find(b"ispe")
    while at >= 0:
        data[at + 8 : at + 16] = struct.pack(">II", width, height)  # after the box type, version and flags
        at = data.find(b"ispe", at + 4)
    return bytes(data)


BOMBS = {
    "png_12000x12000_zeros": (lambda: png_bomb(12000, 12000), "image/png"),
    "png_header_60000x60000": (lambda: png_bomb(60000, 1)[:33] + png_bomb(1, 1)[33:], "image/png"),
    "jpeg_header_65000x65000": (lambda: jpeg_claiming(65000, 65000), "image/jpeg"),
    "webp_canvas_16384x16384": (lambda: webp_claiming(16384, 16384), "image/webp"),
    "heic_ispe_20000x20000": (lambda: heic_claiming(20000, 20000), "image/heic"),
}


@pytest.mark.parametrize("bomb", BOMBS)
def test_decompression_bombs_are_refused_from_their_headers(server, bomb):
    make, mime = BOMBS[bomb]
    data = make()
    assert len(data) < 1_000_000, len(data)
    before = rss_mb(server)
    started = time.monotonic()
    r = post(server, image_body(data, mime))
    elapsed = time.monotonic() - started
    err = assert_envelope(r, 400, "INVALID_ARGUMENT")
    assert "pixels" in err["message"], err
    assert elapsed < 5, f"{elapsed:.1f} s: the pixels were decoded before the size was checked"
    assert rss_mb(server) - before < 150, f"RSS grew {rss_mb(server) - before:.0f} MB for a {len(data)}-byte bomb"


# ---------------------------------------------------------------------------------------------
# 2. Truncated images
# ---------------------------------------------------------------------------------------------
def whole_images() -> dict[str, tuple[bytes, str]]:
    from PIL import Image

    picture = Image.new("RGB", (96, 64), (255, 255, 255))
    for x in range(48):
        for y in range(32):
            picture.putpixel((x, y), (200, 30 + x, 30 + y))
    found = {}
    for fmt, mime, options in [("PNG", "image/png", {}), ("JPEG", "image/jpeg", {"quality": 90}), ("WEBP", "image/webp", {"quality": 80})]:
        out = io.BytesIO()
        picture.save(out, fmt, **options)
        found[fmt.lower()] = (out.getvalue(), mime)
    found["heic"] = ((sdkutil.IMAGES_DIR / "alpha.heic").read_bytes(), "image/heic")
    return found


WHOLE = whole_images()


@pytest.mark.parametrize("cut", ["half", "all_but_16_bytes"])
@pytest.mark.parametrize("fmt", list(WHOLE))
def test_truncated_images_are_refused_in_every_format(server, fmt, cut):
    data, mime = WHOLE[fmt]
    assert post(server, image_body(data, mime)).status_code == 200, "the whole image must be accepted"
    short = data[: len(data) // 2] if cut == "half" else data[:-16]
    err = assert_envelope(post(server, image_body(short, mime)), 400, "INVALID_ARGUMENT")
    assert "image" in err["message"].lower(), err


# ---------------------------------------------------------------------------------------------
# 3. 3,601 images by reference
# ---------------------------------------------------------------------------------------------
def test_3601_references_to_one_upload_are_refused(server):
    client = sdkutil.make_client(server.url)
    uploaded = client.files.upload(file=io.BytesIO(sdkutil.tiny_png()), config={"mime_type": "image/png"})
    part = {"fileData": {"fileUri": uploaded.uri, "mimeType": "image/png"}}
    at_limit = {"contents": [{"parts": [part] * sdkutil.DEFAULT_MAX_IMAGES + [{"text": "How many?"}]}]}
    over = {"contents": [{"parts": [part] * (sdkutil.DEFAULT_MAX_IMAGES + 1) + [{"text": "How many?"}]}]}
    err = assert_envelope(post(server, over, "/v1beta/models/m:countTokens"), 400, "INVALID_ARGUMENT")
    assert "3600" in err["message"].replace(",", ""), err
    assert post(server, at_limit, "/v1beta/models/m:countTokens").status_code == 200


# ---------------------------------------------------------------------------------------------
# 4. Deep JSON, invalid UTF-8, huge numbers
# ---------------------------------------------------------------------------------------------
def test_json_100000_levels_deep_is_refused(server):
    deep = b'{"contents": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    err = assert_envelope(post(server, deep), 400, "INVALID_ARGUMENT")
    assert "JSON" in err["message"], err
    nested_object = b'{"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"responseSchema": ' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}}"
    assert_envelope(post(server, nested_object), 400, "INVALID_ARGUMENT")
    for path in ["/v1beta/openai/chat/completions", "/v1beta/interactions", "/v1beta/cachedContents"]:
        r = post(server, b"[" * 100_000 + b"]" * 100_000, path)
        assert r.status_code == 400, (path, r.status_code, r.text[:200])
    assert post(server, sdkutil.SHORT_ANSWER).status_code == 200, "the server must still answer"


def test_invalid_utf8_is_refused(server):
    for body in [b'{"contents": [{"parts": [{"text": "\xff\xfe caf\xc3"}]}]}', b'{"contents\xc0\xaf": []}', b"\xef\xbb\xbf\xff"]:
        err = assert_envelope(post(server, body), 400, "INVALID_ARGUMENT")
        assert "JSON" in err["message"], err


HUGE_NUMBERS = {
    "maxOutputTokens": ["1e400", "18446744073709551616", "-5", '"NaN"', '"1e999"', "4294967296"],
    "temperature": ["1e309", '"inf"', "-1e308"],
    "topK": ["1e30", "-1"],
    "candidateCount": ["99999999999999999999999"],
    "seed": ["1e400"],
}


@pytest.mark.parametrize("field", HUGE_NUMBERS)
def test_numbers_too_large_for_their_field_are_refused(server, field):
    for raw in HUGE_NUMBERS[field]:
        body = b'{"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"' + field.encode() + b'": ' + raw.encode() + b"}}"
        r = post(server, body)
        err = assert_envelope(r, 400, "INVALID_ARGUMENT")
        assert err["message"], (field, raw)


# ---------------------------------------------------------------------------------------------
# 5. Slow senders
# ---------------------------------------------------------------------------------------------
def raw_request(server, head: str, body: bytes = b"") -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=10)
    conn.sendall(head.encode() + b"\r\n" + body)
    return conn


def read_answer(conn: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while True:
        try:
            piece = conn.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not piece:
            break
        data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode(errors="replace").split("\r\n")[1:] if ": " in line)
        length = int({k.lower(): v for k, v in headers.items()}.get("content-length", "-1"))
        if b"\r\n\r\n" in data and 0 <= length <= len(body):
            break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if ": " in line)}
    return status, headers, body


def post_head(server, path: str, length: int, extra: str = "") -> str:
    port = server.url.rsplit(":", 1)[1]
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-goog-api-key: {sdkutil.API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n{extra}")


@pytest.mark.parametrize("sent", [0, 100])
def test_a_body_that_stops_arriving_is_answered_408(server, sent):
    body = json.dumps(sdkutil.SHORT_ANSWER).encode().ljust(5000)
    started = time.monotonic()
    conn = raw_request(server, post_head(server, GEN, len(body)), body[:sent])
    status, headers, answer = read_answer(conn)
    elapsed = time.monotonic() - started
    assert status == 408, (status, answer[:300])
    error = json.loads(answer)["error"]
    assert error["code"] == 408 and error["status"] == "DEADLINE_EXCEEDED", error
    assert headers.get("connection") == "close", headers
    assert 0.9 < elapsed < 5, elapsed
    assert conn.recv(1) == b"", "the connection must be closed"
    conn.close()


def test_headers_sent_a_byte_at_a_time_lose_their_connection(server):
    """Slowloris: a request line and headers trickled slower than the read timeout allows in all."""
    host, port = server.url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=10)
    conn.sendall(b"GET /v1beta/models HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    closed = False
    for _ in range(20):  # 10 s of a header byte every 0.5 s
        time.sleep(0.5)
        try:
            conn.sendall(b"X")
        except OSError:
            closed = True
            break
        conn.settimeout(0.01)
        try:
            closed = conn.recv(1024) is not None
            break
        except socket.timeout:
            pass
        except OSError:
            closed = True
            break
    conn.close()
    assert closed, "the server kept a connection whose headers never ended"
    assert time.monotonic() - started < 4, time.monotonic() - started
    assert post(server, sdkutil.SHORT_ANSWER).status_code == 200


def test_a_body_over_the_limit_is_refused_before_it_is_sent(server):
    started = time.monotonic()
    conn = raw_request(server, post_head(server, GEN, 64 * 1024 * 1024), b"{" + b" " * 1023)
    status, _, answer = read_answer(conn)
    conn.close()
    assert status == 413, (status, answer[:300])
    assert time.monotonic() - started < 0.9, "a body over the limit must be refused without waiting for it"


def test_a_steady_trickle_within_the_timeout_is_served(server):
    body = json.dumps(sdkutil.SHORT_ANSWER).encode()
    conn = raw_request(server, post_head(server, GEN, len(body)))
    started = time.monotonic()
    for i in range(0, len(body), len(body) // 6 + 1):
        time.sleep(0.4)  # under the 1 s timeout each time, 2.4 s in all
        conn.sendall(body[i : i + len(body) // 6 + 1])
    status, _, answer = read_answer(conn)
    conn.close()
    assert time.monotonic() - started > 2
    assert status == 200, (status, answer[:300])


def test_a_stalled_upload_chunk_resumes_from_its_last_offset(server):
    data = sdkutil.big_png(600_000)
    half = 256 * 1024 * 2
    start = httpx.post(f"{server.url}/upload/v1beta/files", headers={**HEADERS, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                       "X-Goog-Upload-Header-Content-Length": str(len(data)), "X-Goog-Upload-Header-Content-Type": "image/png"}, json={"file": {}}, timeout=30)
    url = start.headers["x-goog-upload-url"]
    first = httpx.post(url, headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"}, content=data[:half], timeout=30)
    assert first.headers["x-goog-upload-status"] == "active", first.text
    path = url.split(server.url, 1)[1]
    rest = data[half:]
    head = post_head(server, path, len(rest), "X-Goog-Upload-Command: upload, finalize\r\nX-Goog-Upload-Offset: " + str(half) + "\r\n")
    conn = raw_request(server, head.replace("x-goog-api-key: " + sdkutil.API_KEY + "\r\n", ""), rest[: len(rest) // 2])
    status, headers, _ = read_answer(conn)
    conn.close()
    assert status == 408, status
    query = httpx.post(url, headers={"X-Goog-Upload-Command": "query"}, timeout=30)
    assert query.headers["x-goog-upload-status"] == "active", query.text
    assert query.headers["x-goog-upload-size-received"] == str(half), query.headers
    done = httpx.post(url, headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": str(half)}, content=rest, timeout=30)
    assert done.status_code == 200, done.text
    file = done.json()["file"]
    assert file["state"] == "ACTIVE" and int(file["sizeBytes"]) == len(data), file
    assert base64.b64decode(file["sha256Hash"]).hex() == hashlib.sha256(data).hexdigest() or file["sha256Hash"] == hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# 6. SSRF
# ---------------------------------------------------------------------------------------------
class ImageHost(http.server.ThreadingHTTPServer):
    """An HTTP server on a second loopback address (admitted with --fetch-allow): serves a PNG, or redirects."""

    def __init__(self, address: str, port: int, redirect_to: str | None = None):
        png = sdkutil.fixture_png()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if redirect_to:
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(len(png)))
                    self.end_headers()
                    self.wfile.write(png)

            def log_message(self, *args):
                pass

        super().__init__((address, port), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self):
        self.shutdown()
        self.server_close()


NUMERIC_FORMS = ["2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "017700000001", "127.1", "127.0.1", "0x7f.1"]


def test_ipv4_in_every_numeric_form_is_refused(server):
    canary = Canary()
    port = canary.sock.getsockname()[1]
    try:
        for form in NUMERIC_FORMS:
            err = assert_envelope(post(server, url_request(f"http://{form}:{port}/red.png")), 400, "INVALID_ARGUMENT")
            assert "not publicly routable" in err["message"], (form, err)
        assert canary.connections == 0
    finally:
        canary.close()


def test_redirects_to_loopback_are_refused(tmp_path):
    canary = Canary()
    port = canary.sock.getsockname()[1]
    hosts = []
    running = start_server(tmp_path, "redirects", ["--fetch-allow", "127.0.0.2/32"])
    try:
        direct = ImageHost("127.0.0.2", 0)
        hosts.append(direct)
        ok = post(running, url_request(f"http://127.0.0.2:{direct.server_address[1]}/red.png"))
        assert ok.status_code == 200, f"the admitted host must be fetched: {ok.text[:300]}"
        for target in [f"http://127.0.0.1:{port}/red.png", f"http://localhost:{port}/red.png", f"http://[::ffff:127.0.0.1]:{port}/red.png",
                       f"http://2130706433:{port}/red.png", "http://169.254.169.254/latest/meta-data/"]:
            redirector = ImageHost("127.0.0.2", 0, redirect_to=target)
            hosts.append(redirector)
            r = post(running, url_request(f"http://127.0.0.2:{redirector.server_address[1]}/red.png"))
            err = assert_envelope(r, 400, "INVALID_ARGUMENT")
            assert "Cannot fetch" in err["message"], (target, err)
        assert canary.connections == 0, f"{canary.connections} connection(s) reached loopback"
    finally:
        stop_server(running)
        for host in hosts:
            host.close()
        canary.close()


class RebindingDns:
    """A DNS server on 127.0.0.3:53 whose A answers for one name alternate between an admitted address and
    loopback, as a rebinding attacker's does (TTL 0). AAAA and other questions get no answer."""

    def __init__(self, name: str, answers: list[str]):
        self.name, self.answers, self.count = name, answers, 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.3", 53))
        self.sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop:
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                continue
            end = 12
            while query[end] != 0:
                end += query[end] + 1
            labels, at = [], 12
            while query[at] != 0:
                labels.append(query[at + 1 : at + 1 + query[at]].decode(errors="replace"))
                at += query[at] + 1
            qtype = struct.unpack(">H", query[end + 1 : end + 3])[0]
            question = query[12 : end + 5]
            answer = b""
            if qtype == 1 and ".".join(labels).lower() == self.name:
                address = self.answers[self.count % len(self.answers)]
                self.count += 1
                answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + socket.inet_aton(address)
            header = query[:2] + struct.pack(">HHHHH", 0x8180, 1, 1 if answer else 0, 0, 0)
            self.sock.sendto(header + question + answer, peer)

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()


def test_dns_answers_that_change_between_lookups_never_reach_loopback(tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to give the server its own resolv.conf")
    canary = Canary()
    port = canary.sock.getsockname()[1]
    host = ImageHost("127.0.0.2", port)  # the admitted address, on the canary's port number
    try:
        dns = RebindingDns("rebind.glimpse.test", ["127.0.0.2", "127.0.0.1"])
    except PermissionError:
        host.close()
        canary.close()
        pytest.skip("cannot bind a DNS server on 127.0.0.3:53")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.3\noptions attempts:1 timeout:1\n")
    wrapper = ["unshare", "--mount", "sh", "-c", f'mount --bind "{resolv}" /etc/resolv.conf && exec "$@"', "sh"]
    running = start_server(tmp_path, "rebinding", ["--fetch-allow", "127.0.0.2/32"], wrapper=wrapper)
    try:
        answers = [post(running, url_request(f"http://rebind.glimpse.test:{port}/red.png")) for _ in range(6)]
        codes = [r.status_code for r in answers]
        assert dns.count >= 6, f"the server asked the DNS server {dns.count} times"
        assert 200 in codes, f"the admitted answers must be fetched: {codes} {answers[0].text[:200]}"
        for r in answers:
            if r.status_code != 200:
                assert "not publicly routable" in assert_envelope(r, 400, "INVALID_ARGUMENT")["message"]
        assert canary.connections == 0, f"{canary.connections} connection(s) reached 127.0.0.1 through rebinding"
    finally:
        stop_server(running)
        dns.close()
        host.close()
        canary.close()


# ---------------------------------------------------------------------------------------------
# 7. Byte-level mutations of real requests
# ---------------------------------------------------------------------------------------------
def seed_requests(port: int) -> list[bytes]:
    png = sdkutil.tiny_png()

    def request(method: str, path: str, body: bytes, content_type: str = "application/json", extra: str = "") -> bytes:
        return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-goog-api-key: {sdkutil.API_KEY}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n").encode() + body

    metadata = json.dumps({"file": {"display_name": "m.png"}}).encode()
    multipart = (b"--b\r\nContent-Type: application/json\r\n\r\n" + metadata + b"\r\n--b\r\nContent-Type: image/png\r\n\r\n" + png + b"\r\n--b--\r\n")
    return [
        request("POST", GEN, json.dumps(image_body(png, "image/png")).encode()),
        request("POST", "/v1beta/models/m:streamGenerateContent?alt=sse", json.dumps(sdkutil.SHORT_ANSWER).encode()),
        request("POST", "/v1beta/models/m:countTokens", json.dumps(image_body(png, "image/png")).encode()),
        request("POST", "/v1beta/openai/chat/completions", json.dumps({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}}]}], "max_tokens": 2}).encode()),
        request("POST", "/v1beta/interactions", json.dumps({"model": "m", "input": "hi", "generation_config": {"max_output_tokens": 2}}).encode()),
        request("POST", "/upload/v1beta/files", multipart, "multipart/related; boundary=b", "X-Goog-Upload-Protocol: multipart\r\n"),
        request("POST", "/upload/v1beta/files", metadata, extra="X-Goog-Upload-Protocol: resumable\r\nX-Goog-Upload-Command: start\r\n"),
        request("GET", "/v1beta/models", b""),
    ]


def mutate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        at = rng.randrange(len(out) + 1) if out else 0
        if op == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[min(at, len(out) - 1)] = rng.choice(b'\x00\xff"\\{}[]:,0-9eE \r\n')
        elif op == 2:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and out:
            del out[at : at + rng.randint(1, 32)]
        elif op == 4 and out:
            out[at:at] = out[at : at + rng.randint(1, 64)]
        elif op == 5:
            out = out[:at] + other[rng.randrange(len(other)) :]
        else:
            out = out[:at]
    return bytes(out)


def test_mutated_requests_never_get_a_5xx(server):
    count = int(os.environ.get("GLIMPSE_HOSTILE_MUTATIONS", "10500"))
    port = int(server.url.rsplit(":", 1)[1])
    seeds = seed_requests(port)
    rng = random.Random(20261206)
    statuses: dict[int, int] = {}
    for n in range(count):
        data = mutate(rng, rng.choice(seeds), rng.choice(seeds))
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server refused the request line or headers and closed already: read its answer
        try:
            status, _, body = read_answer(conn)
        except OSError:
            status, body = 0, b""
        finally:
            conn.close()
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, f"mutation {n} answered {status}: {body[:300]!r}\n--- request ---\n{data[:600]!r}"
        assert server.proc.poll() is None, f"mutation {n} stopped the server:\n{data[:600]!r}"
    # Status 0: the server refused the framing and closed the connection (a reset can swallow its answer).
    assert statuses.get(200, 0) > count // 100, f"too few mutations were still valid requests: {statuses}"
    assert post(server, sdkutil.SHORT_ANSWER).status_code == 200
