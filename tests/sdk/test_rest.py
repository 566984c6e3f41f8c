"""Raw REST: what curl users and hand-written clients send, the exact SSE bytes, JSON leniency
(docs/gemini-api.md §1.4), every route on every API version, and the Google-format errors (docs/gemini-api.md §7)
with their HTTP status, `error.code`, `error.status` and content type."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import httpx
import pytest

import sdkutil
from sdkutil import API_KEY, assert_google_error, b64, response_text

GEN = "/v1beta/models/gemini-3-flash-preview:generateContent"
STREAM = "/v1beta/models/gemini-3-flash-preview:streamGenerateContent?alt=sse"
COUNT = "/v1beta/models/gemini-3-flash-preview:countTokens"


def _case_image(case: dict) -> bytes:
    for turn in sdkutil.conversation(case):
        for item in turn["items"]:
            if item["type"] == "image":
                return sdkutil.resolve_path(item["path"]).read_bytes()
    raise AssertionError(f"case {case['name']} has no image")


def _gc(case: dict) -> dict:
    return {"maxOutputTokens": case["max_new_tokens"]}


# ---------------------------------------------------------------------------------------------
# The seed's REST example ("Passing inline image data"), in generateContent form, sent by real curl
# ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_inline_image(base_url, expected, tmp_path):
    case = expected["caption_square"]
    body = sdkutil.rest_body(case, snake=True)  # inline_data / mime_type, as the REST docs write them
    body["generationConfig"] = _gc(case)
    out = tmp_path / "response.json"
    proc = subprocess.run(
        [
            "curl", "-sS", "-X", "POST", f"{base_url}{GEN}",
            "-H", f"x-goog-api-key: {API_KEY}",
            "-H", "Content-Type: application/json",
            "-d", json.dumps(body),
            "-o", str(out),
            "-w", "%{http_code} %{content_type}",
        ],
        capture_output=True, text=True, timeout=sdkutil.REQUEST_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    status, _, ctype = proc.stdout.partition(" ")
    assert status == "200", out.read_text()[:500]
    assert ctype.lower().startswith("application/json"), ctype
    resp = json.loads(out.read_text())
    cand = resp["candidates"][0]
    assert cand["content"]["role"] == "model"
    sdkutil.assert_reference_text(response_text(resp), case)
    assert cand["finishReason"] == sdkutil.expected_finish(case)
    usage = resp["usageMetadata"]
    assert usage["promptTokenCount"] == case["prompt_token_count"]
    assert usage["candidatesTokenCount"] in sdkutil.allowed_candidate_counts(case)
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    sdkutil.assert_prompt_details(usage["promptTokensDetails"], case)


# ---------------------------------------------------------------------------------------------
# SSE framing, checked on the raw bytes
# ---------------------------------------------------------------------------------------------
SSE_EVENT = re.compile(rb"data: ([^\r\n]+)(\r\n\r\n|\n\n)")


def test_sse_raw_framing(http, expected):
    case = expected["two_images"]
    body = sdkutil.rest_body(case, generation_config=_gc(case))
    with http.stream("POST", STREAM, json=body) as resp:
        assert resp.status_code == 200, resp.read()[:500]
        assert resp.headers["content-type"].lower().startswith("text/event-stream"), resp.headers
        raw = b"".join(resp.iter_bytes())

    assert b"[DONE]" not in raw
    events, pos = [], 0
    while pos < len(raw):
        m = SSE_EVENT.match(raw, pos)
        assert m, f"bytes at offset {pos} are not a `data: <json>` + blank-line event: {raw[pos:pos + 200]!r}"
        events.append(json.loads(m.group(1)))
        pos = m.end()
    assert len(events) >= 2, f"expected incremental events, got {len(events)}"
    separators = {m.group(2) for m in SSE_EVENT.finditer(raw)}
    assert len(separators) == 1, f"mixed event separators {separators}"

    for ev in events:
        assert "error" not in ev, ev
    sdkutil.assert_reference_text("".join(response_text(ev) for ev in events if ev.get("candidates")), case)
    last = events[-1]
    assert last["candidates"][0]["finishReason"] == sdkutil.expected_finish(case)
    for ev in events[:-1]:
        for cand in ev.get("candidates", []):
            assert "finishReason" not in cand, ev
    assert last["usageMetadata"]["promptTokenCount"] == case["prompt_token_count"]
    assert last["usageMetadata"]["candidatesTokenCount"] in sdkutil.allowed_candidate_counts(case)


# ---------------------------------------------------------------------------------------------
# JSON leniency (docs/gemini-api.md §1.4): each variant must give the reference answer exactly
# ---------------------------------------------------------------------------------------------
def _snake_everywhere(exp):
    case = exp["question_wide_system"]
    return case, sdkutil.rest_body(case, snake=True, generation_config={"max_output_tokens": case["max_new_tokens"]})


def _python_sdk_mixed_case(exp):
    # What google-genai 3.4 really sends: camelCase outside, snake_case inside pydantic sub-objects.
    case = exp["question_wide_system"]
    body = sdkutil.rest_body(case, generation_config=_gc(case))
    for content in body["contents"]:
        for part in content["parts"]:
            if "inlineData" in part:
                blob = part["inlineData"]
                part["inlineData"] = {"data": blob["data"], "mime_type": blob["mimeType"]}
    body["systemInstruction"]["role"] = "user"
    return case, body


def _urlsafe_base64_no_padding(exp):
    case = exp["caption_square"]
    data = _case_image(case)
    std = base64.b64encode(data).decode()
    urlsafe = base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert urlsafe != std, "precondition: the fixture's base64 must differ between the alphabets/padding"
    body = sdkutil.rest_body(case, generation_config=_gc(case))
    for part in body["contents"][0]["parts"]:
        if "inlineData" in part:
            part["inlineData"]["data"] = urlsafe
    return case, body


def _numbers_as_float_and_string(exp):
    case = exp["caption_square"]
    gc = {"temperature": 0, "topK": 40.0, "candidateCount": 1.0, "maxOutputTokens": str(case["max_new_tokens"])}
    return case, sdkutil.rest_body(case, generation_config=gc)


def _unknown_fields_ignored(exp):
    case = exp["two_images"]
    body = sdkutil.rest_body(case, generation_config={**_gc(case), "someFutureKnob": {"level": 3}})
    body["someFutureField"] = {"nested": [1, 2, 3]}
    body["contents"][0]["parts"][0]["futurePartFlag"] = True
    body["contents"][0]["someContentField"] = "x"
    return case, body


LENIENCY = {
    "snake_case_everywhere": _snake_everywhere,
    "python_sdk_mixed_case": _python_sdk_mixed_case,
    "urlsafe_base64_no_padding": _urlsafe_base64_no_padding,
    "numbers_as_float_and_string": _numbers_as_float_and_string,
    "unknown_fields_ignored": _unknown_fields_ignored,
}


@pytest.mark.parametrize("variant", list(LENIENCY))
def test_lenient_request_json(http, expected, variant):
    case, body = LENIENCY[variant](expected)
    resp = http.post(GEN, json=body)
    assert resp.status_code == 200, resp.text[:500]
    data = resp.json()
    sdkutil.assert_reference_text(response_text(data), case)
    assert data["candidates"][0]["finishReason"] == sdkutil.expected_finish(case)
    assert data["usageMetadata"]["promptTokenCount"] == case["prompt_token_count"]


def test_enums_are_case_insensitive(http, expected):
    """`media_resolution_low` means MEDIA_RESOLUTION_LOW: same answer and token count as the canonical spelling."""
    case = expected["caption_square"]

    def ask(media_resolution: str, safety: tuple[str, str], mime: str) -> dict:
        body = sdkutil.rest_body(
            case,
            generation_config={**_gc(case), "mediaResolution": media_resolution, "responseMimeType": mime},
        )
        body["safetySettings"] = [{"category": safety[0], "threshold": safety[1]}]
        r = http.post(GEN, json=body)
        assert r.status_code == 200, r.text[:500]
        return r.json()

    canonical = ask("MEDIA_RESOLUTION_LOW", ("HARM_CATEGORY_HARASSMENT", "BLOCK_NONE"), "text/plain")
    lower = ask("media_resolution_low", ("harm_category_harassment", "block_none"), "text/plain")
    # Both spellings give the same prompt and, greedy, the same full answer.
    sdkutil.assert_reference_text(response_text(lower), case)
    sdkutil.assert_reference_text(response_text(canonical), case)
    assert response_text(lower) == response_text(canonical)
    assert lower["usageMetadata"]["promptTokenCount"] == canonical["usageMetadata"]["promptTokenCount"]


# ---------------------------------------------------------------------------------------------
# Every route on every API version
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["v1", "v1beta", "v1alpha"])
def test_routes_on_every_api_version(http, expected, version):
    case = expected["caption_square"]
    model = sdkutil.MODEL_ID

    r = http.get(f"/{version}/models")
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].lower().startswith("application/json")
    models = r.json()["models"]
    assert any(m["name"] == f"models/{model}" for m in models), models
    for m in models:
        assert m["name"].startswith("models/")
        assert isinstance(m["displayName"], str) and m["displayName"]
        assert m["inputTokenLimit"] > 0 and m["outputTokenLimit"] > 0
        assert "generateContent" in m["supportedGenerationMethods"]
        assert "countTokens" in m["supportedGenerationMethods"]

    r = http.get(f"/{version}/models/{model}")
    assert r.status_code == 200, r.text[:500]
    assert r.json()["name"] == f"models/{model}"

    r = http.post(f"/{version}/models/{model}:countTokens", json={"contents": sdkutil.rest_body(case)["contents"]})
    assert r.status_code == 200, r.text[:500]
    assert r.json()["totalTokens"] == case["prompt_token_count"]

    r = http.post(f"/{version}/models/{model}:generateContent", json=sdkutil.rest_body(case, generation_config=_gc(case)))
    assert r.status_code == 200, r.text[:500]
    sdkutil.assert_reference_text(response_text(r.json()), case)

    body = sdkutil.rest_body(case, generation_config={"maxOutputTokens": 2})
    with http.stream("POST", f"/{version}/models/{model}:streamGenerateContent?alt=sse", json=body) as r:
        assert r.status_code == 200, r.read()[:500]
        assert r.headers["content-type"].lower().startswith("text/event-stream")
        assert b"".join(r.iter_bytes()).startswith(b"data: {")


# ---------------------------------------------------------------------------------------------
# Errors: Google JSON shape, HTTP status, error.code, error.status, content type
# ---------------------------------------------------------------------------------------------
def _image_body(data_b64: str, mime: str, text: str = "Caption this image.") -> dict:
    return {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": mime, "data": data_b64}}, {"text": text}]}]}


def _err_bad_base64():
    return GEN, _image_body("%%% this is not base64 !!!", "image/png")


def _err_mime_image_jpg():
    return GEN, _image_body(b64(sdkutil.fixture_png()), "image/jpg")


def _err_mime_image_jpg_stream():
    # Validation errors come before the stream starts: a plain JSON error, not SSE.
    return STREAM, _image_body(b64(sdkutil.fixture_png()), "image/jpg")


def _err_png_declared_jpeg_bytes():
    return GEN, _image_body(b64(sdkutil.jpeg_bytes()), "image/png")


def _err_truncated_png():
    return GEN, _image_body(b64(sdkutil.truncated_png(sdkutil.fixture_png())), "image/png")


def _err_truncated_jpeg():
    # Cut inside the scan: the decoder must refuse it, not answer about a half-grey picture.
    data = sdkutil.jpeg_bytes(256)
    return GEN, _image_body(b64(data[: len(data) * 2 // 3]), "image/jpeg")


def _err_truncated_jpeg_stream():
    data = sdkutil.jpeg_bytes(256)
    return STREAM, _image_body(b64(data[: len(data) - 2]), "image/jpeg")


def _err_too_many_images():
    part = {"inlineData": {"mimeType": "image/png", "data": b64(sdkutil.tiny_png())}}
    parts = [part] * (sdkutil.DEFAULT_MAX_IMAGES + 1) + [{"text": "How many images?"}]
    return GEN, {"contents": [{"role": "user", "parts": parts}]}


def _err_candidate_count_2():
    body = _image_body(b64(sdkutil.fixture_png()), "image/png")
    body["generationConfig"] = {"candidateCount": 2, "maxOutputTokens": 4}
    return GEN, body


def _err_malformed_json():
    return GEN, b'{"contents": [{"parts": [{"text": "hi"}]'


def _err_empty_contents():
    return GEN, {"contents": []}


def _err_both_schemas():
    body = _image_body(b64(sdkutil.fixture_png()), "image/png")
    body["generationConfig"] = {
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}},
        "responseJsonSchema": {"type": "object", "properties": {"a": {"type": "string"}}},
    }
    return GEN, body


ERRORS = {
    "bad_base64": (_err_bad_base64, None),
    "mime_image_jpg": (_err_mime_image_jpg, "Unsupported MIME type: image/jpg"),
    "mime_image_jpg_stream": (_err_mime_image_jpg_stream, "Unsupported MIME type: image/jpg"),
    "png_declared_jpeg_bytes": (_err_png_declared_jpeg_bytes, None),
    "truncated_png": (_err_truncated_png, None),
    "truncated_jpeg": (_err_truncated_jpeg, None),
    "truncated_jpeg_stream": (_err_truncated_jpeg_stream, None),
    "too_many_images": (_err_too_many_images, None),
    "candidate_count_2": (_err_candidate_count_2, None),
    "malformed_json": (_err_malformed_json, None),
    "empty_contents": (_err_empty_contents, None),
    "both_response_schemas": (_err_both_schemas, None),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_invalid_argument_errors(http, name):
    build, prefix = ERRORS[name]
    path, body = build()
    if isinstance(body, bytes):
        resp = http.post(path, content=body, headers={"content-type": "application/json"})
    else:
        resp = http.post(path, json=body)
    assert_google_error(resp, 400, "INVALID_ARGUMENT", prefix)


def _post_big(http, path: str, body: dict):
    payload = json.dumps(body).encode()
    try:
        return http.post(path, content=payload, headers={"content-type": "application/json"})
    except httpx.TransportError as e:
        pytest.fail(f"transport error instead of a JSON error response for a {len(payload)}-byte body: {e!r}")


def test_inline_bytes_over_limit_single_image(http):
    img = sdkutil.big_png(sdkutil.DEFAULT_MAX_INLINE_BYTES + 64 * 1024)
    resp = _post_big(http, GEN, _image_body(b64(img), "image/png"))
    assert_google_error(resp, 400, "INVALID_ARGUMENT", sdkutil.PAYLOAD_TOO_LARGE_PREFIX)


def test_inline_bytes_limit_counts_all_parts(http):
    """Two images of ~10.1 MiB each: neither alone is over 20 MiB, together they are."""
    half = sdkutil.big_png(sdkutil.DEFAULT_MAX_INLINE_BYTES // 2 + 64 * 1024)
    part = {"inlineData": {"mimeType": "image/png", "data": b64(half)}}
    body = {"contents": [{"role": "user", "parts": [part, part, {"text": "Compare."}]}]}
    resp = _post_big(http, GEN, body)
    assert_google_error(resp, 400, "INVALID_ARGUMENT", sdkutil.PAYLOAD_TOO_LARGE_PREFIX)


def test_request_far_beyond_limit(http):
    """~64 MiB of base64: the server may refuse it while reading (413) or after (400); JSON either way."""
    img = sdkutil.big_png(48 * 1024 * 1024)
    resp = _post_big(http, GEN, _image_body(b64(img), "image/png"))
    err = assert_google_error(resp, (400, 413), None)
    if resp.status_code == 400:
        assert err["status"] == "INVALID_ARGUMENT", err
        assert err["message"].startswith(sdkutil.PAYLOAD_TOO_LARGE_PREFIX), err


# ---------------------------------------------------------------------------------------------
# The --alias server
# ---------------------------------------------------------------------------------------------
def _small_request(max_tokens: int = 2) -> dict:
    body = _image_body(b64(sdkutil.fixture_png()), "image/png")
    body["generationConfig"] = {"maxOutputTokens": max_tokens}
    return body


def test_alias_unknown_model_not_found(alias_http):
    for path in (
        "/v1beta/models/gemini-2.0-flash:generateContent",
        "/v1/models/gemini-2.0-flash:generateContent",
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        "/v1beta/models/gemini-2.0-flash:countTokens",
    ):
        body = _small_request()
        if path.endswith(":countTokens"):
            body = {"contents": body["contents"]}
        assert_google_error(alias_http.post(path, json=body), 404, "NOT_FOUND")
    assert_google_error(alias_http.get("/v1beta/models/gemini-2.0-flash"), 404, "NOT_FOUND")


def test_alias_and_model_id_resolve(alias_http):
    for name in (sdkutil.ALIAS, sdkutil.MODEL_ID):
        r = alias_http.post(f"/v1beta/models/{name}:generateContent", json=_small_request())
        assert r.status_code == 200, (name, r.text[:500])
        assert r.json()["candidates"][0]["content"]["role"] == "model"
        r = alias_http.get(f"/v1beta/models/{name}")
        assert r.status_code == 200, (name, r.text[:500])
        assert r.json()["name"] in (f"models/{sdkutil.ALIAS}", f"models/{sdkutil.MODEL_ID}")
    names = [m["name"] for m in alias_http.get("/v1beta/models").json()["models"]]
    assert f"models/{sdkutil.ALIAS}" in names, names


def test_configured_limits(alias_http):
    """The alias server runs with --max-images 2 --max-inline-bytes 100000."""
    small = {"inlineData": {"mimeType": "image/png", "data": b64(sdkutil.tiny_png())}}
    ok = {"contents": [{"parts": [small, small, {"text": "Compare."}]}], "generationConfig": {"maxOutputTokens": 1}}
    r = alias_http.post(f"/v1beta/models/{sdkutil.ALIAS}:generateContent", json=ok)
    assert r.status_code == 200, r.text[:500]

    three = {"contents": [{"parts": [small, small, small, {"text": "Compare."}]}]}
    r = alias_http.post(f"/v1beta/models/{sdkutil.ALIAS}:generateContent", json=three)
    assert_google_error(r, 400, "INVALID_ARGUMENT")

    big = _image_body(b64(sdkutil.big_png(100_001)), "image/png")
    r = alias_http.post(f"/v1beta/models/{sdkutil.ALIAS}:generateContent", json=big)
    assert_google_error(r, 400, "INVALID_ARGUMENT", sdkutil.PAYLOAD_TOO_LARGE_PREFIX)
