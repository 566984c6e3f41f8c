"""The built-in toolkit (`glimpse serve` with no --model) on real photographs: the Debian darknet test images
(scripts/setup-deps.sh unpacks them into fixtures/photos) and a rendered text line. Boxes are held to hand-checked ones
(fixtures/expected/toolkit/hand_boxes.json) after the round trip through Gemini's box_2d; answers are the
documented rule-based forms (README, "The toolkit backend")."""

from __future__ import annotations

import base64
import io
import json
import subprocess

import httpx
import pytest
from google.genai import errors, types
from PIL import Image

import sdkutil
from conftest import start_server, stop_server

DARKNET = sdkutil.ROOT / "fixtures/photos"
HAND_BOXES = json.loads((sdkutil.ROOT / "fixtures/expected/toolkit/hand_boxes.json").read_text())
SEED_DETECT = sdkutil.SEED_DETECT
SEGMENT = sdkutil.segment_prompt("the person and the dog")


@pytest.fixture(scope="module")
def toolkit_url(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("toolkit"), "toolkit", [], fixture_model=False)
    yield server.url
    stop_server(server)


@pytest.fixture(scope="module")
def tk(toolkit_url):
    return sdkutil.make_client(toolkit_url)


def photo(name: str) -> types.Part:
    path = DARKNET / name
    assert path.is_file(), f"{path} is missing: scripts/setup-deps.sh unpacks Debian's darknet photos there"
    return types.Part.from_bytes(data=path.read_bytes(), mime_type="image/jpeg")


def size_of(name: str) -> tuple[int, int]:
    return Image.open(DARKNET / name).size


def to_pixels(box_2d: list[int], size: tuple[int, int]) -> list[float]:
    ymin, xmin, ymax, xmax = box_2d
    w, h = size
    return [xmin / 1000 * w, ymin / 1000 * h, xmax / 1000 * w, ymax / 1000 * h]


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def assert_hand_boxes_found(items: list[dict], image: str, only: set[str] | None = None) -> None:
    size = size_of(image)
    for obj in HAND_BOXES[image]:
        if "masks_only" in obj:
            continue
        if only is not None and not only & set(obj["labels"]):
            continue
        best = max((iou(to_pixels(i["box_2d"], size), obj["box"]) for i in items if i["label"] in obj["labels"]), default=0)
        assert best >= 0.5, f"{image}: no {obj['labels']} near {obj['box']} in {items}"


def test_models_lists_the_toolkit(toolkit_url):
    r = httpx.get(f"{toolkit_url}/v1beta/models", headers={"x-goog-api-key": sdkutil.API_KEY})
    assert r.status_code == 200
    assert [m["name"] for m in r.json()["models"]] == ["models/toolkit"]


def test_the_toolkit_runs_on_onnx_runtime(tk):
    # scripts/setup-deps.sh puts ONNX Runtime's library in models/toolkit/onnxruntime; the model says what runs it.
    assert tk.models.get(model="toolkit").description.endswith("(ONNX Runtime)")


def test_seed_detection_snippet_returns_real_boxes(tk):
    """The seed's detection snippet (Interactions API, JSON response format), image by data."""
    interaction = tk.interactions.create(
        model="gemini-3-flash-preview",
        input=[
            {"type": "text", "text": SEED_DETECT},
            {"type": "image", "data": sdkutil.b64((DARKNET / "dog.jpg").read_bytes()), "mime_type": "image/jpeg"},
        ],
        response_format={"type": "text", "mime_type": "application/json"},
    )
    items = json.loads(interaction.steps[-1].content[0].text)
    assert all(set(i) == {"box_2d", "label"} for i in items), items
    assert_hand_boxes_found(items, "dog.jpg")


@pytest.mark.parametrize("image", ["person.jpg", "giraffe.jpg", "horses.jpg"])
def test_generate_content_detection_on_real_photos(tk, image):
    r = tk.models.generate_content(model="gemini-2.0-flash", contents=[photo(image), SEED_DETECT])
    assert_hand_boxes_found(json.loads(r.text), image)


def test_named_objects_limit_the_detections(tk):
    prompt = "Find the dogs. Return box_2d as [ymin, xmin, ymax, xmax] normalized to 0-1000 with a label."
    r = tk.models.generate_content(model="gemini-2.0-flash", contents=[photo("person.jpg"), prompt])
    items = json.loads(r.text)
    assert [i["label"] for i in items] == ["dog"], items
    assert_hand_boxes_found(items, "person.jpg", only={"dog"})


# Ways people ask for boxes other than Gemini's own prompt: its documentation's words, OpenAI's and Ollama's examples.
BOX_PROMPTS = [
    "Detect all objects and return their bounding boxes as JSON.",
    "Detect the objects in this image.",
    "Find the bicycle.",
    "Locate the dog and the car",
    "Give me the bounding box of every object.",
]


@pytest.mark.parametrize("prompt", BOX_PROMPTS)
def test_other_phrasings_get_boxes(tk, prompt):
    r = tk.models.generate_content(model="gemini-2.0-flash", contents=[photo("dog.jpg"), prompt])
    items = json.loads(r.text)
    assert items and all(set(i) == {"box_2d", "label"} for i in items), (prompt, r.text)
    named = {word for word in ("bicycle", "dog", "car") if word in prompt}
    if named:
        assert {i["label"] for i in items} <= named | {"truck"}, (prompt, items)
    assert_hand_boxes_found(items, "dog.jpg", only=named or None)


GEMINI_POINTING = (
    "Point to no more than 10 items in the image. The label returned should be an identifying name for the object "
    'detected. The answer should follow the json format: [{"point": <point>, "label": <label1>}, ...]. The points '
    "are in [y, x] format normalized to 0-1000."
)


@pytest.mark.parametrize("prompt", [GEMINI_POINTING, "Point to the dog."])
def test_pointing_prompts_get_gemini_points(tk, prompt):
    """Gemini's pointing answer: `[{"point": [y, x], "label"}]` on 0-1000, each point inside its object."""
    r = tk.models.generate_content(model="gemini-2.0-flash", contents=[photo("dog.jpg"), prompt])
    items = json.loads(r.text)
    assert items and len(items) <= 10 and all(set(i) == {"point", "label"} for i in items), r.text
    w, h = size_of("dog.jpg")
    for obj in HAND_BOXES["dog.jpg"]:
        if prompt != GEMINI_POINTING and "dog" not in obj["labels"]:
            continue
        x0, y0, x1, y1 = obj["box"]
        inside = [i for i in items if i["label"] in obj["labels"]
                  and x0 <= i["point"][1] / 1000 * w <= x1 and y0 <= i["point"][0] / 1000 * h <= y1]
        assert inside, f"no point inside the {obj['labels']} at {obj['box']}: {items}"
    if prompt != GEMINI_POINTING:
        assert [i["label"] for i in items] == ["dog"], items


def test_ask_annotate_draws_points(tmp_path):
    out = tmp_path / "points.png"
    run = subprocess.run(
        [str(sdkutil.GLIMPSE_BIN), "ask", str(DARKNET / "dog.jpg"), "Point to the dog.", "--annotate", str(out)],
        capture_output=True, text=True, timeout=300, cwd=sdkutil.ROOT,
    )
    assert run.returncode == 0, run.stderr
    [item] = json.loads(run.stdout)
    drawn, original = Image.open(out).convert("RGB"), Image.open(DARKNET / "dog.jpg").convert("RGB")
    y, x = item["point"]
    px, py = round(x / 1000 * drawn.width), round(y / 1000 * drawn.height)
    assert drawn.getpixel((px, py)) != original.getpixel((px, py)), "a dot where the point is"
    assert drawn.getpixel((5, 5)) == original.getpixel((5, 5)), "nothing drawn far from it"


def test_segmentation_masks_cover_the_objects(tk):
    r = tk.models.generate_content(model="gemini-2.0-flash", contents=[photo("person.jpg"), SEGMENT])
    items = json.loads(r.text)
    assert_hand_boxes_found(items, "person.jpg")
    size = size_of("person.jpg")
    for item in items:
        assert list(item) == ["box_2d", "mask", "label"], item
        png = base64.b64decode(item["mask"].removeprefix("data:image/png;base64,"))
        mask = Image.open(io.BytesIO(png))
        x0, y0, x1, y1 = to_pixels(item["box_2d"], size)
        assert abs(mask.width - (x1 - x0)) <= 2 and abs(mask.height - (y1 - y0)) <= 2, (mask.size, item["box_2d"])
        fill = sum(mask.convert("L").histogram()[128:]) / (mask.width * mask.height)
        assert 0.15 < fill < 0.9, f"{item['label']}: mask fills {fill:.2f} of its box"


def test_caption_names_what_is_there(tk):
    r = tk.models.generate_content(model="gemini-2.0-flash", contents=["Caption this image.", photo("dog.jpg")])
    assert "dog" in r.text and "bicycle" in r.text, r.text
    assert r.usage_metadata.prompt_token_count == 3 + 256
    assert r.usage_metadata.candidates_token_count == len(r.text.split())


def test_counting_and_presence(tk):
    r = tk.models.generate_content(model="gemini-2.0-flash", contents=[photo("giraffe.jpg"), "How many zebras are there?"])
    assert r.text == "There is 1 zebra.", r.text
    r = tk.models.generate_content(model="gemini-2.0-flash", contents=[photo("giraffe.jpg"), "Is there a giraffe?"])
    assert r.text.startswith("Yes: a giraffe"), r.text
    r = tk.models.generate_content(model="gemini-2.0-flash", contents=[photo("giraffe.jpg"), "Is there a cat in this picture?"])
    assert r.text == "No, I don't see any cat.", r.text
    r = tk.models.generate_content(model="gemini-2.0-flash", contents=[photo("person.jpg"), "Are there any animals?"])
    assert r.text.startswith("Yes: a dog"), r.text


def test_reads_text(tk):
    line = types.Part.from_bytes(data=(sdkutil.IMAGES_DIR / "ocr_line.png").read_bytes(), mime_type="image/png")
    r = tk.models.generate_content(model="gemini-2.0-flash", contents=[line, "What does the text say?"])
    assert r.text == "Glimpse reads 42 words"


def test_classification_with_an_enum(tk):
    config = types.GenerateContentConfig(
        response_mime_type="text/x.enum", response_schema={"type": "STRING", "enum": ["cat", "horse", "dog", "car"]}
    )
    r = tk.models.generate_content(model="gemini-2.0-flash", contents=[photo("dog.jpg"), "What animal is this?"], config=config)
    assert r.text == "dog"
    r = tk.models.generate_content(model="gemini-2.0-flash", contents=[photo("dog.jpg"), "What breed is this dog?"])
    assert r.text.startswith("This looks like a"), r.text


def test_free_form_questions_get_an_honest_answer(tk):
    r = tk.models.generate_content(model="gemini-2.0-flash", contents=[photo("dog.jpg"), "Why is the dog waiting?"])
    assert "vision-language model" in r.text and "--model" in r.text, r.text


def test_unfillable_schema_is_refused_before_work(tk):
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_schema={"type": "OBJECT", "properties": {"mood": {"type": "STRING"}}},
    )
    with pytest.raises(errors.ClientError) as ei:
        tk.models.generate_content(model="gemini-2.0-flash", contents=[photo("dog.jpg"), "How does the dog feel?"], config=config)
    assert ei.value.code == 400 and ei.value.status == "FAILED_PRECONDITION"


def test_openai_chat_completions(toolkit_url):
    import openai

    oai = openai.OpenAI(api_key=sdkutil.API_KEY, base_url=f"{toolkit_url}/v1beta/openai/", max_retries=0)
    data = base64.b64encode((DARKNET / "horses.jpg").read_bytes()).decode()
    r = oai.chat.completions.create(
        model="gemini-2.0-flash",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "How many horses are there?"},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}},
        ]}],
    )
    text = r.choices[0].message.content
    assert text.startswith("There are ") and text.endswith(" horses."), text
    assert int(text.split()[2]) >= 3, text


def test_ask_prints_gemini_detections():
    """The README's main command: `glimpse ask PHOTO PROMPT` with no model."""
    out = subprocess.run(
        [str(sdkutil.GLIMPSE_BIN), "ask", str(DARKNET / "dog.jpg"), SEED_DETECT],
        capture_output=True, text=True, timeout=300, cwd=sdkutil.ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert_hand_boxes_found(json.loads(out.stdout), "dog.jpg")
