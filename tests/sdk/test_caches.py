"""Context caching through the google-genai SDK as its documentation uses it (`client.caches.create` with images
and a system instruction, `cached_content=` in generate_content and streams, `get` / `list` / `update` / `delete`),
through REST countTokens and the OpenAI layer, against the built-in toolkit on the Debian darknet photos: an answer
with the cache is the answer with the same contents sent in full, `cachedContentTokenCount` is the cache's size,
and Gemini's rules hold (minimum size, TTL, one model per cache, no system instruction beside a cache, per-key
isolation, 404 once deleted or expired). A cache made on one server is used after a restart: the database holds it."""

from __future__ import annotations

import datetime
import time

import httpx
import pytest
from google import genai
from google.genai import errors, types
from openai import OpenAI

import sdkutil
from conftest import start_server, stop_server

MODEL = "gemini-2.5-flash"
DETECT = "Detect the objects in the image, box_2d"
SYSTEM = "You label photographs for a wildlife archive."
# The toolkit counts 256 tokens per image: four photos pass Gemini's minimum of 1,024 tokens for a cache.
PHOTOS = ["eagle.jpg", "giraffe.jpg", "horses.jpg", "dog.jpg"]


def photo_part(name: str) -> types.Part:
    path = sdkutil.ROOT / "fixtures/photos" / name
    assert path.is_file(), f"{path} is missing: scripts/setup-deps.sh unpacks Debian's darknet photos there"
    return types.Part.from_bytes(data=path.read_bytes(), mime_type="image/jpeg")


def client_for(url: str, key: str = sdkutil.API_KEY) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=url, retry_options=types.HttpRetryOptions(attempts=1), timeout=sdkutil.REQUEST_TIMEOUT_S * 1000))


def photos_content() -> types.Content:
    return types.Content(role="user", parts=[photo_part(name) for name in PHOTOS])


def make_cache(client: genai.Client, **config) -> types.CachedContent:
    return client.caches.create(model=MODEL, config=types.CreateCachedContentConfig(
        contents=[photos_content()], system_instruction=SYSTEM, **config))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("caches")
    server = start_server(tmp, "caches", ["--data-dir", str(tmp / "data")], fixture_model=False)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def tk(server):
    return client_for(server.url)


def test_a_cached_prompt_answers_as_the_full_prompt_and_reports_its_tokens(tk, server):
    cache = make_cache(tk, ttl="300s", display_name="four photos")
    assert cache.name.startswith("cachedContents/") and cache.display_name == "four photos"
    assert cache.model == f"models/{MODEL}"
    size = cache.usage_metadata.total_token_count
    assert size >= 4 * 256
    lifetime = (cache.expire_time - cache.create_time).total_seconds()
    assert 299 <= lifetime <= 301

    cached = tk.models.generate_content(model=MODEL, contents=DETECT,
                                        config=types.GenerateContentConfig(cached_content=cache.name))
    full = tk.models.generate_content(model=MODEL, contents=[photos_content(), DETECT],
                                      config=types.GenerateContentConfig(system_instruction=SYSTEM))
    assert cached.text == full.text and "horse" not in cached.text and "dog" in cached.text
    assert cached.usage_metadata.cached_content_token_count == size
    assert cached.usage_metadata.prompt_token_count == full.usage_metadata.prompt_token_count
    assert full.usage_metadata.cached_content_token_count is None

    streamed = list(tk.models.generate_content_stream(model=MODEL, contents=DETECT,
                                                      config=types.GenerateContentConfig(cached_content=cache.name)))
    assert "".join(c.text or "" for c in streamed) == full.text
    assert streamed[-1].usage_metadata.cached_content_token_count == size

    r = httpx.post(f"{server.url}/v1beta/models/{MODEL}:countTokens", headers={"x-goog-api-key": sdkutil.API_KEY},
                   json={"generateContentRequest": {"model": f"models/{MODEL}", "cachedContent": cache.name,
                                                    "contents": [{"role": "user", "parts": [{"text": DETECT}]}]}})
    assert r.status_code == 200, r.text
    assert r.json()["cachedContentTokenCount"] == size
    assert r.json()["totalTokens"] == full.usage_metadata.prompt_token_count

    # The OpenAI layer names a cache as Gemini's documentation shows.
    openai = OpenAI(base_url=f"{server.url}/v1beta/openai/", api_key=sdkutil.API_KEY, max_retries=0)
    completion = openai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": DETECT}],
        extra_body={"extra_body": {"google": {"cached_content": cache.name}}})
    assert completion.choices[0].message.content == full.text
    assert completion.usage.prompt_tokens_details.cached_tokens == size


def test_caches_are_listed_updated_and_deleted_per_key(tk, server):
    cache = make_cache(tk, ttl="600s")
    assert cache.name in [c.name for c in tk.caches.list(config={"page_size": 1})]
    got = tk.caches.get(name=cache.name)
    assert got.usage_metadata.total_token_count == cache.usage_metadata.total_token_count

    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=3)
    updated = tk.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(expire_time=later))
    assert abs((updated.expire_time - later).total_seconds()) < 1
    updated = tk.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="60s"))
    assert 55 <= (updated.expire_time - datetime.datetime.now(datetime.timezone.utc)).total_seconds() <= 61

    other = client_for(server.url, "another-key")
    assert cache.name not in [c.name for c in other.caches.list()]
    for call in (lambda: other.caches.get(name=cache.name),
                 lambda: other.models.generate_content(model=MODEL, contents=DETECT,
                                                       config=types.GenerateContentConfig(cached_content=cache.name))):
        with pytest.raises(errors.ClientError) as excinfo:
            call()
        assert (excinfo.value.code, excinfo.value.status) == (403, "PERMISSION_DENIED")

    tk.caches.delete(name=cache.name)
    for call in (lambda: tk.caches.get(name=cache.name),
                 lambda: tk.models.generate_content(model=MODEL, contents=DETECT,
                                                    config=types.GenerateContentConfig(cached_content=cache.name)),
                 lambda: tk.caches.get(name="cachedContents/nosuchcache")):
        with pytest.raises(errors.ClientError) as excinfo:
            call()
        assert (excinfo.value.code, excinfo.value.status) == (404, "NOT_FOUND")


def test_gemini_rules_for_caches(tk, server):
    with pytest.raises(errors.ClientError) as excinfo:
        tk.caches.create(model=MODEL, config=types.CreateCachedContentConfig(
            contents=[photo_part("dog.jpg")], system_instruction=SYSTEM))
    assert excinfo.value.code == 400
    assert "Cached content is too small. total_token_count=" in excinfo.value.message
    assert "min_total_token_count=1024" in excinfo.value.message

    cache = make_cache(tk, ttl="1s")
    with pytest.raises(errors.ClientError) as excinfo:
        tk.models.generate_content(model=MODEL, contents=DETECT, config=types.GenerateContentConfig(
            cached_content=cache.name, system_instruction="Another instruction"))
    assert excinfo.value.code == 400 and "system_instruction" in excinfo.value.message
    time.sleep(1.2)
    with pytest.raises(errors.ClientError) as excinfo:
        tk.caches.get(name=cache.name)
    assert excinfo.value.code == 404

    headers = {"x-goog-api-key": sdkutil.API_KEY}
    for body in ({"model": f"models/{MODEL}", "ttl": "soon", "systemInstruction": {"parts": [{"text": "x"}]}},
                 {"model": f"models/{MODEL}", "ttl": "60s", "expireTime": "2030-01-01T00:00:00Z"},
                 {"ttl": "60s", "systemInstruction": {"parts": [{"text": "x"}]}}):
        r = httpx.post(f"{server.url}/v1beta/cachedContents", headers=headers, json=body)
        sdkutil.assert_google_error(r, 400, "INVALID_ARGUMENT")


def test_a_cache_outlives_its_file_and_the_server(tmp_path):
    """A cache made from an uploaded file keeps the image after the file is deleted, and a restarted server
    (no cache in its memory) answers from the database."""
    data_dir = tmp_path / "data"
    server = start_server(tmp_path, "first", ["--data-dir", str(data_dir)], fixture_model=False)
    try:
        client = client_for(server.url)
        uploaded = [client.files.upload(file=sdkutil.ROOT / "fixtures/photos" / name) for name in PHOTOS]
        parts = [types.Part.from_uri(file_uri=f.uri, mime_type=f.mime_type) for f in uploaded]
        cache = client.caches.create(model=MODEL, config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=parts)], ttl="600s"))
        before = client.models.generate_content(model=MODEL, contents=DETECT,
                                                config=types.GenerateContentConfig(cached_content=cache.name)).text
        for f in uploaded:
            client.files.delete(name=f.name)
    finally:
        stop_server(server)
    server = start_server(tmp_path, "second", ["--data-dir", str(data_dir)], fixture_model=False)
    try:
        client = client_for(server.url)
        after = client.models.generate_content(model=MODEL, contents=DETECT,
                                               config=types.GenerateContentConfig(cached_content=cache.name))
        assert after.text == before and "dog" in after.text
        assert after.usage_metadata.cached_content_token_count == cache.usage_metadata.total_token_count
    finally:
        stop_server(server)
