"""Object detection in Gemini's format (box_2d = [ymin, xmin, ymax, xmax] on 0–1000), with the seeds' own
detection and segmentation prompts, through generateContent (google-genai) and the Interactions API.

The fixture model has random weights, so what it detects is noise; what these tests hold is the contract:
the answer is always a parseable list of {box_2d, label} with ordered boxes inside 0–1000 (the family's native
box schema is enforced by constrained decoding and rewritten into Gemini's form), detection images are sized
like any other, and a segmentation request says clearly that no mask model is configured."""

from __future__ import annotations

import io
import json
import sys

import pytest
from google.genai import errors, types
from PIL import Image

import sdkutil
from conftest import start_server, stop_server

sys.path.insert(0, str(sdkutil.ROOT / "scripts" / "shapes"))
import scenes  # noqa: E402

SEED_DETECT = sdkutil.SEED_DETECT
SEED_SEGMENT = sdkutil.segment_prompt("the wooden and glass items")
# Gemini's segmentation prompt as the shapes model learned it (one line, "the shapes")
SHAPES_SEGMENT = f"Give the segmentation masks for the shapes. {scenes.GEMINI_SEGMENT}"
# A constrained answer holds at most 50 short items; this bound lets even the random model finish.
MAX_TOKENS = 3000


def photo_png(width: int, height: int) -> bytes:
    """A non-square picture with two shapes (content does not matter to a random model; size does)."""
    img = Image.new("RGB", (width, height), (240, 240, 230))
    img.paste((200, 30, 30), (width // 10, height // 8, width // 2, height // 2))
    img.paste((30, 30, 200), (width // 2, height // 2, width - width // 10, height - height // 8))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def assert_gemini_detections(text: str) -> list[dict]:
    items = json.loads(text)
    assert isinstance(items, list), text
    for item in items:
        assert set(item) == {"box_2d", "label"}, item
        box = item["box_2d"]
        assert len(box) == 4 and all(isinstance(v, int) and 0 <= v <= 1000 for v in box), item
        ymin, xmin, ymax, xmax = box
        assert ymin <= ymax and xmin <= xmax, item
        assert isinstance(item["label"], str)
    return items


@pytest.mark.parametrize("size", [(192, 108), (100, 267)])
def test_seed_detection_through_generate_content(client, size):
    image = types.Part.from_bytes(data=photo_png(*size), mime_type="image/png")
    response = client.models.generate_content(
        model=sdkutil.SEED_MODEL,
        contents=[image, SEED_DETECT],
        config=types.GenerateContentConfig(response_mime_type="application/json", max_output_tokens=MAX_TOKENS),
    )
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert_gemini_detections(response.text)


GEMINI_POINTING = (
    "Point to no more than 10 items in the image. The label returned should be an identifying name for the object "
    'detected. The answer should follow the json format: [{"point": <point>, "label": <label1>}, ...]. The points '
    "are in [y, x] format normalized to 0-1000."
)


@pytest.mark.parametrize("prompt", [GEMINI_POINTING, "Point to the red square.", "Detect all objects and return their bounding boxes as JSON."])
def test_points_and_other_box_phrasings_arrive_in_gemini_form(client, prompt):
    """Gemini's pointing prompt and "point to …" get `[{"point": [y, x], "label"}]` (the family's `point_2d`
    converted); "bounding boxes" in other words get `box_2d` as Gemini's own prompt does."""
    response = client.models.generate_content(
        model=sdkutil.SEED_MODEL,
        contents=[types.Part.from_bytes(data=photo_png(192, 108), mime_type="image/png"), prompt],
        config=types.GenerateContentConfig(max_output_tokens=MAX_TOKENS),
    )
    if "bounding" in prompt:
        assert_gemini_detections(response.text)
        return
    items = json.loads(response.text)
    assert isinstance(items, list), response.text
    for item in items:
        assert set(item) == {"point", "label"}, item
        assert len(item["point"]) == 2 and all(isinstance(v, int) and 0 <= v <= 1000 for v in item["point"]), item


def test_detection_without_json_mode_still_parses(client):
    """The segmentation-style prompt asks for JSON in words only; the answer must parse all the same."""
    response = client.models.generate_content(
        model=sdkutil.SEED_MODEL,
        contents=[types.Part.from_bytes(data=photo_png(160, 90), mime_type="image/png"), SEED_DETECT],
        config=types.GenerateContentConfig(max_output_tokens=MAX_TOKENS),
    )
    assert_gemini_detections(response.text)


def test_streamed_detection_arrives_converted(client):
    chunks = list(
        client.models.generate_content_stream(
            model=sdkutil.SEED_MODEL,
            contents=[types.Part.from_bytes(data=photo_png(160, 90), mime_type="image/png"), SEED_DETECT],
            config=types.GenerateContentConfig(response_mime_type="application/json", max_output_tokens=MAX_TOKENS),
        )
    )
    assert_gemini_detections("".join(c.text or "" for c in chunks))


def test_seed_detection_through_interactions(client):
    """The seed's Interactions detection snippet: response_format text + application/json, no schema."""
    interaction = client.interactions.create(
        model="gemini-3-flash-preview",
        input=[
            {"type": "text", "text": SEED_DETECT},
            {"type": "image", "data": sdkutil.b64(photo_png(300, 120)), "mime_type": "image/png"},
        ],
        response_format={"type": "text", "mime_type": "application/json"},
        generation_config={"max_output_tokens": MAX_TOKENS},
    )
    assert_gemini_detections(interaction.steps[-1].content[0].text)


def test_detection_images_are_sized_like_any_other(client):
    """A detection prompt's image gets the processor's own budget (the fixture caps an image at 64 tokens), as a
    caption prompt's does: a model grounds at the resolution its folder declares (the trained `shapes` model
    fails on larger inputs). A client-chosen resolution wins, and countTokens agrees with usageMetadata."""
    image = types.Part.from_bytes(data=photo_png(800, 700), mime_type="image/png")

    def usage(prompt, **config):
        response = client.models.generate_content(
            model=sdkutil.SEED_MODEL, contents=[image, prompt], config=types.GenerateContentConfig(max_output_tokens=MAX_TOKENS, **config)
        )
        details = {d.modality.name: d.token_count for d in response.usage_metadata.prompt_tokens_details}
        return details["IMAGE"], response.usage_metadata.prompt_token_count

    caption, _ = usage("Caption this image.")
    detect, detect_total = usage(SEED_DETECT)
    assert caption == detect <= 64, (caption, detect)
    assert client.models.count_tokens(model=sdkutil.SEED_MODEL, contents=[image, SEED_DETECT]).total_tokens == detect_total
    low, _ = usage(SEED_DETECT, media_resolution=types.MediaResolution.MEDIA_RESOLUTION_LOW)
    assert detect < low <= 280, (low, detect)


def test_segmentation_without_a_mask_model_is_a_clear_error(client):
    image = types.Part.from_bytes(data=photo_png(200, 100), mime_type="image/png")
    with pytest.raises(errors.ClientError) as ei:
        client.models.generate_content(model=sdkutil.SEED_MODEL, contents=[SEED_SEGMENT, image])
    assert (ei.value.code, ei.value.status) == (400, "FAILED_PRECONDITION")
    assert "mask model" in ei.value.message and "--mask-model" in ei.value.message


def test_seed_segmentation_rest_through_interactions(http):
    """The seed's segmentation snippet as raw REST (it uses `config`, which only raw callers can send)."""
    body = {
        "model": "gemini-3-flash-preview",
        "input": [
            {"type": "text", "text": SEED_SEGMENT},
            {"type": "image", "data": sdkutil.b64(photo_png(200, 100)), "mime_type": "image/png"},
        ],
        "config": {"thinking_level": "minimal"},
    }
    r = http.post("/v1beta/interactions", json=body)
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"]["code"] == "failed_precondition" and "mask model" in r.json()["error"]["message"]


def test_no_grounding_passes_answers_through(tmp_path):
    """--no-grounding: no box schema, no rewriting, no mask check: the model's own answer comes back."""
    server = start_server(tmp_path, "no-grounding", ["--no-grounding"])
    try:
        plain = sdkutil.make_client(server.url)
        image = types.Part.from_bytes(data=photo_png(200, 100), mime_type="image/png")
        response = plain.models.generate_content(
            model=sdkutil.SEED_MODEL, contents=[SEED_SEGMENT, image], config=types.GenerateContentConfig(max_output_tokens=8)
        )
        assert response.usage_metadata.candidates_token_count == 8
        assert not response.text.startswith('[{"box_2d"')
    finally:
        stop_server(server)


def two_shape_scene() -> scenes.Scene:
    """The first scene with two or more shapes of seed 31337 (a seed training never used)."""
    return next(s for s in map(lambda i: scenes.make_scene(31337, i), range(100)) if len(s.objects) >= 2)


def mask_pixels(box: list[int], width: int, height: int) -> tuple[int, int]:
    """The size in pixels of the image region a Gemini box covers (what `mask` must cover)."""
    ymin, xmin, ymax, xmax = box

    def px(v, size):
        return int(v / 1000 * size + 0.5)

    x0, y0 = min(px(xmin, width), width - 1), min(px(ymin, height), height - 1)
    x1, y1 = max(min(px(xmax, width), width), x0 + 1), max(min(px(ymax, height), height), y0 + 1)
    return x1 - x0, y1 - y0


@pytest.fixture(scope="module")
def mask_server(tmp_path_factory):
    """The trained `shapes` model (a random model may well answer an empty list) with the SAM fixture."""
    sam = str(sdkutil.ROOT / "fixtures/models/sam-tiny")
    server = start_server(tmp_path_factory.mktemp("masks"), "masks", ["--model", "shapes", "--mask-model", sam])
    yield server
    stop_server(server)


def assert_gemini_segmentation(text: str, width: int, height: int) -> list[dict]:
    import base64

    items = json.loads(text)
    assert isinstance(items, list) and items, text[:300]
    for item in items:
        assert list(item) == ["box_2d", "mask", "label"], list(item)
        assert all(isinstance(v, int) and 0 <= v <= 1000 for v in item["box_2d"])
        assert item["mask"].startswith("data:image/png;base64,")
        mask = Image.open(io.BytesIO(base64.b64decode(item["mask"].removeprefix("data:image/png;base64,"))))
        assert mask.format == "PNG" and mask.mode == "L", (mask.format, mask.mode)
        assert mask.size == mask_pixels(item["box_2d"], width, height), (mask.size, item["box_2d"])
    return items


def test_seed_segmentation_with_a_mask_model(mask_server):
    """The Gemini segmentation prompt on a scene of the shapes world: every item has box_2d, a box-sized PNG
    probability map and a label. (The SAM fixture has random weights: the masks' content is not asserted.)"""
    scene = two_shape_scene()
    client = sdkutil.make_client(mask_server.url)
    response = client.models.generate_content(
        model="shapes",
        contents=[types.Part.from_bytes(data=scene.png(), mime_type="image/png"), SHAPES_SEGMENT],
        config=types.GenerateContentConfig(max_output_tokens=MAX_TOKENS),
    )
    assert_gemini_segmentation(response.text, scene.width, scene.height)


def test_seed_segmentation_rest_through_interactions_with_a_mask_model(mask_server):
    import httpx

    scene = two_shape_scene()
    body = {
        "model": "shapes",
        "input": [
            {"type": "text", "text": SHAPES_SEGMENT},
            {"type": "image", "data": sdkutil.b64(scene.png()), "mime_type": "image/png"},
        ],
        "config": {"thinking_level": "minimal", "max_output_tokens": MAX_TOKENS},
    }
    r = httpx.post(f"{mask_server.url}/v1beta/interactions", json=body, headers={"x-goog-api-key": sdkutil.API_KEY}, timeout=sdkutil.REQUEST_TIMEOUT_S)
    assert r.status_code == 200, r.text[:300]
    assert_gemini_segmentation(r.json()["steps"][-1]["content"][0]["text"], scene.width, scene.height)


def test_the_toolkit_isnet_masks_serve_a_vlm(tmp_path_factory):
    """`--mask-model isnet`: the built-in toolkit's ISNet fills `mask` for a vision-language model's boxes."""
    server = start_server(tmp_path_factory.mktemp("isnet"), "isnet-masks", ["--model", "shapes", "--mask-model", "isnet"])
    try:
        client = sdkutil.make_client(server.url)
        scene = two_shape_scene()
        response = client.models.generate_content(
            model="shapes",
            contents=[types.Part.from_bytes(data=scene.png(), mime_type="image/png"), SHAPES_SEGMENT],
            config=types.GenerateContentConfig(max_output_tokens=MAX_TOKENS),
        )
        assert_gemini_segmentation(response.text, scene.width, scene.height)
    finally:
        stop_server(server)
