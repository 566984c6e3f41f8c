"""Crash safety: the server is killed with SIGKILL while it writes (a chunk half received, six uploads in flight,
a stored interaction), then restarted on the same data folder. Whatever it acknowledged is there and intact,
whatever it had not finished can be resumed from what it acknowledged (or is cleanly gone), and once everything
is deleted or abandoned the sweeper leaves no blob behind; SQLite's own integrity check passes throughout."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

import sdkutil
from conftest import start_server, stop_server

HEADERS = {"x-goog-api-key": sdkutil.API_KEY}
CHUNK = 256 * 1024


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def png(size: int) -> bytes:
    """`size` bytes that start as a PNG: the store recognises a format from the first bytes only."""
    return b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8)


def start_upload(base: str, size: int) -> str:
    r = httpx.post(f"{base}/upload/v1beta/files", headers={
        **HEADERS, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(size), "X-Goog-Upload-Header-Content-Type": "image/png",
    }, json={"file": {}}, timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["x-goog-upload-url"]


def send(url: str, offset: int, data: bytes, finalize: bool) -> httpx.Response:
    command = "upload, finalize" if finalize else "upload"
    return httpx.post(url, headers={"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset)},
                      content=data, timeout=30)


def send_until_claimed(url: str, offset: int, data: bytes) -> httpx.Response:
    """The last chunk and finalize, sent again while a killed finalize's claim holds (400 FAILED_PRECONDITION until
    its 10 s lease runs out)."""
    deadline = time.monotonic() + 20
    while True:
        r = send(url, offset, data, True)
        if r.status_code != 400 or "FAILED_PRECONDITION" not in r.text or time.monotonic() > deadline:
            return r
        time.sleep(0.5)


def moved(url: str, base: str) -> str:
    """An upload URL of the server before the restart, pointed at the one after it (a new port)."""
    return base + url[url.index("/upload/"):]


class Uploader(threading.Thread):
    """Uploads `data` chunk by chunk until the server dies, remembering what it acknowledged."""

    def __init__(self, base: str, data: bytes):
        super().__init__(daemon=True)
        self.base, self.data = base, data
        self.url: str | None = None
        self.acknowledged = 0
        self.file: dict | None = None

    def run(self) -> None:
        try:
            self.url = start_upload(self.base, len(self.data))
            while self.file is None:
                end = min(self.acknowledged + CHUNK, len(self.data))
                r = send(self.url, self.acknowledged, self.data[self.acknowledged:end], end == len(self.data))
                if r.status_code != 200:
                    return
                if end == len(self.data):
                    self.file = r.json()["file"]
                self.acknowledged = end
        except httpx.HTTPError:
            return  # the server died


def half_sent_chunk(url: str, offset: int, data: bytes) -> socket.socket:
    """A chunk whose request declares all of `data` but sends only its first half: the server is writing it when
    it dies."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    head = (f"POST {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\nX-Goog-Upload-Command: upload\r\n"
            f"X-Goog-Upload-Offset: {offset}\r\nContent-Length: {len(data)}\r\n\r\n")
    sock.sendall(head.encode() + data[: len(data) // 2])
    return sock


def database(data_dir: Path) -> Path:
    [db] = [p for p in data_dir.iterdir() if p.suffix in (".db", ".sqlite", ".sqlite3")]
    return db


def integrity(data_dir: Path) -> str:
    with sqlite3.connect(database(data_dir)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def blob_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "blobs").rglob("*") if p.is_file()]


def test_sigkill_loses_nothing_acknowledged_and_leaves_nothing_behind(tmp_path):
    data_dir = tmp_path / "data"
    server = start_server(tmp_path, "before", ["--data-dir", str(data_dir)])
    base = server.url
    try:
        done = {}
        for n in range(3):
            data = png(300_000)
            file = send(start_upload(base, len(data)), 0, data, True).json()["file"]
            done[file["name"]] = data
        # An upload with its first half acknowledged and its second half arriving when the server dies.
        cut = png(2 * CHUNK)
        cut_url = start_upload(base, len(cut))
        assert send(cut_url, 0, cut[:CHUNK], False).headers["x-goog-upload-size-received"] == str(CHUNK)
        stored = httpx.post(f"{base}/v1beta/interactions", headers=HEADERS, timeout=60, json={
            "model": sdkutil.MODEL_ID, "input": "hi", "generation_config": {"max_output_tokens": 3}}).json()["id"]
        uploaders = [Uploader(base, png(3 * CHUNK + 1000 * n)) for n in range(6)]
        for uploader in uploaders:
            uploader.start()
        stalled = half_sent_chunk(cut_url, CHUNK, cut[CHUNK:])
        time.sleep(0.4)  # the uploads are mid-way: some chunks written, some files finalized
        server.proc.kill()
        server.proc.wait(timeout=10)
        stalled.close()
        for uploader in uploaders:
            uploader.join(timeout=30)
    finally:
        stop_server(server)
    assert integrity(data_dir) == "ok"

    server = start_server(tmp_path, "after", ["--data-dir", str(data_dir)])
    base = server.url
    try:
        # Every file that was ACTIVE still is, with its bytes (the hash the store computed, and the blob itself).
        on_disk = {hashlib.sha256(p.read_bytes()).digest() for p in blob_files(data_dir)}
        finished = {u.file["name"]: u.data for u in uploaders if u.file}
        for name, data in {**done, **finished}.items():
            r = httpx.get(f"{base}/v1beta/{name}", headers=HEADERS, timeout=30)
            assert r.status_code == 200 and r.json()["state"] == "ACTIVE", r.text
            assert r.json()["sha256Hash"] == sha256_b64(data)
            assert hashlib.sha256(data).digest() in on_disk, f"{name}: no blob holds its bytes"
        # The cut upload goes on from what was acknowledged.
        url = moved(cut_url, base)
        assert httpx.post(url, headers={"X-Goog-Upload-Command": "query"}).headers["x-goog-upload-size-received"] == str(CHUNK)
        file = send(url, CHUNK, cut[CHUNK:], True).json()["file"]
        assert (file["state"], file["sha256Hash"]) == ("ACTIVE", sha256_b64(cut))
        # Each upload in flight resumes from where the server got to (what it acknowledged, or one more chunk
        # whose answer the kill swallowed), or is gone because that chunk was its last and the server finalized
        # it (the file is listed below); finished, it holds exactly its bytes.
        resumed, swallowed = 0, []
        for uploader in (u for u in uploaders if u.url and not u.file):
            url = moved(uploader.url, base)
            query = httpx.post(url, headers={"X-Goog-Upload-Command": "query"})
            if query.status_code == 404:
                assert uploader.acknowledged + CHUNK >= len(uploader.data), "an unfinished upload was lost"
                swallowed.append(sha256_b64(uploader.data))
                continue
            resumed += 1
            received = int(query.headers["x-goog-upload-size-received"])
            assert received in (uploader.acknowledged, min(uploader.acknowledged + CHUNK, len(uploader.data))), received
            answer = send_until_claimed(url, received, uploader.data[received:])
            assert answer.status_code == 200 and "file" in answer.json(), (received, answer.status_code, answer.text)
            file = answer.json()["file"]
            assert (file["state"], file["sha256Hash"]) == ("ACTIVE", sha256_b64(uploader.data))
        r = httpx.get(f"{base}/v1beta/interactions/{stored}", headers=HEADERS, timeout=30)
        assert r.status_code == 200, r.text
        # The client deletes every file; an upload it abandons is swept below.
        start_upload(base, 1000)
        files = httpx.get(f"{base}/v1beta/files?pageSize=100", headers=HEADERS).json()["files"]
        listed = {f["sha256Hash"] for f in files if f["state"] == "ACTIVE"}
        assert all(h in listed for h in swallowed), "a finalize whose answer the kill swallowed left no file"
        names = [f["name"] for f in files]
        assert len(names) == len(done) + len(finished) + 1 + resumed + len(swallowed)
        for name in names:
            assert httpx.delete(f"{base}/v1beta/{name}", headers=HEADERS).status_code == 200
    finally:
        stop_server(server)

    # Uploads older than a second are abandoned: the sweeper ends them, and no blob is left over.
    server = start_server(tmp_path, "sweep", ["--data-dir", str(data_dir), "--file-ttl-seconds", "1",
                                              "--interaction-ttl-seconds", "1"])
    try:
        deadline = time.monotonic() + 15
        while blob_files(data_dir) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert blob_files(data_dir) == [], "orphaned blobs"
    finally:
        stop_server(server)
    assert integrity(data_dir) == "ok"


@pytest.mark.parametrize("kill_after_s", [0.0, 0.05])
def test_a_finalize_killed_midway_can_be_sent_again(tmp_path, kill_after_s):
    """A 24 MB upload in six chunks is finalized (its chunks joined into one blob) and the server is killed at some
    point of that (0 s: before it claimed the upload; 0.05 s: while it joins the chunks, measured). After the
    restart the file is either ACTIVE already, or the finalize is sent again and takes over the dead one's claim
    once its 10 s lease has run out, and either way the file holds exactly its bytes and no blob is left over."""
    data_dir = tmp_path / "data"
    data = png(6 * 4 * 1024 * 1024)
    server = start_server(tmp_path, "before", ["--data-dir", str(data_dir)])
    try:
        url = start_upload(server.url, len(data))
        for offset in range(0, len(data), 4 * 1024 * 1024):
            assert send(url, offset, data[offset:offset + 4 * 1024 * 1024], False).status_code == 200
        finalize = threading.Thread(target=lambda: _quietly(send, url, len(data), b"", True), daemon=True)
        finalize.start()
        time.sleep(kill_after_s)
        server.proc.kill()
        server.proc.wait(timeout=10)
        finalize.join(timeout=30)
    finally:
        stop_server(server)
    assert integrity(data_dir) == "ok"
    server = start_server(tmp_path, "after", ["--data-dir", str(data_dir)])
    try:
        url = moved(url, server.url)
        r = send_until_claimed(url, len(data), b"")
        if r.status_code == 404:  # it was finalized before the kill: the session is gone, the file is there
            [file] = httpx.get(f"{server.url}/v1beta/files", headers=HEADERS).json()["files"]
        else:
            assert r.status_code == 200, r.text
            file = r.json()["file"]
        assert (file["state"], file["sha256Hash"]) == ("ACTIVE", sha256_b64(data))
        assert httpx.delete(f"{server.url}/v1beta/{file['name']}", headers=HEADERS).status_code == 200
    finally:
        stop_server(server)
    assert blob_files(data_dir) == [], "orphaned blobs"


def _quietly(call, *args) -> None:
    try:
        call(*args)
    except httpx.HTTPError:
        pass
