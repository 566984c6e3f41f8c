"""The error cases as an SDK user meets them: google.genai.errors.ClientError with .code, .status, .message.

(Bad base64, malformed JSON and empty `contents` cannot be produced through the SDK: it encodes the bytes
itself and refuses empty contents client-side. test_rest.py covers them.)
"""

from __future__ import annotations

import pytest
from google.genai import errors, types

import sdkutil
from sdkutil import SEED_MODEL

JPG_MESSAGE = "Unsupported MIME type: image/jpg"


def _expect_client_error(excinfo, code: int, status: str, message_prefix: str | None = None) -> None:
    err = excinfo.value
    assert isinstance(err, errors.ClientError), type(err)
    assert err.code == code, (err.code, err.message)
    assert err.status == status, (err.status, err.message)
    assert isinstance(err.message, str) and err.message
    if message_prefix is not None:
        assert err.message.startswith(message_prefix), err.message


def _image_then_text(data: bytes, mime: str) -> list:
    return [types.Part.from_bytes(data=data, mime_type=mime), "Caption this image."]


def test_unsupported_mime_image_jpg(client):
    with pytest.raises(errors.ClientError) as ei:
        client.models.generate_content(model=SEED_MODEL, contents=_image_then_text(sdkutil.fixture_png(), "image/jpg"))
    _expect_client_error(ei, 400, "INVALID_ARGUMENT", JPG_MESSAGE)


def test_unsupported_mime_in_stream_and_count_tokens(sdk_client_factory):
    client = sdk_client_factory("v1beta")
    contents = _image_then_text(sdkutil.fixture_png(), "image/jpg")
    with pytest.raises(errors.ClientError) as ei:
        for _ in client.models.generate_content_stream(model=SEED_MODEL, contents=contents):
            pass
    _expect_client_error(ei, 400, "INVALID_ARGUMENT", JPG_MESSAGE)
    with pytest.raises(errors.ClientError) as ei:
        client.models.count_tokens(model=SEED_MODEL, contents=contents)
    _expect_client_error(ei, 400, "INVALID_ARGUMENT", JPG_MESSAGE)


@pytest.mark.parametrize(
    "data",
    [pytest.param(sdkutil.jpeg_bytes, id="jpeg_bytes_declared_png"), pytest.param(sdkutil.truncated_png, id="truncated_png")],
)
def test_undecodable_image(client, data):
    with pytest.raises(errors.ClientError) as ei:
        client.models.generate_content(model=SEED_MODEL, contents=_image_then_text(data(), "image/png"))
    _expect_client_error(ei, 400, "INVALID_ARGUMENT")


def test_too_many_images(client):
    png = sdkutil.tiny_png()
    parts = [types.Part.from_bytes(data=png, mime_type="image/png") for _ in range(sdkutil.DEFAULT_MAX_IMAGES + 1)]
    parts.append(types.Part.from_text(text="How many images are there?"))
    # One types.Content rather than a flat list: the SDK's flat-list conversion of 3601 parts alone takes ~8 s.
    contents = [types.Content(role="user", parts=parts)]
    with pytest.raises(errors.ClientError) as ei:
        client.models.generate_content(model=SEED_MODEL, contents=contents)
    _expect_client_error(ei, 400, "INVALID_ARGUMENT")


def test_inline_bytes_over_limit(client):
    img = sdkutil.big_png(sdkutil.DEFAULT_MAX_INLINE_BYTES + 64 * 1024)
    with pytest.raises(errors.ClientError) as ei:
        client.models.generate_content(model=SEED_MODEL, contents=_image_then_text(img, "image/png"))
    _expect_client_error(ei, 400, "INVALID_ARGUMENT", sdkutil.PAYLOAD_TOO_LARGE_PREFIX)


def test_candidate_count_two(client):
    with pytest.raises(errors.ClientError) as ei:
        client.models.generate_content(
            model=SEED_MODEL,
            contents=_image_then_text(sdkutil.fixture_png(), "image/png"),
            config=types.GenerateContentConfig(candidate_count=2, max_output_tokens=4),
        )
    _expect_client_error(ei, 400, "INVALID_ARGUMENT")


def test_both_response_schemas(client):
    with pytest.raises(errors.ClientError) as ei:
        client.models.generate_content(
            model=SEED_MODEL,
            contents=_image_then_text(sdkutil.fixture_png(), "image/png"),
            config=types.GenerateContentConfig(
                response_mime_type="application/json",
                response_schema=types.Schema(type=types.Type.OBJECT, properties={"a": types.Schema(type=types.Type.STRING)}),
                response_json_schema={"type": "object", "properties": {"a": {"type": "string"}}},
            ),
        )
    _expect_client_error(ei, 400, "INVALID_ARGUMENT")


@pytest.mark.parametrize("api_version", [pytest.param(None, id="default-version"), pytest.param("v1beta", id="v1beta")])
def test_unknown_model_with_alias(alias_url, api_version):
    client = sdkutil.make_client(alias_url, api_version)
    with pytest.raises(errors.ClientError) as ei:
        client.models.generate_content(
            model="gemini-2.0-flash", contents=_image_then_text(sdkutil.fixture_png(), "image/png")
        )
    _expect_client_error(ei, 404, "NOT_FOUND")
    with pytest.raises(errors.ClientError) as ei:
        client.models.get(model="gemini-2.0-flash")
    _expect_client_error(ei, 404, "NOT_FOUND")
    # The alias itself works.
    ok = client.models.generate_content(
        model=sdkutil.ALIAS,
        contents=_image_then_text(sdkutil.fixture_png(), "image/png"),
        config=types.GenerateContentConfig(max_output_tokens=2),
    )
    assert ok.candidates and ok.candidates[0].content.role == "model"
