"""Admission control as a client under load meets it: a model works on `--max-concurrent` answers, `--max-queue`
more wait at most `--max-queue-wait`, and the rest get `429 RESOURCE_EXHAUSTED` with `Retry-After` at once;
request bodies beyond `--max-inflight-bytes` are refused before they are read; a request whose images hold more
than `--max-request-pixels` together is a 400 before any is decoded; a generation past `--request-timeout` is
stopped with 504 (an error event once its stream has started) and frees its slot. Long answers come from the fixture model
held to a JSON schema that only ends at the token limit (0.8–2 s, depending on the CPU: the time limit tested is
shorter than that)."""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import httpx
import PIL.Image
import pytest

import sdkutil
from conftest import start_server, stop_server

LONG = sdkutil.LONG_ANSWER
HEADERS = {"x-goog-api-key": sdkutil.API_KEY}


def generate(url: str, body: dict, results: list, index: int) -> None:
    r = httpx.post(f"{url}/v1beta/models/m:generateContent", json=body, headers=HEADERS, timeout=120)
    results[index] = r


def started_stream(url: str):
    """A long streamed answer, returned once its first event has arrived (so it holds its slot)."""
    stream = httpx.stream("POST", f"{url}/v1beta/models/m:streamGenerateContent?alt=sse", json=LONG, headers=HEADERS, timeout=120)
    response = stream.__enter__()
    lines = response.iter_lines()
    next(line for line in lines if line.startswith("data: "))
    return stream, response, lines


def finish(stream, lines) -> dict:
    last = None
    for line in lines:
        if line.startswith("data: "):
            last = json.loads(line[6:])
    stream.__exit__(None, None, None)
    return last


def assert_busy(r: httpx.Response) -> None:
    sdkutil.assert_google_error(r, 429, "RESOURCE_EXHAUSTED")
    assert r.headers["retry-after"] == "1"
    assert "busy" in r.json()["error"]["message"]


def test_a_full_queue_answers_429_at_once_and_the_waiting_request_is_served(tmp_path):
    server = start_server(tmp_path, "queue", ["--max-concurrent", "1", "--max-queue", "1", "--max-queue-wait", "60"])
    try:
        stream, _, lines = started_stream(server.url)
        results: list = [None]
        waiting = threading.Thread(target=generate, args=(server.url, LONG, results, 0))
        waiting.start()
        time.sleep(0.5)  # the second request is queued now
        start = time.monotonic()
        refused = httpx.post(f"{server.url}/v1beta/models/m:generateContent", json=LONG, headers=HEADERS, timeout=60)
        assert time.monotonic() - start < 1.0
        assert_busy(refused)
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'glimpse_queue_depth{model="qwen2_5_vl-tiny"} 1' in metrics
        assert 'reason="the queue is full"' in metrics
        assert finish(stream, lines)["candidates"][0]["finishReason"] == "MAX_TOKENS"
        waiting.join(timeout=60)
        assert results[0].status_code == 200, results[0].text
        assert results[0].json()["candidates"][0]["finishReason"] == "MAX_TOKENS"
    finally:
        stop_server(server)


def test_a_wait_that_runs_out_is_429_and_a_client_gone_frees_its_place(tmp_path):
    server = start_server(tmp_path, "wait", ["--max-concurrent", "1", "--max-queue", "1", "--max-queue-wait", "0.5"])
    try:
        stream, _, lines = started_stream(server.url)
        start = time.monotonic()
        r = httpx.post(f"{server.url}/v1beta/models/m:generateContent", json=LONG, headers=HEADERS, timeout=60)
        assert 0.4 < time.monotonic() - start < 5
        assert_busy(r)
        assert 'reason="no slot freed up in time"' in httpx.get(f"{server.url}/metrics").text
        # The client of the running answer goes away: its slot is free for the next request.
        stream.__exit__(None, None, None)
        r = sdkutil.answered_within(server.url, 10)
        assert r.status_code == 200, r.text
    finally:
        stop_server(server)


def test_bodies_over_the_inflight_budget_are_refused_before_they_are_read(tmp_path):
    server = start_server(tmp_path, "bodies", ["--max-inflight-bytes", "60000"])
    try:
        padded = dict(LONG, padding="x" * 40_000)  # an unknown field: ignored, but its bytes are in the body
        results: list = [None]
        running = threading.Thread(target=generate, args=(server.url, padded, results, 0))
        running.start()
        time.sleep(0.5)  # its 40 kB body is in flight until it is answered
        assert_busy(httpx.post(f"{server.url}/v1beta/models/m:generateContent", json=padded, headers=HEADERS, timeout=60))
        small = sdkutil.SHORT_ANSWER
        assert httpx.post(f"{server.url}/v1beta/models/m:generateContent", json=small, headers=HEADERS, timeout=60).status_code == 200
        running.join(timeout=60)
        assert results[0].status_code == 200
    finally:
        stop_server(server)


def png_b64(side: int) -> str:
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (side, side), (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_pixels_of_all_images_together_are_bounded(tmp_path):
    server = start_server(tmp_path, "pixels", ["--max-request-pixels", "20000"])
    try:
        image = {"inline_data": {"mime_type": "image/png", "data": png_b64(112)}}
        two = {"contents": [{"parts": [image, image, {"text": "Compare."}]}], "generationConfig": {"maxOutputTokens": 3}}
        for method in ("generateContent", "countTokens"):
            body = two if method == "generateContent" else {"contents": two["contents"]}
            r = httpx.post(f"{server.url}/v1beta/models/m:{method}", json=body, headers=HEADERS, timeout=60)
            sdkutil.assert_google_error(r, 400, "INVALID_ARGUMENT")
            assert "25088 pixels together; the limit is 20000" in r.json()["error"]["message"]
        one = {"contents": [{"parts": [image, {"text": "Describe."}]}], "generationConfig": {"maxOutputTokens": 3}}
        assert httpx.post(f"{server.url}/v1beta/models/m:generateContent", json=one, headers=HEADERS, timeout=60).status_code == 200
    finally:
        stop_server(server)


def test_a_request_over_the_time_limit_is_stopped_with_504(tmp_path):
    server = start_server(tmp_path, "timeout", ["--request-timeout", "0.3", "--max-concurrent", "1"])
    try:
        start = time.monotonic()
        r = httpx.post(f"{server.url}/v1beta/models/m:generateContent", json=LONG, headers=HEADERS, timeout=60)
        assert time.monotonic() - start < 2.0
        sdkutil.assert_google_error(r, 504, "DEADLINE_EXCEEDED")
        assert "0.3 s" in r.json()["error"]["message"]
        # A stream that has started ends with the error as its last event, on every surface.
        stream, _, lines = started_stream(server.url)
        last = finish(stream, lines)
        assert (last["error"]["code"], last["error"]["status"]) == (504, "DEADLINE_EXCEEDED")
        schema = {"type": "array", "items": {"type": "integer"}, "minItems": 5000}
        chat = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "Count."}], "max_tokens": 2000,
                "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}}
        r = httpx.post(f"{server.url}/v1beta/openai/chat/completions", json=chat, headers=HEADERS, timeout=60)
        events = [json.loads(l[6:]) for l in r.text.splitlines() if l.startswith("data: ") and l != "data: [DONE]"]
        assert events[-1]["error"]["status"] == "DEADLINE_EXCEEDED", events[-1]
        # The stopped generations freed the model's only slot.
        short = sdkutil.SHORT_ANSWER
        assert httpx.post(f"{server.url}/v1beta/models/m:generateContent", json=short, headers=HEADERS, timeout=60).status_code == 200
    finally:
        stop_server(server)


@pytest.mark.parametrize("surface", ["gemini-unary", "openai-stream", "interactions-stream"])
def test_a_client_that_goes_away_frees_its_slot(tmp_path, surface):
    """With one slot, a long answer whose client disconnects (unary: it times out; streams: after the first
    event) must not block the next request for the answer's remaining seconds."""
    server = start_server(tmp_path, f"gone-{surface}", ["--max-concurrent", "1", "--max-queue-wait", "30"])
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 5000}
    try:
        if surface == "gemini-unary":
            with pytest.raises(httpx.TimeoutException):
                httpx.post(f"{server.url}/v1beta/models/m:generateContent", json=LONG, headers=HEADERS, timeout=0.5)
        else:
            path, body = {
                "openai-stream": ("/v1beta/openai/chat/completions", {
                    "model": "m", "stream": True, "max_tokens": 2000, "messages": [{"role": "user", "content": "Count."}],
                    "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}}),
                "interactions-stream": ("/v1beta/interactions", {
                    "model": "m", "stream": True, "input": "Count.", "generation_config": {"max_output_tokens": 2000},
                    "response_format": {"type": "text", "mime_type": "application/json", "schema": schema}}),
            }[surface]
            with httpx.stream("POST", server.url + path, json=body, headers=HEADERS, timeout=60) as r:
                assert r.status_code == 200
                next(line for line in r.iter_lines() if line.startswith("data: "))
        start = time.monotonic()
        short = sdkutil.SHORT_ANSWER
        r = httpx.post(f"{server.url}/v1beta/models/m:generateContent", json=short, headers=HEADERS, timeout=60)
        assert r.status_code == 200, r.text
        # The abandoned answer had about two seconds left; the slot came back well before that.
        assert time.monotonic() - start < 1.0, f"{surface}: waited {time.monotonic() - start:.2f} s"
    finally:
        stop_server(server)


@pytest.mark.parametrize("per_key", [True, False])
def test_one_key_cannot_starve_another(tmp_path, per_key):
    """One slot; key A sends three long answers (about two seconds each), then key B one short request. With
    --max-concurrent-per-key 1 B is served after A's running answer; without it, after all three of A's."""
    fair = ["--max-concurrent-per-key", "1"] if per_key else []
    server = start_server(tmp_path, f"fair-{per_key}", ["--max-concurrent", "1", "--api-key", "key-a,key-b", *fair])
    try:
        results: list = [None] * 3
        a = [threading.Thread(target=lambda n=n: results.__setitem__(n, httpx.post(
            f"{server.url}/v1beta/models/m:generateContent", json=LONG, headers={"x-goog-api-key": "key-a"}, timeout=120)))
            for n in range(3)]
        for thread in a:
            thread.start()
            time.sleep(0.1)  # A's requests arrive in order, all before B's
        start = time.monotonic()
        r = httpx.post(f"{server.url}/v1beta/models/m:generateContent", json=sdkutil.SHORT_ANSWER,
                       headers={"x-goog-api-key": "key-b"}, timeout=120)
        waited = time.monotonic() - start
        for thread in a:
            thread.join()
        assert r.status_code == 200 and all(x.status_code == 200 for x in results), r.text
        one_long = min(x.elapsed.total_seconds() for x in results)
        if per_key:
            assert waited < 1.5 * one_long, f"B waited {waited:.1f} s; one long answer takes {one_long:.1f} s"
        else:
            assert waited > 2 * one_long, f"B waited {waited:.1f} s; one long answer takes {one_long:.1f} s"
    finally:
        stop_server(server)
