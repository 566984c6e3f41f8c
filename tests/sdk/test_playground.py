"""The playground page (`/`) in real Chromium (Debian's `chromium`, driven by playwright-core from tests/js):
load it, enter a key, upload an image, run the detection preset on the bundled model through the streamed
Gemini API (images inline, then through the File API), and check that the overlay boxes sit where the JSON
answer puts them; run the segmentation preset on a server with a mask model and check each box carries its
mask. The screenshots are kept as test artefacts in target/test-artifacts/."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest
from PIL import Image

import sdkutil
from conftest import start_server, stop_server

JS_DIR = sdkutil.REPO_ROOT / "tests" / "js"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = sdkutil.REPO_ROOT / "target" / "test-artifacts"

needs_browser = pytest.mark.skipif(
    shutil.which("node") is None or not os.path.exists(CHROMIUM) or not (JS_DIR / "node_modules" / "playwright-core").is_dir(),
    reason="node, chromium or tests/js/node_modules missing (run scripts/setup-deps.sh)",
)


def test_page_is_served_without_a_key(base_url):
    r = httpx.get(f"{base_url}/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "Glimpse playground" in r.text
    # Nothing is fetched from another origin: no external scripts, styles or fonts.
    assert "http://" not in r.text.replace("http://www.w3.org", "") and "https://" not in r.text


def run_page(base_url: str, preset: str, shot_name: str, *, files: bool = False) -> dict:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / shot_name
    image = sdkutil.IMAGES_DIR / "odd_150x100.png"
    args = ["node", str(JS_DIR / "playground.mjs"), base_url, str(image), str(shot), preset] + (["files"] if files else [])
    run = subprocess.run(args, capture_output=True, text=True, timeout=180, cwd=JS_DIR, env={**os.environ, "CHROMIUM": CHROMIUM})
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    assert out["consoleErrors"] == [], out["consoleErrors"]
    assert out["status"] == "done", out["error"]
    assert shot.stat().st_size > 0
    return out


def assert_boxes_where_the_json_says(out: dict) -> list[dict]:
    items = json.loads(out["answer"])
    assert len(items) == len(out["boxes"]) > 0
    pic = out["picture"]
    for item, drawn in zip(items, out["boxes"]):
        assert drawn["box"] == item["box_2d"] and drawn["label"] == item["label"]
        ymin, xmin, ymax, xmax = item["box_2d"]
        expected = {
            "x": pic["x"] + xmin / 1000 * pic["width"],
            "y": pic["y"] + ymin / 1000 * pic["height"],
            "width": (xmax - xmin) / 1000 * pic["width"],
            "height": (ymax - ymin) / 1000 * pic["height"],
        }
        for key, want in expected.items():
            assert abs(drawn["rect"][key] - want) <= 1.0, (key, drawn, expected)
    return items


@needs_browser
def test_detection_in_chromium_draws_boxes_where_the_json_says(base_url):
    out = run_page(base_url, "detect", "playground-detect.png")
    assert out["storedKey"] == "test-key"
    assert out["models"] == [f"models/{sdkutil.MODEL_ID}"]
    assert "tokens:" in out["stats"] and "first token" in out["stats"] and "total" in out["stats"]
    inline = assert_boxes_where_the_json_says(out)
    # The same image uploaded through the File API first: the same greedy answer.
    through_files = run_page(base_url, "detect", "playground-files.png", files=True)
    assert assert_boxes_where_the_json_says(through_files) == inline


@needs_browser
def test_segmentation_in_chromium_draws_masks(tmp_path):
    server = start_server(tmp_path, "playground-masks", ["--mask-model", str(sdkutil.ROOT / "fixtures/models/sam-tiny")])
    try:
        out = run_page(server.url, "segment", "playground-segment.png")
    finally:
        stop_server(server)
    items = assert_boxes_where_the_json_says(out)
    for item, drawn in zip(items, out["boxes"]):
        png = Image.open(io.BytesIO(base64.b64decode(item["mask"].removeprefix("data:image/png;base64,"))))
        assert drawn["mask"] == {"width": png.width, "height": png.height}, (drawn, png.size)
    # A summary (label, box, mask size) takes the place of the base64 wall, which folds away one click from it.
    assert out["rawOpen"] is False
    assert [row["label"] for row in out["summary"]] == [item["label"] for item in items]
    for row, item, drawn in zip(out["summary"], items, out["boxes"]):
        assert row["box"] == json.dumps(item["box_2d"], separators=(",", ":"))
        assert row["mask"] == f"{drawn['mask']['width']}×{drawn['mask']['height']} px"


@needs_browser
def test_a_conversation_with_get_code_and_new_chat(tmp_path):
    """Picks replace each other and refuse what is not an image; a follow-up question is sent with the whole
    conversation; "Get code" gives Python and curl that, run beside the picked file, get the same answer;
    "New chat" starts over. On the bundled shapes model (short, real answers)."""
    server = start_server(tmp_path, "playground-flow", ["--model", "shapes"], fixture_model=False)
    first_image = sdkutil.IMAGES_DIR / "red_square_64x64.png"
    second_image = sdkutil.IMAGES_DIR / "blue_circle_128x64.png"
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("not a picture")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        run = subprocess.run(
            ["node", str(JS_DIR / "playground_flow.mjs"), server.url, str(first_image), str(second_image), str(not_an_image),
             str(ARTIFACTS / "playground-flow.png")],
            capture_output=True, text=True, timeout=300, cwd=JS_DIR, env={**os.environ, "CHROMIUM": CHROMIUM},
        )
        assert run.returncode == 0, run.stderr[-3000:]
        out = json.loads(run.stdout)
        assert out["consoleErrors"] == [] and out["failedRequests"] == [], out
        assert out["afterSecondPick"] == {"thumbs": [second_image.name], "picture": second_image.name}
        assert out["afterNotAnImage"]["thumbs"] == [second_image.name], "a refused file leaves the pick as it was"
        assert "notes.txt" in out["afterNotAnImage"]["error"] and "not an image" in out["afterNotAnImage"]["error"]
        first = out["first"]
        assert first["status"] == "done", first["error"]
        assert first["turns"] == ["turn user"] and first["thumbs"] == 0, "the question above, its answer under Answer"
        assert first["picture"] == second_image.name and first["boxes"] >= 1, first
        second = out["second"]
        assert second["status"] == "done", second["error"]
        assert second["sentRoles"] == ["user", "model", "user"] and second["sentImages"] == [1, 0, 0]
        assert second["turns"] == ["turn user", "turn model", "turn user"]
        assert out["afterNewChat"] == {"turns": 0, "picture": False, "answer": ""}
        assert out["favicon"] == {"status": 200, "type": "image/svg+xml"}

        # The code runs as it stands beside the picked file and gets the page's answer (greedy decoding).
        work = tmp_path / "code"
        work.mkdir()
        shutil.copy(second_image, work / second_image.name)
        (work / "snippet.py").write_text(out["code"]["python"])
        python = subprocess.run([sys.executable, "snippet.py"], cwd=work, capture_output=True, text=True, timeout=120)
        assert python.returncode == 0, python.stderr[-3000:]
        assert python.stdout.strip() == second["answer"].strip()
        (work / "snippet.sh").write_text(out["code"]["curl"])
        curl = subprocess.run(["bash", "snippet.sh"], cwd=work, capture_output=True, text=True, timeout=120)
        assert curl.returncode == 0, curl.stderr[-3000:]
        answer = json.loads(curl.stdout)["candidates"][0]["content"]["parts"][0]["text"]
        assert answer.strip() == second["answer"].strip()
    finally:
        stop_server(server)
