"""OpenAI compatibility through the `openai` Python SDK, pointed at `{base}/v1beta/openai/` as the Gemini docs
show: images as base64 data URLs (and an http URL), system and assistant messages, streaming with and without
usage, `response_format` JSON schema, `reasoning_effort`, the model list, and errors (retries disabled).

With no sampling parameters the answers are greedy, so they must be transformers' greedy text exactly, and
the usage must be the same numbers countTokens, usageMetadata and the Interactions API report."""

from __future__ import annotations

import base64
import json

import openai
import pytest

import sdkutil
from conftest import start_server, stop_server


def openai_client(base_url: str, key: str = sdkutil.API_KEY) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{base_url}/v1beta/openai/", max_retries=0, timeout=sdkutil.REQUEST_TIMEOUT_S)


@pytest.fixture(scope="module")
def oai(base_url) -> openai.OpenAI:
    return openai_client(base_url)


def data_url(path) -> str:
    path = sdkutil.resolve_path(path)
    return f"data:{sdkutil.mime_for(path)};base64,{base64.b64encode(path.read_bytes()).decode()}"


def chat_messages(case: dict, image_url=data_url) -> list[dict]:
    """A reference case as OpenAI messages (system, user parts with image_url, assistant text)."""
    messages = []
    for msg in case["messages"]:
        items = sdkutil.message_items(msg)
        if msg["role"] == "user":
            content = [
                {"type": "text", "text": i["text"]} if i["type"] == "text" else {"type": "image_url", "image_url": {"url": image_url(i["path"])}}
                for i in items
            ]
        else:
            content = "".join(i["text"] for i in items)
        messages.append({"role": msg["role"], "content": content})
    return messages


def expected_finish(case: dict) -> str:
    return "length" if case["finish"] == "length" else "stop"


@pytest.mark.parametrize("name", ["caption_square", "question_wide_system", "two_images", "multi_turn"])
def test_chat_completion_matches_reference(oai, expected, name):
    case = expected[name]
    completion = oai.chat.completions.create(model="gemini-3-flash-preview", messages=chat_messages(case), max_tokens=case["max_new_tokens"])
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    sdkutil.assert_reference_text(choice.message.content, case)
    assert choice.finish_reason == expected_finish(case)
    assert completion.usage.prompt_tokens == case["prompt_token_count"]
    assert completion.usage.completion_tokens in sdkutil.allowed_candidate_counts(case)
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")


def test_streamed_chat_completion(oai, expected):
    case = expected["caption_square"]
    stream = oai.chat.completions.create(
        model="gemini-3-flash-preview",
        messages=chat_messages(case),
        max_completion_tokens=case["max_new_tokens"],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    sdkutil.assert_reference_text(text, case)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [expected_finish(case)]
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == case["prompt_token_count"]


def test_streamed_without_usage_has_no_usage_chunk(oai, expected):
    case = expected["text_only"]
    chunks = list(oai.chat.completions.create(model="m", messages=chat_messages(case), max_tokens=case["max_new_tokens"], stream=True))
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    sdkutil.assert_reference_text("".join(c.choices[0].delta.content or "" for c in chunks), case)


def test_usage_is_the_same_everywhere(oai, client, expected):
    """countTokens, usageMetadata, Interactions usage and OpenAI usage count the same prompt."""
    case = expected["two_images"]
    contents = sdkutil.sdk_contents(case)
    counted = client.models.count_tokens(model=sdkutil.SEED_MODEL, contents=contents).total_tokens
    from google.genai import types

    gemini = client.models.generate_content(model=sdkutil.SEED_MODEL, contents=contents, config=types.GenerateContentConfig(max_output_tokens=3))
    interaction = client.interactions.create(
        model=sdkutil.SEED_MODEL,
        input=[
            {"type": "text", "text": i["text"]} if i["type"] == "text"
            else {"type": "image", "data": data_url(i["path"]).split(",", 1)[1], "mime_type": sdkutil.mime_for(sdkutil.resolve_path(i["path"]))}
            for i in sdkutil.message_items(case["messages"][-1])
        ],
        generation_config={"max_output_tokens": 3},
    )
    completion = oai.chat.completions.create(model="m", messages=chat_messages(case), max_tokens=3)
    assert counted == case["prompt_token_count"]
    assert gemini.usage_metadata.prompt_token_count == counted
    assert interaction.usage.total_input_tokens == counted
    assert completion.usage.prompt_tokens == counted
    assert gemini.usage_metadata.candidates_token_count == interaction.usage.total_output_tokens == completion.usage.completion_tokens == 3


def test_json_schema_response_format(oai, expected):
    case = expected["caption_square"]
    schema = {
        "type": "object",
        "properties": {"shape": {"type": "string", "enum": ["square", "circle"]}, "filled": {"type": "boolean"}},
        "required": ["shape", "filled"],
        "additionalProperties": False,
    }
    completion = oai.chat.completions.create(
        model="gemini-3-flash-preview",
        messages=chat_messages(case),
        response_format={"type": "json_schema", "json_schema": {"name": "shape", "strict": True, "schema": schema}},
        reasoning_effort="low",
        max_tokens=200,
    )
    value = json.loads(completion.choices[0].message.content)
    assert set(value) == {"shape", "filled"} and value["shape"] in ("square", "circle") and isinstance(value["filled"], bool)


def test_http_image_url(tmp_path, expected, image_site):
    case = expected["caption_square"]
    server = start_server(tmp_path, "openai-fetch", ["--fetch-allow", "127.0.0.0/8"])
    try:
        site_url = lambda path: f"{image_site}/{sdkutil.resolve_path(path).name}"  # noqa: E731
        completion = openai_client(server.url).chat.completions.create(
            model="gemini-3-flash-preview", messages=chat_messages(case, site_url), max_tokens=case["max_new_tokens"]
        )
        sdkutil.assert_reference_text(completion.choices[0].message.content, case)
    finally:
        stop_server(server)


def test_models_list_and_retrieve(oai):
    models = oai.models.list()
    ids = [m.id for m in models.data]
    assert ids == [f"models/{sdkutil.MODEL_ID}"]
    assert oai.models.retrieve(ids[0]).id == ids[0]
    # Without --alias any name is served by the loaded model, as for generateContent.
    assert oai.models.retrieve("gemini-3-flash-preview").id == "models/gemini-3-flash-preview"


def test_bad_requests_are_400_with_googles_message(oai, expected):
    case = expected["caption_square"]
    with pytest.raises(openai.BadRequestError) as ei:
        oai.chat.completions.create(model="m", messages=chat_messages(case), n=2)
    assert ei.value.status_code == 400
    assert ei.value.body["status"] == "INVALID_ARGUMENT" and "n must be 1" in ei.value.body["message"]
    with pytest.raises(openai.BadRequestError) as ei:
        oai.chat.completions.create(
            model="m", messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}}]}]
        )
    assert ei.value.status_code == 400


def test_unknown_key_is_rejected(tmp_path, expected):
    server = start_server(tmp_path, "openai-keys", ["--api-key", sdkutil.API_KEY])
    try:
        with pytest.raises(openai.BadRequestError) as ei:
            openai_client(server.url, key="wrong").chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert "API key not valid" in ei.value.body["message"]
        completion = openai_client(server.url).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        assert completion.usage.completion_tokens == 2
    finally:
        stop_server(server)
