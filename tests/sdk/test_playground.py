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
