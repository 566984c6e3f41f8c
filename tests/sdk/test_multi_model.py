"""Several models at once: `--model NAME=DIR` (repeated) and `--alias ALIAS=NAME`. Requests are routed by model
name and by alias, `GET models` lists every name with its limits, and unknown names are 404 NOT_FOUND, through
the Gemini SDK, the Interactions API and the OpenAI layer."""

from __future__ import annotations

import httpx
import pytest
from google.genai import errors, types

import sdkutil
from conftest import start_server, stop_server


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    model = str(sdkutil.MODEL_DIR)
    server = start_server(
        tmp_path_factory.mktemp("two"),
        "two-models",
        ["--model", f"fast={model}", "--model", f"careful={model}",
         "--alias", "gemini-2.0-flash=fast", "--alias", "gemini-3-flash-preview=careful",
         # The fixture model's context is 1,024 tokens: Gemini's minimum cache would fill it.
         "--cache-min-tokens", "16"],
    )  # fmt: skip
    yield server
    stop_server(server)


def test_models_are_listed_with_their_aliases(two_models):
    client = sdkutil.make_client(two_models.url)
    names = sorted(m.name for m in client.models.list())
    assert names == ["models/careful", "models/fast", "models/gemini-2.0-flash", "models/gemini-3-flash-preview"]
    model = client.models.get(model="gemini-2.0-flash")
    assert model.input_token_limit > 0 and model.output_token_limit > 0
    assert "generateContent" in model.supported_actions and "countTokens" in model.supported_actions


@pytest.mark.parametrize("name, served_by", [("fast", "fast"), ("careful", "careful"), ("gemini-2.0-flash", "fast"), ("gemini-3-flash-preview", "careful")])
def test_requests_are_routed_by_name_and_alias(two_models, expected, name, served_by):
    case = expected["caption_square"]
    client = sdkutil.make_client(two_models.url)
    response = client.models.generate_content(
        model=name, contents=sdkutil.sdk_contents(case), config=types.GenerateContentConfig(max_output_tokens=case["max_new_tokens"])
    )
    assert response.model_version == served_by
    sdkutil.assert_reference_text(response.text, case)
    assert client.models.count_tokens(model=name, contents=sdkutil.sdk_contents(case)).total_tokens == case["prompt_token_count"]


def test_unknown_model_is_not_found_everywhere(two_models):
    client = sdkutil.make_client(two_models.url)
    with pytest.raises(errors.ClientError) as ei:
        client.models.generate_content(model="gemini-1.5-pro", contents="hi")
    assert (ei.value.code, ei.value.status) == (404, "NOT_FOUND")
    r = httpx.post(f"{two_models.url}/v1beta/interactions", json={"model": "gemini-1.5-pro", "input": "hi"}, headers={"x-goog-api-key": sdkutil.API_KEY})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "model_not_found")
    r = httpx.post(
        f"{two_models.url}/v1beta/openai/chat/completions",
        json={"model": "gemini-1.5-pro", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {sdkutil.API_KEY}"},
    )
    assert (r.status_code, r.json()["error"]["status"]) == (404, "NOT_FOUND")
    listed = httpx.get(f"{two_models.url}/v1beta/openai/models", headers={"authorization": f"Bearer {sdkutil.API_KEY}"}).json()
    assert sorted(m["id"] for m in listed["data"]) == ["models/careful", "models/fast", "models/gemini-2.0-flash", "models/gemini-3-flash-preview"]


def test_in_situ_quantisation(tmp_path, expected):
    """`--isq q8_0`: the weights are quantised at load; the model says so, still answers, and the prompt is
    counted exactly as before (quantisation changes numbers, not tokens)."""
    server = start_server(tmp_path, "isq", ["--isq", "q8_0", "--dtype", "f32"])
    try:
        client = sdkutil.make_client(server.url)
        assert "Q8_0" in client.models.get(model=sdkutil.MODEL_ID).description
        case = expected["caption_square"]
        response = client.models.generate_content(
            model=sdkutil.SEED_MODEL, contents=sdkutil.sdk_contents(case), config=types.GenerateContentConfig(max_output_tokens=5)
        )
        assert response.usage_metadata.prompt_token_count == case["prompt_token_count"]
        assert response.usage_metadata.candidates_token_count == 5 and response.text
    finally:
        stop_server(server)


def test_unknown_quantisation_is_refused_at_start(tmp_path):
    import subprocess

    run = subprocess.run([str(sdkutil.GLIMPSE_BIN), "serve", "--model", str(sdkutil.MODEL_DIR), "--isq", "q9"], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "--isq" in run.stderr, run.stderr[-500:]


@pytest.mark.parametrize("fraction", ["1.5", "-0.1", "most"])
def test_a_gpu_memory_fraction_outside_0_to_1_is_refused_at_start(fraction):
    import subprocess

    run = subprocess.run([str(sdkutil.GLIMPSE_BIN), "serve", "--model", str(sdkutil.MODEL_DIR), f"--gpu-memory-fraction={fraction}"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "--gpu-memory-fraction" in run.stderr and "between 0 and 1" in run.stderr, run.stderr[-500:]


FIXTURE_MODELS = sdkutil.ROOT / "fixtures" / "models"


@pytest.fixture(scope="module")
def four_families(tmp_path_factory):
    server = start_server(
        tmp_path_factory.mktemp("families"),
        "four-families",
        ["--model", f"qwen25={sdkutil.MODEL_DIR}", "--model", f"qwen3={FIXTURE_MODELS / 'qwen3_vl-tiny'}",
         "--model", f"gemma={FIXTURE_MODELS / 'gemma3-tiny'}", "--model", f"smol={FIXTURE_MODELS / 'idefics3-tiny'}",
         "--alias", "gemini-2.0-flash=qwen25", "--alias", "gemini-3-flash-preview=qwen3", "--alias", "gemini-2.5-flash=gemma",
         "--alias", "gemini-2.5-flash-lite=smol"],
    )  # fmt: skip
    yield server
    stop_server(server)


@pytest.mark.parametrize("alias, name, reference", [
    ("gemini-2.0-flash", "qwen25", "qwen2_5_vl-tiny"),
    ("gemini-3-flash-preview", "qwen3", "qwen3_vl-tiny"),
    ("gemini-2.5-flash", "gemma", "gemma3-tiny"),
    ("gemini-2.5-flash-lite", "smol", "idefics3-tiny"),
])  # fmt: skip
def test_families_count_and_answer_like_their_references(four_families, alias, name, reference):
    """Each family's processor sizes images its own way (Qwen2.5-VL: 28-pixel cells, Qwen3-VL: 32, Gemma 3: one
    fixed square, Idefics3: tiles plus a global tile): countTokens must equal each reference processor's count for every case (five image sizes
    each), and the greedy answer must be the reference's, whichever name or alias the request uses."""
    cases = sdkutil.load_reference(reference)
    client = sdkutil.make_client(four_families.url)
    for case in cases.values():
        for model in (name, alias):
            if sdkutil.system_text(case) is None:
                counted = client.models.count_tokens(model=model, contents=sdkutil.sdk_contents(case)).total_tokens
            else:
                # The SDK refuses system_instruction in count_tokens for the Gemini API: the answer's usage says it.
                answer = client.models.generate_content(
                    model=model, contents=sdkutil.sdk_contents(case), config=sdkutil.sdk_config(case, max_output_tokens=1)
                )
                counted = answer.usage_metadata.prompt_token_count
            assert counted == case["prompt_token_count"], (reference, case["name"], model)
    case = cases["caption_square"]
    response = client.models.generate_content(
        model=alias, contents=sdkutil.sdk_contents(case), config=types.GenerateContentConfig(max_output_tokens=case["max_new_tokens"])
    )
    assert response.model_version == name
    sdkutil.assert_reference_text(response.text, case)


def test_a_cache_serves_only_the_model_it_was_made_for(two_models):
    """As upstream: a cache made for one model is 400 INVALID_ARGUMENT with another (an alias of the same model
    is the same model)."""
    client = sdkutil.make_client(two_models.url)
    instruction = "Name the colour of the square and nothing else. " * 4
    cache = client.caches.create(model="fast", config=types.CreateCachedContentConfig(system_instruction=instruction))
    assert cache.usage_metadata.total_token_count >= 16
    config = types.GenerateContentConfig(cached_content=cache.name, max_output_tokens=3)
    for name in ("fast", "gemini-2.0-flash"):
        answer = client.models.generate_content(model=name, contents="Which colour?", config=config)
        assert answer.usage_metadata.cached_content_token_count == cache.usage_metadata.total_token_count
    with pytest.raises(errors.ClientError) as ei:
        client.models.generate_content(model="careful", contents="Which colour?", config=config)
    assert (ei.value.code, ei.value.status) == (400, "INVALID_ARGUMENT")
    assert "has to be the same" in ei.value.message
