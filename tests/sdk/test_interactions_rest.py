"""The Interactions API as raw REST: the seed's curl snippet, the exact SSE framing of a streamed interaction
(`event:` + `data:` lines, `data: [DONE]`), the `config` alias the seed's segmentation example uses, the
multiple-images-by-URL snippet, and the OpenAI stream's framing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

import sdkutil
from conftest import start_server, stop_server

PATH = "/v1beta/interactions"
SEED_MODEL = "gemini-3-flash-preview"
SSE_EVENT = re.compile(rb"(?:event: ([a-z._]+)\n)?data: ([^\n]*)\n\n")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_seed_curl_inline_image(base_url, expected, tmp_path):
    """'Passing inline image data', REST: the body exactly as the seed builds it (plus the token limit)."""
    case = expected["caption_square"]
    body = {"model": SEED_MODEL, "input": sdkutil.interaction_items(case), "generation_config": {"max_output_tokens": case["max_new_tokens"]}}
    out = tmp_path / "interaction.json"
    proc = subprocess.run(
        ["curl", "-sS", "-X", "POST", f"{base_url}{PATH}", "-H", f"x-goog-api-key: {sdkutil.API_KEY}",
         "-H", "Content-Type: application/json", "-d", json.dumps(body), "-o", str(out), "-w", "%{http_code} %{content_type}"],
        capture_output=True, text=True, timeout=sdkutil.REQUEST_TIMEOUT_S,
    )  # fmt: skip
    status, _, ctype = proc.stdout.partition(" ")
    assert status == "200" and ctype.lower().startswith("application/json"), out.read_text()[:500]
    interaction = json.loads(out.read_text())
    assert interaction["id"].startswith("v1_")
    assert [s["type"] for s in interaction["steps"]] == ["model_output"]
    sdkutil.assert_reference_text(interaction["steps"][-1]["content"][0]["text"], case)
    assert interaction["usage"]["total_input_tokens"] == case["prompt_token_count"]
    assert interaction["usage"]["total_tokens"] == case["prompt_token_count"] + interaction["usage"]["total_output_tokens"]


def test_streamed_interaction_framing(http, expected):
    case = expected["two_images"]
    body = {"model": SEED_MODEL, "input": sdkutil.interaction_items(case), "stream": True,
            "generation_config": {"max_output_tokens": case["max_new_tokens"]}}  # fmt: skip
    with http.stream("POST", PATH, json=body) as resp:
        assert resp.status_code == 200, resp.read()[:500]
        assert resp.headers["content-type"].lower().startswith("text/event-stream")
        raw = b"".join(resp.iter_bytes())
    events, pos = [], 0
    while pos < len(raw):
        m = SSE_EVENT.match(raw, pos)
        assert m, f"bytes at offset {pos} are not an SSE event: {raw[pos:pos + 200]!r}"
        events.append((m.group(1), m.group(2)))
        pos = m.end()
    assert events[-1] == (None, b"[DONE]")
    payloads = [json.loads(data) for _, data in events[:-1]]
    for (name, _), payload in zip(events, payloads):
        assert name.decode() == payload["event_type"], payload
    assert len({p["event_id"] for p in payloads}) == len(payloads), "event ids are unique"
    assert payloads[0]["interaction"]["status"] == "in_progress"
    text = "".join(p["delta"]["text"] for p in payloads if p["event_type"] == "step.delta")
    sdkutil.assert_reference_text(text, case)
    completed = payloads[-1]["interaction"]
    assert completed["status"] == ("completed" if case["finish"] == "eos" else "incomplete")
    assert completed["usage"]["total_input_tokens"] == case["prompt_token_count"]


def test_config_alias_and_legacy_turns(http, expected):
    """A raw caller's `config` (the seed's segmentation example) works like generation_config; legacy
    `{role, content}` turns reproduce the multi-turn reference."""
    case = expected["multi_turn"]
    turns = []
    for msg in case["messages"]:
        items = sdkutil.message_items(msg)
        content = []
        for item in items:
            if item["type"] == "text":
                content.append({"type": "text", "text": item["text"]})
            else:
                path = sdkutil.resolve_path(item["path"])
                content.append({"type": "image", "data": sdkutil.b64(path.read_bytes()), "mime_type": sdkutil.mime_for(path)})
        turns.append({"role": {"user": "user", "assistant": "model"}[msg["role"]], "content": content})
    body = {"model": SEED_MODEL, "input": turns, "config": {"thinking_level": "minimal", "max_output_tokens": case["max_new_tokens"]}}
    r = http.post(PATH, json=body)
    assert r.status_code == 200, r.text[:500]
    sdkutil.assert_reference_text(r.json()["steps"][-1]["content"][0]["text"], case)
    assert r.json()["usage"]["total_input_tokens"] == case["prompt_token_count"]


def test_seed_multiple_images_by_url(tmp_path, expected, image_site):
    """'Prompting with multiple images' with http(s) URIs (served locally; the server allows loopback)."""
    case = expected["two_images"]
    (message,) = [m for m in case["messages"] if m["role"] == "user"]
    items = [
        {"type": "text", "text": i["text"]} if i["type"] == "text"
        else {"type": "image", "uri": f"{image_site}/{Path(i['path']).name}", "mime_type": sdkutil.mime_for(Path(i["path"]))}
        for i in message["content"]
    ]  # fmt: skip
    server = start_server(tmp_path, "interactions-fetch", ["--fetch-allow", "127.0.0.0/8"])
    try:
        body = {"model": SEED_MODEL, "input": items, "generation_config": {"max_output_tokens": case["max_new_tokens"]}}
        r = httpx.post(f"{server.url}{PATH}", json=body, headers={"x-goog-api-key": sdkutil.API_KEY}, timeout=sdkutil.REQUEST_TIMEOUT_S)
        assert r.status_code == 200, r.text[:500]
        sdkutil.assert_reference_text(r.json()["steps"][-1]["content"][0]["text"], case)
    finally:
        stop_server(server)


def test_openai_stream_framing(http, expected):
    case = expected["text_only"]
    body = {"model": "m", "messages": [{"role": "user", "content": sdkutil.message_items(case["messages"][-1])[0]["text"]}],
            "stream": True, "max_tokens": case["max_new_tokens"]}  # fmt: skip
    with http.stream("POST", "/v1beta/openai/chat/completions", json=body) as resp:
        assert resp.status_code == 200, resp.read()[:500]
        assert resp.headers["content-type"].lower().startswith("text/event-stream")
        raw = b"".join(resp.iter_bytes())
    assert raw.endswith(b"data: [DONE]\n\n")
    chunks = [json.loads(m.group(2)) for m in SSE_EVENT.finditer(raw) if m.group(2) != b"[DONE]"]
    assert all(c["object"] == "chat.completion.chunk" and len({c["id"] for c in chunks}) == 1 for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] in ("stop", "length")
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
