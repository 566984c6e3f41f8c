"""The bundled `shapes` model (`glimpse serve --model shapes`): a small Qwen2.5-VL trained by scripts/shapes on
generated scenes, loaded through the same mistralrs path as a downloaded Qwen2.5-VL, answering through the Gemini
and OpenAI APIs. The scene asked about comes from a seed that training never used (31337) and is picked by what it
shows (the first with a single red circle), not by how the model does on it; the model's held-out scores over 500
scenes, measured through the HTTP API by scripts/shapes/evaluate.py, are in models/shapes/README.md."""

from __future__ import annotations

import base64
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from google.genai import types

import sdkutil
from conftest import start_server, stop_server

sys.path.insert(0, str(sdkutil.ROOT / "scripts" / "shapes"))
import scenes  # noqa: E402

TEST_SEED = 31337
MODEL = "shapes"


def first_scene(wanted) -> scenes.Scene:
    for index in range(1000):
        scene = scenes.make_scene(TEST_SEED, index)
        if wanted(scene):
            return scene
    raise AssertionError("no such scene in the first 1000")


RED_CIRCLE = first_scene(lambda s: [o.label for o in s.objects] == ["red circle"])
# Two shapes a third of the picture apart left to right, each at least 90% visible.
APART = first_scene(lambda s: len(s.objects) == 2 and all(o.visible >= 0.9 for o in s.objects)
                    and abs(s.objects[0].center[0] - s.objects[1].center[0]) >= s.width / 3)


@pytest.fixture(scope="module")
def shapes_url(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("shapes"), "shapes", ["--model", MODEL])
    yield server.url
    stop_server(server)


@pytest.fixture(scope="module")
def client(shapes_url):
    return sdkutil.make_client(shapes_url)


def ask(client, scene: scenes.Scene, question: str) -> str:
    part = types.Part.from_bytes(data=scene.png(), mime_type="image/png")
    return client.models.generate_content(model=MODEL, contents=[part, question]).text.strip()


def test_models_get_names_shapes(shapes_url):
    r = httpx.get(f"{shapes_url}/v1beta/models/{MODEL}", headers={"x-goog-api-key": sdkutil.API_KEY})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == f"models/{MODEL}"


def test_a_red_circle_is_called_a_red_circle(client):
    assert ask(client, RED_CIRCLE, "Caption this image.") == "A red circle."
    assert ask(client, RED_CIRCLE, "What colour is the circle?") == "red"
    assert ask(client, RED_CIRCLE, "Is there a red circle?") == "Yes"
    assert ask(client, RED_CIRCLE, "How many shapes are there?") == "1"


def boxes(client, scene: scenes.Scene, prompt: str) -> dict[str, list]:
    """Label -> Gemini `box_2d` of a detection answer; the labels must be the scene's."""
    answer = ask(client, scene, f"{prompt} {scenes.GEMINI_BOX}")
    items = json.loads(answer)
    assert sorted(item["label"] for item in items) == sorted(o.label for o in scene.objects), answer
    return {item["label"]: item["box_2d"] for item in items}


def assert_covers(box: list, scene: scenes.Scene, obj) -> None:
    """The box covers the shape: IoU >= 0.5 with its true box on the 0-1000 grid, and its centre inside."""
    truth = scenes.gemini_box(obj.box, scene.width, scene.height)
    assert scenes.box_iou(box, truth) >= 0.5, (obj.label, box, truth)
    cy, cx = (truth[0] + truth[2]) / 2, (truth[1] + truth[3]) / 2
    assert box[0] <= cy <= box[2] and box[1] <= cx <= box[3], (obj.label, box, truth)


def test_the_red_circle_is_boxed_where_it_is(client):
    """Gemini's detection prompt: the model answers Qwen2.5-VL's `bbox_2d` in resized-image pixels, and Glimpse's
    grounding adapter turns it into `box_2d` on the original image's 0-1000 grid, which must cover the circle."""
    found = boxes(client, RED_CIRCLE, "Detect the red circle.")
    assert_covers(found["red circle"], RED_CIRCLE, RED_CIRCLE.objects[0])


def test_each_shape_is_boxed_where_it_is(client):
    """"Detect all shapes": one box per shape of a two-shape scene, each covering its shape. The held-out mean
    IoU over 500 scenes is in the model card."""
    found = boxes(client, APART, "Detect all shapes in the image.")
    for obj in APART.objects:
        assert_covers(found[obj.label], APART, obj)


def test_which_shape_is_left_of_which(client):
    # Asked both ways round, so a model that answers the same whatever the positions fails.
    left, right = sorted(APART.objects, key=lambda o: o.center[0])
    assert ask(client, APART, f"Is the {left.label} to the left of the {right.label}?") == "Yes"
    assert ask(client, APART, f"Is the {right.label} to the left of the {left.label}?") == "No"


def test_requests_sent_together_get_their_own_answers(client):
    # Sent at once, the requests share the engine's batches; each must still get the answer it gets alone
    # (mistralrs 0.8.1 traded tokens between them: vendor/README.md, seventh fix).
    asked = [(scenes.make_scene(TEST_SEED, index), "Caption this image.") for index in range(6)]
    asked += [(RED_CIRCLE, "Caption this image."), (RED_CIRCLE, "How many shapes are there?")]
    alone = [ask(client, scene, question) for scene, question in asked]
    with ThreadPoolExecutor(len(asked)) as pool:
        together = list(pool.map(lambda item: ask(client, *item), asked))
    assert together == alone
    assert together[-2:] == ["A red circle.", "1"]


def test_stop_sequences_end_the_answer_before_them(client):
    """As Gemini: the answer ends before the first stop sequence, which is never shown, unary or streamed, even
    where the model writes it inside a longer token (" circle")."""
    part = types.Part.from_bytes(data=RED_CIRCLE.png(), mime_type="image/png")
    config = types.GenerateContentConfig(stop_sequences=["circle"])
    r = client.models.generate_content(model=MODEL, contents=[part, "Caption this image."], config=config)
    assert r.text == "A red "
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    chunks = [c.text or "" for c in client.models.generate_content_stream(model=MODEL, contents=[part, "Caption this image."], config=config)]
    assert "".join(chunks) == "A red " and not any("c" in c for c in chunks), chunks


def test_the_rendered_word_is_read(client):
    assert ask(client, RED_CIRCLE, "What word is written in the image?") == RED_CIRCLE.word


def test_openai_chat_completions_caption(shapes_url):
    import openai

    oai = openai.OpenAI(api_key=sdkutil.API_KEY, base_url=f"{shapes_url}/v1beta/openai/", max_retries=0)
    data_url = "data:image/png;base64," + base64.b64encode(RED_CIRCLE.png()).decode()
    r = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url}},
        {"type": "text", "text": "Caption this image."},
    ]}])
    assert r.choices[0].message.content.strip() == "A red circle."


def test_a_prefix_hit_answers_as_the_full_prompt(tmp_path):
    """The engine keeps finished answers' attention state (`--prefix-cache-entries`, on by default for Qwen2.5-VL)
    and continues a later prompt that begins the same way from it: several questions about one picture, the same
    request again, a conversation's next turn, the picture under another system instruction, and a
    `cachedContent`. Every answer must be the one a server without that reuse gives."""
    servers = {reuse: start_server(tmp_path, f"reuse-{reuse}", [
        "--model", MODEL, "--cache-min-tokens", "16", "--prefix-cache-entries", "16" if reuse else "0"])
        for reuse in (True, False)}
    try:
        answers = {}
        for reuse, server in servers.items():
            c = sdkutil.make_client(server.url)
            got = []
            for index in range(2):
                scene = scenes.make_scene(TEST_SEED, index)
                picture = types.Part.from_bytes(data=scene.png(), mime_type="image/png")
                plain = types.GenerateContentConfig(temperature=0)
                for system in ("You answer questions about pictures of shapes.", "Answer briefly."):
                    config = types.GenerateContentConfig(temperature=0, system_instruction=system)
                    for question in ("What shapes are in this picture?", "How many shapes are there?",
                                     "How many shapes are there?", "Detect the shapes, box_2d"):
                        got.append(c.models.generate_content(model=MODEL, contents=[picture, question], config=config).text)
                first = c.models.generate_content(model=MODEL, contents=[picture, "What shapes are in this picture?"],
                                                  config=plain).text
                turn = [types.Content(role="user", parts=[picture, types.Part.from_text(text="What shapes are in this picture?")]),
                        types.Content(role="model", parts=[types.Part.from_text(text=first)]),
                        types.Content(role="user", parts=[types.Part.from_text(text="How many shapes are there?")])]
                got.append(c.models.generate_content(model=MODEL, contents=turn, config=plain).text)
                cache = c.caches.create(model=MODEL, config=types.CreateCachedContentConfig(
                    contents=[types.Content(role="user", parts=[picture])], system_instruction="Answer briefly."))
                for question in ("How many shapes are there?", "Detect the shapes, box_2d"):
                    reply = c.models.generate_content(model=MODEL, contents=question, config=types.GenerateContentConfig(
                        temperature=0, cached_content=cache.name))
                    assert reply.usage_metadata.cached_content_token_count == cache.usage_metadata.total_token_count
                    got.append(reply.text)
            answers[reuse] = got
        assert answers[True] == answers[False]
    finally:
        for server in servers.values():
            stop_server(server)
