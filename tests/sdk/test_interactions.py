"""The Interactions API through google-genai's `client.interactions.create` (unary), as the seed documents
use it: inline data, an uploaded file's uri (the seed's File API snippet), several images."""

from __future__ import annotations

import base64

import pytest
import sdkutil

SEED_MODEL = "gemini-3-flash-preview"


def interaction_input(case: dict, uploaded: dict | None = None) -> list[dict]:
    """The case's single user turn as Interactions content items (images inline unless `uploaded` maps a path)."""
    (message,) = [m for m in case["messages"] if m["role"] == "user"]
    items = []
    for item in message["content"]:
        if item["type"] == "text":
            items.append({"type": "text", "text": item["text"]})
        elif uploaded and item["path"] in uploaded:
            f = uploaded[item["path"]]
            items.append({"type": "image", "uri": f.uri, "mime_type": f.mime_type})
        else:
            path = sdkutil.resolve_path(item["path"])
            items.append({"type": "image", "data": base64.b64encode(path.read_bytes()).decode(), "mime_type": sdkutil.mime_for(path)})
    return items


def limit(case: dict) -> dict:
    return {"max_output_tokens": case["max_new_tokens"]}


def assert_reference(interaction, case):
    assert interaction.status == "completed" if case["finish"] == "eos" else interaction.status in ("completed", "incomplete")
    sdkutil.assert_reference_text(interaction.steps[-1].content[0].text, case)
    assert interaction.usage.total_input_tokens == case["prompt_token_count"]
    by_modality = {m.modality: m.tokens for m in interaction.usage.input_tokens_by_modality}
    assert by_modality.get("image", 0) == sdkutil.image_tokens(case)


@pytest.mark.parametrize("name", ["caption_square", "two_images"])
def test_inline_images(client, expected, name):
    case = expected[name]
    assert_reference(client.interactions.create(model=SEED_MODEL, input=interaction_input(case), generation_config=limit(case)), case)


def test_seed_file_api_snippet(client, expected):
    """'Uploading images using the File API': upload, then pass `uploaded_file.uri` and its mime_type."""
    case = expected["caption_square"]
    (message,) = [m for m in case["messages"] if m["role"] == "user"]
    path = next(i["path"] for i in message["content"] if i["type"] == "image")
    my_file = client.files.upload(file=str(sdkutil.resolve_path(path)))
    interaction = client.interactions.create(model=SEED_MODEL, input=interaction_input(case, {path: my_file}), generation_config=limit(case))
    assert_reference(interaction, case)


def test_unsupported_content_is_a_400(client):
    # The Interactions client raises its own BadRequestError (status_code), not errors.ClientError.
    with pytest.raises(Exception) as ei:
        client.interactions.create(model=SEED_MODEL, input=[{"type": "audio", "data": "AAAA", "mime_type": "audio/wav"}])
    assert getattr(ei.value, "status_code", None) == 400, repr(ei.value)
