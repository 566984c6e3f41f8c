"""generateContent / streamGenerateContent / countTokens / models through the real google-genai SDK.

The reference cases come from Hugging Face transformers run on the same tiny random-weight Qwen2.5-VL
(fixtures/expected/<model>.json). With no sampling parameters the server uses the model's
generation_config.json (greedy), so the server's answer must be the reference's greedy text exactly.
"""

from __future__ import annotations

import json
from typing import Literal

import PIL.Image
import pydantic
import pytest
from google.genai import types

import sdkutil
from sdkutil import CASE_NAMES, SEED_MODEL

# ---------------------------------------------------------------------------------------------
# The seed documents' own snippets (only the client construction changed)
# ---------------------------------------------------------------------------------------------
def test_seed_local_pil_image(base_url):
    """gemini-vision-overview "Working with local images", verbatim apart from the client."""
    from google import genai

    image = PIL.Image.open(sdkutil.IMAGES_DIR / "red_square_56x56.png")

    client = genai.Client(api_key="GEMINI_API_KEY", http_options=types.HttpOptions(base_url=base_url))
    response = client.models.generate_content(model="gemini-2.0-flash", contents=["What is this image?", image])

    assert isinstance(response.text, str) and response.text, response
    cand = response.candidates[0]
    assert cand.content.role == "model"
    assert cand.finish_reason in (types.FinishReason.STOP, types.FinishReason.MAX_TOKENS)
    usage = response.usage_metadata
    assert usage.prompt_token_count > 0 and usage.candidates_token_count > 0
    assert sdkutil.modality_counts(usage.prompt_tokens_details).get("IMAGE", 0) > 0


def test_seed_part_from_bytes(client, expected):
    """gemini-vision-overview "Base64 encoded images": types.Part.from_bytes, image after the question."""
    case = expected["caption_square"]
    png = (sdkutil.IMAGES_DIR / "red_square_56x56.png").read_bytes()
    response = client.models.generate_content(
        model="gemini-2.0-flash-exp",
        contents=["What is this image?", types.Part.from_bytes(data=png, mime_type="image/png")],
        config=types.GenerateContentConfig(max_output_tokens=case["max_new_tokens"]),
    )
    assert response.text
    # Same image as caption_square, so the same number of image tokens.
    counts = sdkutil.modality_counts(response.usage_metadata.prompt_tokens_details)
    assert counts.get("IMAGE") == sdkutil.image_tokens(case), counts


# ---------------------------------------------------------------------------------------------
# Reference-exact generation
# ---------------------------------------------------------------------------------------------
# Every case with the SDK's default api_version (v1 on google-genai 3.x); the system-instruction and
# multi-turn cases again on explicit v1beta (test_rest.py checks the routes on v1/v1beta/v1alpha too).
REFERENCE_MATRIX = [pytest.param(name, None, id=f"{name}-default-version") for name in CASE_NAMES] + [
    pytest.param(name, "v1beta", id=f"{name}-v1beta") for name in ("question_wide_system", "multi_turn")
]


@pytest.mark.parametrize("case_name,api_version", REFERENCE_MATRIX)
def test_generate_matches_reference(sdk_client_factory, expected, case_name, api_version):
    """No sampling parameters -> greedy from generation_config.json -> transformers' greedy text, token for
    token, with the reference's token accounting; countTokens agrees with promptTokenCount."""
    case = expected[case_name]
    client = sdk_client_factory(api_version)
    response = client.models.generate_content(
        model=SEED_MODEL,
        contents=sdkutil.sdk_contents(case),
        config=sdkutil.sdk_config(case, max_output_tokens=case["max_new_tokens"]),
    )
    sdkutil.assert_reference_text(response.text, case)
    cand = response.candidates[0]
    assert cand.content.role == "model"
    assert cand.finish_reason == types.FinishReason(sdkutil.expected_finish(case))
    sdkutil.assert_sdk_usage(response.usage_metadata, case)

    if sdkutil.system_text(case) is None:
        # The SDK refuses system_instruction in count_tokens for the Gemini API, so only cases without one.
        counted = client.models.count_tokens(model=SEED_MODEL, contents=sdkutil.sdk_contents(case))
        assert counted.total_tokens == case["prompt_token_count"]


def test_temperature_zero_matches_reference(client, expected):
    case = expected["question_wide_system"]
    response = client.models.generate_content(
        model=SEED_MODEL,
        contents=sdkutil.sdk_contents(case),
        config=sdkutil.sdk_config(case, temperature=0, max_output_tokens=case["max_new_tokens"]),
    )
    sdkutil.assert_reference_text(response.text, case)
    assert response.candidates[0].finish_reason == types.FinishReason(sdkutil.expected_finish(case))


# ---------------------------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case_name", ["caption_square", "two_images", "multi_turn"])
def test_stream_matches_reference(client, expected, case_name):
    case = expected[case_name]
    chunks = list(
        client.models.generate_content_stream(
            model=SEED_MODEL,
            contents=sdkutil.sdk_contents(case),
            config=sdkutil.sdk_config(case, max_output_tokens=case["max_new_tokens"]),
        )
    )
    assert len(chunks) >= 2, f"expected incremental chunks, got {len(chunks)}"
    text = "".join(c.text or "" for c in chunks)
    sdkutil.assert_reference_text(text, case)

    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason(sdkutil.expected_finish(case))
    for c in chunks[:-1]:
        if c.candidates:
            assert c.candidates[0].finish_reason is None, "finish_reason before the last chunk"
    sdkutil.assert_sdk_usage(last.usage_metadata, case)
    ids = {c.response_id for c in chunks if c.response_id}
    assert len(ids) <= 1, f"responseId differs between chunks: {ids}"


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------
def test_models_list(client):
    models = list(client.models.list())
    assert models, "models.list() returned nothing"
    names = [m.name for m in models]
    assert f"models/{sdkutil.MODEL_ID}" in names, names
    for m in models:
        assert m.name.startswith("models/")
        assert m.display_name
        assert m.input_token_limit and m.input_token_limit > 0
        assert m.output_token_limit and m.output_token_limit > 0
        assert "generateContent" in (m.supported_actions or []), m.supported_actions
        assert "countTokens" in (m.supported_actions or []), m.supported_actions


def test_models_get(client):
    m = client.models.get(model=sdkutil.MODEL_ID)
    assert m.name == f"models/{sdkutil.MODEL_ID}"
    assert m.input_token_limit > 0 and m.output_token_limit > 0
    assert "generateContent" in (m.supported_actions or [])
    # Without --alias every name maps to the loaded model.
    other = client.models.get(model=SEED_MODEL)
    assert other.name.startswith("models/")
    assert "generateContent" in (other.supported_actions or [])


# ---------------------------------------------------------------------------------------------
# JSON output (constrained decoding: even a random model's output must parse)
# ---------------------------------------------------------------------------------------------
class ShapeAnswer(pydantic.BaseModel):
    shape: Literal["square", "circle", "triangle", "star"]
    filled: bool


def test_json_output_response_schema(client, expected):
    """response_schema from a pydantic class (sent as an uppercase-type OpenAPI Schema with
    property_ordering), read back through `response.parsed`."""
    case = expected["caption_square"]
    response = client.models.generate_content(
        model=SEED_MODEL,
        contents=sdkutil.sdk_contents(case),
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=ShapeAnswer, max_output_tokens=200
        ),
    )
    value = json.loads(response.text)
    assert isinstance(value, dict), value
    assert value["shape"] in ("square", "circle", "triangle", "star")
    assert isinstance(value["filled"], bool)
    assert isinstance(response.parsed, ShapeAnswer), response.parsed


def test_json_output_response_json_schema(client, expected):
    case = expected["two_images"]
    schema = {
        "type": "object",
        "properties": {
            "common": {"type": "string", "enum": ["color", "shape", "size", "nothing"]},
            "same_size": {"type": "boolean"},
            "count": {"type": "integer", "enum": [1, 2, 3]},
        },
        "required": ["common", "same_size", "count"],
        "additionalProperties": False,
    }
    response = client.models.generate_content(
        model=SEED_MODEL,
        contents=sdkutil.sdk_contents(case),
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_json_schema=schema, max_output_tokens=200
        ),
    )
    value = json.loads(response.text)
    assert set(value) == {"common", "same_size", "count"}, value
    assert value["common"] in schema["properties"]["common"]["enum"]
    assert isinstance(value["same_size"], bool)
    assert value["count"] in (1, 2, 3) and not isinstance(value["count"], bool)

