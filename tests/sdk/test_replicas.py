"""Several replicas as an operator runs them: two `glimpse serve` processes, each with its own empty data
folder, sharing one real PostgreSQL database and one S3 bucket (moto's S3 server). Through the official SDK:
a file uploaded through one is listed, read, used and deleted through the other; a resumable upload whose
chunks alternate between them ends ACTIVE; a conversation continues on the other replica; no byte lands in a
data folder. Then the operator's side: /metrics, /healthz, /readyz, a database outage answered without
internals, and a SIGTERM during a streamed answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import errors, types

import sdkutil
import services
from conftest import _start_server, stop_server

CASE = "caption_square"
KEYS = ["--api-key", "alpha-key", "--api-key", "beta-key"]


def client_for(url: str, key: str = "alpha-key") -> genai.Client:
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=url, retry_options=types.HttpRetryOptions(attempts=1), timeout=sdkutil.REQUEST_TIMEOUT_S * 1000
        ),
    )


def case_image(case: dict) -> Path:
    (message,) = [m for m in case["messages"] if m["role"] == "user"]
    return sdkutil.resolve_path(next(i for i in message["content"] if i["type"] == "image")["path"])


def contents_with_file(case: dict, uploaded) -> list:
    (message,) = [m for m in case["messages"] if m["role"] == "user"]
    return [uploaded if item["type"] == "image" else item["text"] for item in message["content"]]


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def error_of(call) -> errors.APIError:
    with pytest.raises(errors.APIError) as ei:
        call()
    return ei.value


@pytest.fixture(scope="module")
def pair(tmp_path_factory, shared_storage):
    """Two replicas with two API keys on a fresh database and bucket: (servers, bucket)."""
    tmp = tmp_path_factory.mktemp("replicas")
    database, blob_url, bucket = shared_storage.new_group("pair")
    servers = [
        _start_server(tmp, f"replica-{i}", [*KEYS, "--database-url", database, "--blob-url", blob_url], shared_storage.env())
        for i in range(2)
    ]
    yield servers, bucket
    for server in servers:
        stop_server(server)


def data_files(server) -> list[Path]:
    data_dir = Path(server.args[server.args.index("--data-dir") + 1])
    return [p for p in data_dir.rglob("*") if p.is_file()]


def test_file_uploaded_through_one_replica_is_used_and_deleted_through_the_other(pair, expected, shared_storage):
    (a, b), bucket = pair
    case = expected[CASE]
    image = case_image(case)
    on_a, on_b = client_for(a.url), client_for(b.url)
    stored_before = len(services.bucket_keys(shared_storage.s3.url, bucket, "glimpse/files/"))

    uploaded = on_a.files.upload(file=str(image))
    got = on_b.files.get(name=uploaded.name)
    assert got.state == types.FileState.ACTIVE
    assert (got.size_bytes, got.sha256_hash) == (len(image.read_bytes()), sha256_b64(image.read_bytes()))
    assert uploaded.name in [f.name for f in on_b.files.list()]
    response = on_b.models.generate_content(
        model=sdkutil.SEED_MODEL, contents=contents_with_file(case, uploaded), config={"max_output_tokens": case["max_new_tokens"]}
    )
    sdkutil.assert_reference_text(response.text, case)
    assert len(services.bucket_keys(shared_storage.s3.url, bucket, "glimpse/files/")) == stored_before + 1

    # Another key is another project on every replica.
    for server in (a, b):
        beta = client_for(server.url, "beta-key")
        err = error_of(lambda: beta.files.get(name=uploaded.name))
        assert (err.code, err.status) == (403, "PERMISSION_DENIED")
        assert uploaded.name not in [f.name for f in beta.files.list()]

    on_b.files.delete(name=uploaded.name)
    err = error_of(lambda: on_a.files.get(name=uploaded.name))
    assert (err.code, err.status) == (403, "PERMISSION_DENIED")
    assert len(services.bucket_keys(shared_storage.s3.url, bucket, "glimpse/files/")) == stored_before
    for server in (a, b):
        assert data_files(server) == [], f"{server.url} wrote to its data folder"


def test_resumable_upload_with_chunks_alternating_between_replicas(pair, tmp_path):
    (a, b), _ = pair
    import PIL.Image

    path = tmp_path / "noise.png"
    PIL.Image.frombytes("RGB", (600, 600), os.urandom(600 * 600 * 3)).save(path, compress_level=0)
    data = path.read_bytes()
    r = httpx.post(
        f"{a.url}/upload/v1beta/files",
        headers={"x-goog-api-key": "alpha-key", "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                 "X-Goog-Upload-Header-Content-Length": str(len(data)), "X-Goog-Upload-Header-Content-Type": "image/png"},
        json={"file": {"display_name": "alternating"}},
    )
    assert r.status_code == 200, r.text
    upload_path = r.headers["x-goog-upload-url"].removeprefix(a.url)
    chunk = 256 * 1024
    offsets = list(range(0, len(data), chunk))
    for i, offset in enumerate(offsets):
        server = (a, b)[i % 2]
        last = offset == offsets[-1]
        command = "upload, finalize" if last else "upload"
        r = httpx.post(server.url + upload_path, headers={"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset)},
                       content=data[offset : offset + chunk], timeout=60)
        assert r.status_code == 200, (server.url, r.text)
        if not last:
            assert r.headers["x-goog-upload-status"] == "active"
            # The other replica knows how far the upload got.
            other = (b, a)[i % 2]
            q = httpx.post(other.url + upload_path, headers={"X-Goog-Upload-Command": "query"})
            assert q.headers["x-goog-upload-size-received"] == str(offset + len(data[offset : offset + chunk]))
    assert len(offsets) >= 3
    file = r.json()["file"]
    assert (file["state"], file["sizeBytes"], file["sha256Hash"]) == ("ACTIVE", str(len(data)), sha256_b64(data))
    assert client_for(b.url).files.get(name=file["name"]).state == types.FileState.ACTIVE
    for server in (a, b):
        assert data_files(server) == [], f"{server.url} wrote to its data folder"


def test_conversation_continues_on_the_other_replica(pair, expected):
    (a, b), _ = pair
    case = expected[CASE]
    on_a, on_b = client_for(a.url), client_for(b.url)  # kept: a collected client closes its connection
    first = on_a.interactions.create(
        model=sdkutil.SEED_MODEL, input=sdkutil.interaction_items(case), generation_config={"max_output_tokens": 8}
    )
    second = on_b.interactions.create(
        model=sdkutil.SEED_MODEL, input="And its colour?", previous_interaction_id=first.id,
        generation_config={"max_output_tokens": 8},
    )
    assert second.previous_interaction_id == first.id
    assert second.usage.total_input_tokens > first.usage.total_input_tokens
    stored = on_a.interactions.get(id=second.id)
    assert stored.steps[-1].content[0].text == second.steps[-1].content[0].text
    on_a.interactions.delete(id=first.id)
    with pytest.raises(Exception):
        on_b.interactions.get(id=first.id)


def test_two_sweepers_expire_each_file_once(tmp_path, shared_storage, expected):
    """Both replicas sweep the same database: every expired file's blob goes, each file is counted by exactly
    one sweeper, and neither logs a failure."""
    database, blob_url, bucket = shared_storage.new_group("sweep")
    args = ["--database-url", database, "--blob-url", blob_url, "--file-ttl-seconds", "2"]
    servers = [_start_server(tmp_path, f"sweep-{i}", args, shared_storage.env()) for i in range(2)]
    try:
        clients = [client_for(s.url, sdkutil.API_KEY) for s in servers]
        image = str(case_image(expected[CASE]))
        for i in range(6):
            clients[i % 2].files.upload(file=image)
        assert len(services.bucket_keys(shared_storage.s3.url, bucket, "glimpse/files/")) == 6
        deadline = time.monotonic() + 20
        while services.bucket_keys(shared_storage.s3.url, bucket, "glimpse/files/"):
            assert time.monotonic() < deadline, "expired files were not swept"
            time.sleep(0.3)
        time.sleep(1.5)  # a sweep that started late would log now
        logs = "".join(s.log_text(limit=10**6) for s in servers)
        assert "sweep failed" not in logs
        assert sum(int(n) for n in re.findall(r"removed=(\d+)", logs)) == 6
    finally:
        for server in servers:
            stop_server(server)


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    for line in text.splitlines():
        sample = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if sample and sample[1] == name:
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', sample[2] or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(sample[3])
    return 0.0


def test_metrics_health_and_readiness(pair, expected):
    (a, _), _ = pair
    case = expected[CASE]
    route = "/{version}/models/{model}:generateContent"
    before = httpx.get(f"{a.url}/metrics").text
    on_a = client_for(a.url)
    on_a.models.generate_content(
        model=sdkutil.SEED_MODEL, contents=sdkutil.sdk_contents(case, use_pil=False), config={"max_output_tokens": 4}
    )
    on_a.files.upload(file=str(case_image(case)))
    r = httpx.get(f"{a.url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = r.text
    labels = {"route": route, "method": "POST", "status": "200", "model": sdkutil.MODEL_ID}
    assert metric(after, "glimpse_http_requests_total", **labels) == metric(before, "glimpse_http_requests_total", **labels) + 1
    ttft = "glimpse_time_to_first_token_seconds_count"
    assert metric(after, ttft, model=sdkutil.MODEL_ID) == metric(before, ttft, model=sdkutil.MODEL_ID) + 1
    assert metric(after, "glimpse_prompt_tokens_total", model=sdkutil.MODEL_ID, modality="IMAGE") > 0
    uploaded = metric(after, "glimpse_upload_bytes_total") - metric(before, "glimpse_upload_bytes_total")
    assert uploaded == len(case_image(case).read_bytes())
    assert metric(after, "glimpse_images_decoded_total") >= 1
    assert metric(after, "glimpse_model_load_seconds", model=sdkutil.MODEL_ID) > 0
    for name in ("glimpse_queue_wait_seconds_bucket", "glimpse_generation_seconds_sum", "glimpse_pixel_path_seconds_count"):
        assert name in after
    # No key needed for any of them.
    assert httpx.get(f"{a.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{a.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_database_outage_is_503_without_internals(tmp_path, expected, shared_storage):
    """Its own PostgreSQL, stopped under a running replica: readiness fails, file calls answer 503
    UNAVAILABLE, and nothing of the server's setup shows in any body."""
    postgres = services.start_postgres()
    try:
        _, blob_url, _ = shared_storage.new_group("outage")
        server = _start_server(tmp_path, "outage", ["--database-url", postgres.url, "--blob-url", blob_url], shared_storage.env())
        try:
            client = client_for(server.url)
            uploaded = client.files.upload(file=str(case_image(expected[CASE])))
            postgres.stop()
            ready = httpx.get(f"{server.url}/readyz", timeout=30)
            sdkutil.assert_google_error(ready, 503, "UNAVAILABLE")
            start = time.monotonic()
            err = error_of(lambda: client.files.get(name=uploaded.name))
            assert (err.code, err.status) == (503, "UNAVAILABLE")
            assert time.monotonic() - start < 20
            assert "retry" in err.message
            for text in (ready.text, json.dumps(err.details)):
                for secret in (postgres.url, "127.0.0.1", "postgres://", str(tmp_path), "sqlx", "SELECT"):
                    assert secret not in text
            assert httpx.get(f"{server.url}/healthz").status_code == 200
        finally:
            stop_server(server)
    finally:
        postgres.stop()


def test_sigterm_lets_a_streamed_answer_finish(tmp_path, shared_storage):
    """A long constrained answer is streaming when SIGTERM arrives: /readyz (on the --metrics-addr listener)
    turns 503 at once, new connections to the API are refused, the stream still ends with its finish reason,
    and the process exits 0."""
    ops_port = services.free_port()
    server = _start_server(tmp_path, "drain", ["--metrics-addr", f"127.0.0.1:{ops_port}", "--drain-seconds", "60"])
    ops = f"http://127.0.0.1:{ops_port}"
    try:
        assert httpx.get(f"{ops}/readyz").status_code == 200
        assert httpx.get(f"{server.url}/metrics").status_code == 404  # moved to the ops listener
        assert "glimpse_model_load_seconds" in httpx.get(f"{ops}/metrics").text
        body = sdkutil.LONG_ANSWER
        events: list[dict] = []
        with httpx.stream("POST", f"{server.url}/v1beta/models/{sdkutil.SEED_MODEL}:streamGenerateContent?alt=sse",
                          json=body, headers={"x-goog-api-key": sdkutil.API_KEY}, timeout=120) as stream:
            lines = stream.iter_lines()
            for line in lines:
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if len(events) == 5:
                        break
            server.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while httpx.get(f"{ops}/readyz").status_code != 503:
                assert time.monotonic() < deadline, "readiness did not turn 503"
                time.sleep(0.05)
            sdkutil.assert_google_error(httpx.get(f"{ops}/readyz"), 503, "UNAVAILABLE")
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{server.url}/healthz", timeout=5)
            for line in lines:
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        assert server.proc.wait(timeout=60) == 0
        finish = events[-1]["candidates"][0].get("finishReason")
        assert finish == "MAX_TOKENS", events[-1]
        assert len(events) > 100
        assert "drained" in server.log_text()
    finally:
        stop_server(server)


def test_batches_and_caches_move_between_replicas(tmp_path, shared_storage):
    """Two toolkit replicas on PostgreSQL and S3: a cache made through one answers through the other; a file batch
    made through one is run by whichever claims it, and when the replica made it is killed mid-job the other
    finishes the job; its results file (in S3) downloads through the survivor with every request answered once."""
    database, blob_url, _ = shared_storage.new_group("batch-pair")
    servers = [
        _start_server(tmp_path, f"toolkit-{i}", [*KEYS, "--database-url", database, "--blob-url", blob_url],
                      shared_storage.env(), fixture_model=False)
        for i in range(2)
    ]
    try:
        first, second = (client_for(s.url) for s in servers)
        photos = ["eagle.jpg", "giraffe.jpg", "horses.jpg", "dog.jpg"]
        parts = [types.Part.from_bytes(data=(sdkutil.ROOT / "fixtures/photos" / p).read_bytes(), mime_type="image/jpeg")
                 for p in photos]
        cache = first.caches.create(model="toolkit", config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=parts)], ttl="600s"))
        detect = "Detect the objects in the image, box_2d"
        answer = second.models.generate_content(model="toolkit", contents=detect,
                                                config=types.GenerateContentConfig(cached_content=cache.name))
        assert "dog" in answer.text
        assert answer.usage_metadata.cached_content_token_count == cache.usage_metadata.total_token_count
        second.caches.delete(name=cache.name)
        assert error_of(lambda: first.caches.get(name=cache.name)).code == 404

        total = 24
        lines = [json.dumps({"key": f"k{i}", "request": {"contents": [{"parts": [
            {"inline_data": {"mime_type": "image/jpeg",
                             "data": sdkutil.b64((sdkutil.ROOT / "fixtures/photos" / photos[i % 4]).read_bytes())}},
            {"text": detect}]}]}}) for i in range(total)]
        source = tmp_path / "requests.jsonl"
        source.write_text("\n".join(lines) + "\n")
        uploaded = first.files.upload(file=source, config={"mime_type": "jsonl"})
        name = first.batches.create(model="toolkit", src=uploaded.name).name
        deadline = time.monotonic() + 120
        while True:
            stats = httpx.get(f"{servers[1].url}/v1beta/{name}", headers={"x-goog-api-key": "alpha-key"}).json()
            if int(stats["metadata"]["batchStats"]["successfulRequestCount"]) >= 3:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        servers[0].proc.kill()
        servers[0].proc.wait(timeout=10)

        deadline = time.monotonic() + 240
        while (job := second.batches.get(name=name)).state.name != "JOB_STATE_SUCCEEDED":
            assert job.state.name in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING"), job.state
            assert time.monotonic() < deadline
            time.sleep(0.3)
        results = [json.loads(line) for line in second.files.download(file=job.dest.file_name).decode().splitlines()]
        assert [r["key"] for r in results] == [f"k{i}" for i in range(total)]
        assert all("dog" in r["response"]["candidates"][0]["content"]["parts"][0]["text"]
                   for r in results if r["key"] in {f"k{i}" for i in range(3, total, 4)})
        beta = client_for(servers[1].url, "beta-key")
        assert error_of(lambda: beta.batches.get(name=name)).code == 403
    finally:
        for server in servers:
            stop_server(server)
