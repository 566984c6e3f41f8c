"""A local HTTP server that imitates the Hugging Face hub's file layout, for `glimpse pull` tests.

It serves one folder as a model repository at one commit, the way huggingface.co answers the hub clients:

* ``GET /api/models/{owner}/{name}/revision/{rev}``: ``{"id", "sha", "siblings": [{"rfilename"}]}``;
* ``GET /{owner}/{name}/resolve/{rev}/{file}``: the file, honouring ``Range`` (206 with ``Content-Range``),
  with ``X-Repo-Commit`` and ``ETag`` headers;
* 404 with ``X-Error-Code`` for unknown repositories, revisions and files.

Every resolve request is logged as ``(file, range)``. ``cut`` makes data requests fail the way a dropped
connection does: a request for ``file`` whose range starts at or beyond ``cut_from`` sends its headers, half of
its bytes, and closes — once the requests before ``cut_from`` have been answered, so that the part a client can
keep is well defined.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import time
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubSim:
    def __init__(self, folder: Path, repo: str, commit: str = COMMIT):
        self.folder = folder
        self.repo = repo
        self.commit = commit
        self.files = sorted(p.name for p in folder.iterdir() if p.is_file())
        self.requests: list[tuple[str, str | None]] = []
        self.cut: tuple[str, int] | None = None
        self._served_before_cut = threading.Event()
        self._bytes_before_cut = 0
        self._lock = threading.Lock()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> HubSim:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def cut_from(self, file: str, offset: int) -> None:
        """Drop every data request for `file` that starts at `offset` or later (see the module doc)."""
        self.cut = (file, offset)
        self._bytes_before_cut = 0
        self._served_before_cut.clear()

    def heal(self) -> None:
        self.cut = None

    def data_requests(self, file: str) -> list[str | None]:
        """Ranges asked for `file`, leaving out the clients' one-byte metadata probes."""
        return [r for f, r in self.requests if f == file and r != "bytes=0-0"]

    def _handler(self):
        sim = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _not_found(self, code: str, message: str) -> None:
                body = json.dumps({"error": message}).encode()
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                api = re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/]+)", self.path)
                if api:
                    return self._info(api.group(1), api.group(2))
                resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self.path)
                if resolve:
                    return self._resolve(*resolve.groups())
                self._not_found("EntryNotFound", "no such route")

            def _known(self, repo: str, revision: str) -> bool:
                return repo == sim.repo and revision in ("main", sim.commit)

            def _info(self, repo: str, revision: str) -> None:
                if not self._known(repo, revision):
                    return self._not_found("RepoNotFound", "Repository not found")
                body = json.dumps({"id": repo, "sha": sim.commit, "siblings": [{"rfilename": f} for f in sim.files]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _resolve(self, repo: str, revision: str, file: str) -> None:
                if not self._known(repo, revision):
                    return self._not_found("RepoNotFound", "Repository not found")
                if file not in sim.files:
                    return self._not_found("EntryNotFound", "Entry not found")
                data = (sim.folder / file).read_bytes()
                wanted = self.headers.get("Range")
                with sim._lock:
                    sim.requests.append((file, wanted))
                start, end = 0, len(data) - 1
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted or "")
                if match:
                    start = int(match.group(1))
                    end = min(int(match.group(2)), len(data) - 1) if match.group(2) else len(data) - 1
                chunk = data[start : end + 1]
                self.send_response(206 if match else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(chunk)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("X-Repo-Commit", sim.commit)
                self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
                if match:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                cut = sim.cut
                if cut and cut[0] == file and wanted != "bytes=0-0":
                    if start >= cut[1]:
                        # Let the requests before the cut finish first; then break this one off.
                        sim._served_before_cut.wait(timeout=10)
                        time.sleep(0.5)
                        self.wfile.write(chunk[: len(chunk) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    with sim._lock:
                        sim._bytes_before_cut += len(chunk)
                        if sim._bytes_before_cut >= cut[1]:
                            sim._served_before_cut.set()
                    return
                self.wfile.write(chunk)

        return Handler
