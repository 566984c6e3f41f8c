"""The Interactions API through google-genai's `client.interactions`, as the seed documents use it: inline
data, an uploaded file's uri (the seed's File API snippet), several images, JSON output with
`response_format`, a streamed interaction, a conversation through `previous_interaction_id`, get / delete,
and the API's string error codes (retries disabled)."""

from __future__ import annotations

import json

import pytest
import sdkutil

SEED_MODEL = "gemini-3-flash-preview"


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
    assert_reference(client.interactions.create(model=SEED_MODEL, input=sdkutil.interaction_items(case), generation_config=limit(case)), case)


def test_seed_file_api_snippet(client, expected):
    """'Uploading images using the File API': upload, then pass `uploaded_file.uri` and its mime_type."""
    case = expected["caption_square"]
    (message,) = [m for m in case["messages"] if m["role"] == "user"]
    path = next(i["path"] for i in message["content"] if i["type"] == "image")
    my_file = client.files.upload(file=str(sdkutil.resolve_path(path)))
    interaction = client.interactions.create(model=SEED_MODEL, input=sdkutil.interaction_items(case, {path: my_file}), generation_config=limit(case))
    assert_reference(interaction, case)


def test_json_output_with_response_format(client, expected):
    """The seed's structured-output form: the model_output text is JSON that follows the schema."""
    case = expected["two_images"]
    schema = {
        "type": "object",
        "properties": {
            "common": {"type": "string", "enum": ["color", "shape", "size", "nothing"]},
            "count": {"type": "integer", "enum": [1, 2, 3]},
        },
        "required": ["common", "count"],
        "additionalProperties": False,
    }
    interaction = client.interactions.create(
        model=SEED_MODEL,
        input=sdkutil.interaction_items(case),
        response_format={"type": "text", "mime_type": "application/json", "schema": schema},
        generation_config={"max_output_tokens": 200},
    )
    value = json.loads(interaction.steps[-1].content[0].text)
    assert set(value) == {"common", "count"}, value
    assert value["common"] in schema["properties"]["common"]["enum"]
    assert value["count"] in (1, 2, 3) and not isinstance(value["count"], bool)


def test_streamed_interaction(client, expected):
    """`stream=True`: created, step start/deltas/stop, completed; the deltas join to the greedy answer."""
    case = expected["caption_square"]
    events = list(client.interactions.create(model=SEED_MODEL, input=sdkutil.interaction_items(case), generation_config=limit(case), stream=True))
    kinds = [e.event_type for e in events]
    assert kinds[:2] == ["interaction.created", "step.start"], kinds
    assert kinds[-2:] == ["step.stop", "interaction.completed"], kinds
    assert set(kinds[2:-2]) == {"step.delta"}, kinds
    sdkutil.assert_reference_text("".join(e.delta.text for e in events if e.event_type == "step.delta"), case)
    completed = events[-1].interaction
    assert completed.id == events[0].interaction.id
    assert completed.usage.total_input_tokens == case["prompt_token_count"]


def test_conversation_through_previous_interaction_id(client, expected):
    """Turn two sees turn one's input and output: its answer and its token count are those of
    generateContent with the same history written out."""
    case = expected["caption_square"]
    first = client.interactions.create(model=SEED_MODEL, input=sdkutil.interaction_items(case), generation_config=limit(case))
    follow_up = "And what colour is it?"
    second = client.interactions.create(
        model=SEED_MODEL, input=follow_up, previous_interaction_id=first.id, generation_config={"max_output_tokens": 8}
    )
    assert second.previous_interaction_id == first.id
    from google.genai import types

    history = [
        types.Content(role="user", parts=[types.Part(text=x) if isinstance(x, str) else x for x in sdkutil.sdk_contents(case, use_pil=False)]),
        types.Content(role="model", parts=[types.Part(text=first.steps[-1].content[0].text)]),
        types.Content(role="user", parts=[types.Part(text=follow_up)]),
    ]
    direct = client.models.generate_content(
        model=SEED_MODEL, contents=history, config=types.GenerateContentConfig(max_output_tokens=8)
    )
    assert second.steps[-1].content[0].text == direct.text
    assert second.usage.total_input_tokens == direct.usage_metadata.prompt_token_count
    assert second.usage.total_input_tokens == client.models.count_tokens(model=SEED_MODEL, contents=history).total_tokens

    # GET shows the stored turn with its input; DELETE removes it.
    stored = client.interactions.get(id=second.id)
    assert [s.type for s in stored.steps] == ["user_input", "model_output"]
    assert stored.steps[0].content[0].text == follow_up
    assert stored.steps[-1].content[0].text == second.steps[-1].content[0].text
    client.interactions.delete(id=second.id)
    with pytest.raises(Exception) as ei:
        client.interactions.get(id=second.id)
    assert_interaction_error(ei.value, 404, "not_found")


def test_store_false_is_not_kept(client):
    interaction = client.interactions.create(model=SEED_MODEL, input="hello", store=False, generation_config={"max_output_tokens": 2})
    with pytest.raises(Exception) as ei:
        client.interactions.create(model=SEED_MODEL, input="again", previous_interaction_id=interaction.id)
    assert_interaction_error(ei.value, 404, "not_found")


def test_interactions_are_private_to_their_api_key(client, base_url):
    from google import genai
    from google.genai import types

    mine = client.interactions.create(model=SEED_MODEL, input="hello", generation_config={"max_output_tokens": 2})
    other = genai.Client(
        api_key="another-key",
        http_options=types.HttpOptions(base_url=base_url, retry_options=types.HttpRetryOptions(attempts=1)),
    )
    with pytest.raises(Exception) as ei:
        other.interactions.get(id=mine.id)
    assert_interaction_error(ei.value, 404, "not_found")


def assert_interaction_error(err, status: int, code: str):
    """The Interactions client raises its own errors (status_code, body: the parsed JSON), not
    errors.ClientError."""
    assert getattr(err, "status_code", None) == status, repr(err)
    body = err.body if isinstance(err.body, dict) else json.loads(err.body)
    assert body["error"]["code"] == code, body


def test_unsupported_content_is_a_400(client):
    with pytest.raises(Exception) as ei:
        client.interactions.create(model=SEED_MODEL, input=[{"type": "audio", "data": "AAAA", "mime_type": "audio/wav"}])
    assert_interaction_error(ei.value, 400, "invalid_request")


def test_unknown_previous_interaction_is_a_404(client):
    with pytest.raises(Exception) as ei:
        client.interactions.create(model=SEED_MODEL, input="x", previous_interaction_id="v1_doesnotexist")
    assert_interaction_error(ei.value, 404, "not_found")


def test_background_is_unimplemented(client):
    with pytest.raises(Exception) as ei:
        client.interactions.create(model=SEED_MODEL, input="x", background=True)
    assert_interaction_error(ei.value, 501, "unimplemented")
