"""The Batch API through the google-genai SDK as its documentation uses it (`client.batches.create` with inline
requests or an uploaded JSONL file, `get`, `list`, `cancel`, `delete`, `files.download` of the results), against
the built-in toolkit on the Debian darknet photos: each request of a batch is answered as generateContent answers
it, a bad request fails alone, jobs are stored per API key, interactive requests go before a running batch, and a
server killed mid-batch resumes the job after a restart without running a finished request again."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from PIL import Image
from google import genai
from google.genai import errors, types

import sdkutil
from conftest import start_server, stop_server

MODEL = "gemini-2.5-flash"
DETECT = "Detect the objects in the image, box_2d"
PHOTOS = ["dog.jpg", "eagle.jpg", "giraffe.jpg", "horses.jpg", "kite.jpg", "person.jpg"]
HEADERS = {"x-goog-api-key": sdkutil.API_KEY}
DONE = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")


def photo(name: str) -> bytes:
    path = sdkutil.ROOT / "fixtures/photos" / name
    assert path.is_file(), f"{path} is missing: scripts/setup-deps.sh unpacks Debian's darknet photos there"
    return path.read_bytes()


def photo_part(name: str) -> types.Part:
    return types.Part.from_bytes(data=photo(name), mime_type="image/jpeg")


def inline_request(name: str, question: str, key: str) -> dict:
    return {"contents": [types.Content(role="user", parts=[photo_part(name), types.Part.from_text(text=question)])],
            "metadata": {"key": key}}


def client_for(url: str, key: str = sdkutil.API_KEY) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=url, retry_options=types.HttpRetryOptions(attempts=1), timeout=sdkutil.REQUEST_TIMEOUT_S * 1000))


def wait_done(client: genai.Client, name: str, timeout_s: float = 180) -> types.BatchJob:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.batches.get(name=name)
        if job.state.name in DONE:
            return job
        assert time.monotonic() < deadline, f"{name} still {job.state.name} after {timeout_s} s"
        time.sleep(0.3)


def rest_job(url: str, name: str, key: str = sdkutil.API_KEY) -> dict:
    r = httpx.get(f"{url}/v1beta/{name}", headers={"x-goog-api-key": key}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def generations(url: str) -> int:
    """Generations this server has finished (its /metrics), whatever asked for them."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    found = re.search(r'^glimpse_generation_seconds_count\{model="toolkit"\} (\d+)', text, re.M)
    return int(found.group(1)) if found else 0


@pytest.fixture(scope="module")
def toolkit_url(tmp_path_factory):
    # No pixel cache: a long request stays long however often it is sent.
    server = start_server(tmp_path_factory.mktemp("batches"), "batches", ["--image-cache-bytes", "0"], fixture_model=False)
    yield server.url
    stop_server(server)


@pytest.fixture(scope="module")
def tk(toolkit_url):
    return client_for(toolkit_url)


def test_an_inline_batch_answers_each_request_as_generate_content_does(tk, toolkit_url):
    asked = [("dog.jpg", DETECT, "dog"), ("eagle.jpg", "What is in this picture?", "eagle"),
             ("horses.jpg", DETECT, "horses")]
    src = [inline_request(*item) for item in asked]
    # A request whose image is not an image fails alone.
    src.insert(1, {"contents": [types.Content(role="user", parts=[
        types.Part.from_bytes(data=b"not an image at all", mime_type="image/png"), types.Part.from_text(text="Hi")])],
        "metadata": {"key": "broken"}})
    job = tk.batches.create(model=MODEL, src=src, config={"display_name": "darknet labels"})
    assert re.fullmatch(r"batches/[a-z0-9]+", job.name)
    assert job.display_name == "darknet labels"
    assert job.state.name in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING")

    job = wait_done(tk, job.name)
    assert job.state.name == "JOB_STATE_SUCCEEDED"
    assert job.end_time is not None and job.end_time >= job.create_time
    answers = job.dest.inlined_responses
    assert [a.metadata["key"] for a in answers] == ["dog", "broken", "eagle", "horses"]
    assert answers[1].response is None and answers[1].error.code == 3
    assert "not a PNG, JPEG" in answers[1].error.message
    for answer, (name, question, _) in zip([answers[0], *answers[2:]], asked):
        alone = tk.models.generate_content(model=MODEL, contents=[photo_part(name), question])
        assert answer.error is None
        assert answer.response.text == alone.text
        assert answer.response.usage_metadata.prompt_token_count == alone.usage_metadata.prompt_token_count
    boxes = json.loads(answers[0].response.text)
    assert "dog" in {box["label"] for box in boxes}

    body = rest_job(toolkit_url, job.name)
    assert body["done"] is True
    assert body["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert body["metadata"]["batchStats"] == {"requestCount": "4", "successfulRequestCount": "3",
                                              "failedRequestCount": "1", "pendingRequestCount": "0"}
    assert body["response"]["inlinedResponses"]["inlinedResponses"][0]["metadata"] == {"key": "dog"}


def test_a_file_batch_reads_jsonl_and_writes_a_results_file(tk, toolkit_url, tmp_path):
    lines = [json.dumps({"key": name, "request": {"contents": [{"parts": [
        {"inline_data": {"mime_type": "image/jpeg", "data": sdkutil.b64(photo(name))}}, {"text": DETECT}]}]}})
        for name in PHOTOS[:3]]
    lines.insert(1, "{this line is not json")
    lines.append(json.dumps({"key": "no-request", "contents": []}))
    source = tmp_path / "requests.jsonl"
    source.write_text("\n".join(lines) + "\n")
    uploaded = tk.files.upload(file=source, config={"display_name": "requests", "mime_type": "jsonl"})
    assert uploaded.state.name == "ACTIVE" and uploaded.mime_type == "application/jsonl"

    job = wait_done(tk, tk.batches.create(model=MODEL, src=uploaded.name).name)
    assert job.state.name == "JOB_STATE_SUCCEEDED"
    results_name = job.dest.file_name
    assert results_name and results_name.startswith("files/")
    results = [json.loads(line) for line in tk.files.download(file=results_name).decode().splitlines()]
    assert len(results) == 5
    by_key = {r.get("key"): r for r in results}
    for name in PHOTOS[:3]:
        alone = tk.models.generate_content(model=MODEL, contents=[photo_part(name), DETECT])
        assert by_key[name]["response"]["candidates"][0]["content"]["parts"][0]["text"] == alone.text
    assert "Line 2 of the input file is not valid JSON" in results[1]["error"]["message"]
    assert by_key["no-request"]["error"]["code"] == 3

    results_file = tk.files.get(name=results_name)
    assert results_file.source.name == "GENERATED" and results_file.download_uri
    assert int(results_file.size_bytes) == len(tk.files.download(file=results_file))
    # Uploaded files are not downloadable; another key sees neither the job nor its results.
    with pytest.raises(errors.ClientError) as excinfo:
        tk.files.download(file=uploaded.name)
    assert excinfo.value.code == 400
    other = client_for(toolkit_url, "another-key")
    for call in (lambda: other.batches.get(name=job.name), lambda: other.files.download(file=results_name)):
        with pytest.raises(errors.ClientError) as excinfo:
            call()
        assert excinfo.value.code == 403
    # An image file is not a batch input.
    image = tk.files.upload(file=sdkutil.ROOT / "fixtures/photos/dog.jpg")
    with pytest.raises(errors.ClientError) as excinfo:
        tk.batches.create(model=MODEL, src=image.name)
    assert excinfo.value.code == 400 and "JSON Lines" in excinfo.value.message


def test_list_cancel_delete_and_unknown_jobs(tk, toolkit_url):
    src = [inline_request(PHOTOS[i % len(PHOTOS)], DETECT, f"r{i}") for i in range(40)]
    job = tk.batches.create(model=MODEL, src=src)
    tk.batches.cancel(name=job.name)
    job = wait_done(tk, job.name)
    assert job.state.name == "JOB_STATE_CANCELLED"
    stats = rest_job(toolkit_url, job.name)["metadata"]["batchStats"]
    finished = int(stats["successfulRequestCount"])
    assert int(stats["pendingRequestCount"]) == 40 - finished > 0
    # A cancelled job reports what it finished.
    assert len(job.dest.inlined_responses or []) == finished

    names = [j.name for j in tk.batches.list(config={"page_size": 1})]
    assert job.name in names and len(names) >= 3 and len(set(names)) == len(names)
    other = client_for(toolkit_url, "another-key")  # kept: the pager uses the client after this line
    assert job.name not in [j.name for j in other.batches.list()]

    tk.batches.delete(name=job.name)
    for missing in (job.name, "batches/nosuchjob"):
        with pytest.raises(errors.ClientError) as excinfo:
            tk.batches.get(name=missing)
        assert (excinfo.value.code, excinfo.value.status) == (404, "NOT_FOUND")
    r = httpx.post(f"{toolkit_url}/v1beta/models/{MODEL}:batchGenerateContent", headers=HEADERS,
                   json={"batch": {"inputConfig": {"requests": {"requests": []}}}})
    sdkutil.assert_google_error(r, 400, "INVALID_ARGUMENT")


def test_interactive_requests_go_before_a_running_batch(tk, toolkit_url, tmp_path):
    """The toolkit works on one request per core; a batch may hold one of them and takes a slot only while no
    interactive request waits, so a request sent while a long batch runs is answered about as fast as alone.

    The batch's requests are made long (a 48 MP PNG, decoded afresh each time: this server keeps no pixels) so
    that waiting for one of them stands apart from the other core being busy: on a shared 2-core CI machine the
    busy core alone made a small request 1.4-1.7x slower, as much as waiting for a request of its own size."""
    small = [photo_part("person.jpg"), DETECT]
    tk.models.generate_content(model=MODEL, contents=small)
    started = time.monotonic()
    tk.models.generate_content(model=MODEL, contents=small)
    alone = time.monotonic() - started
    big = tmp_path / "big.png"
    Image.open(sdkutil.ROOT / "fixtures/photos/kite.jpg").convert("RGB").resize((8000, 6000)).save(big, compress_level=1)
    big_part = types.Part.from_uri(file_uri=tk.files.upload(file=big).uri, mime_type="image/png")
    times = []
    for _ in range(2):
        started = time.monotonic()
        tk.models.generate_content(model=MODEL, contents=[big_part, DETECT])
        times.append(time.monotonic() - started)
    long = min(times)
    assert long > 4 * alone, f"the long request ({long:.3f} s) is not long next to the small one ({alone:.3f} s)"

    request = {"contents": [types.Content(role="user", parts=[big_part, types.Part.from_text(text=DETECT)])]}
    job = tk.batches.create(model=MODEL, src=[request] * 40)
    deadline = time.monotonic() + 60
    while int(rest_job(toolkit_url, job.name)["metadata"]["batchStats"]["successfulRequestCount"]) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    latencies = []
    for _ in range(8):
        started = time.monotonic()
        tk.models.generate_content(model=MODEL, contents=small)
        latencies.append(time.monotonic() - started)
    pending = int(rest_job(toolkit_url, job.name)["metadata"]["batchStats"]["pendingRequestCount"])
    tk.batches.cancel(name=job.name)
    assert pending > 0, "the batch finished before the interactive requests: it was too short to show anything"
    # Waiting for the first of two batch requests to leave a slot would add a third of a long request on
    # average; waiting behind the batch, its whole length. The busy other core adds well under one small request.
    mean = sum(latencies) / len(latencies)
    assert mean < alone + 0.15 * long and max(latencies) < alone + 1.5 * long, (alone, long, latencies)


def test_a_batch_survives_a_kill_and_runs_no_finished_request_again(tmp_path):
    data_dir = tmp_path / "data"
    total = 30
    server = start_server(tmp_path, "before", ["--data-dir", str(data_dir)], fixture_model=False)
    try:
        client = client_for(server.url)
        src = [inline_request(PHOTOS[i % len(PHOTOS)], DETECT, f"k{i}") for i in range(total)]
        name = client.batches.create(model=MODEL, src=src).name
        deadline = time.monotonic() + 120
        while (done := int(rest_job(server.url, name)["metadata"]["batchStats"]["successfulRequestCount"])) < 5:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server.proc.kill()
        server.proc.wait(timeout=10)
    finally:
        stop_server(server)
    assert done < total, "the batch finished before the kill"

    server = start_server(tmp_path, "after", ["--data-dir", str(data_dir)], fixture_model=False)
    try:
        client = client_for(server.url)
        # The dead runner's lease goes stale after 15 s; then this process takes the job over.
        job = wait_done(client, name, timeout_s=240)
        assert job.state.name == "JOB_STATE_SUCCEEDED"
        answers = job.dest.inlined_responses
        assert [a.metadata["key"] for a in answers] == [f"k{i}" for i in range(total)]
        assert all(a.error is None and json.loads(a.response.text) for a in answers)
        # This process ran only what had no result: at most the total less what was finished before the kill.
        assert generations(server.url) <= total - done
    finally:
        stop_server(server)
