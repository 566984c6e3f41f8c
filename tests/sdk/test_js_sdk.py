"""The official JavaScript SDK (@google/genai, installed by scripts/setup-deps.sh into tests/js) against the
running server: upload, get, list, generateContent with the uploaded file, delete; and the Interactions API
(unary, streamed, a second turn through previous_interaction_id, get, delete, errors)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess

import pytest

import sdkutil

JS_DIR = sdkutil.REPO_ROOT / "tests" / "js"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (JS_DIR / "node_modules" / "@google" / "genai").is_dir(),
    reason="node or tests/js/node_modules missing (run scripts/setup-deps.sh)",
)


def test_js_sdk_file_flow(base_url, expected):
    case = expected["caption_square"]
    (message,) = [m for m in case["messages"] if m["role"] == "user"]
    image = sdkutil.resolve_path(next(i["path"] for i in message["content"] if i["type"] == "image"))
    prompt = next(i["text"] for i in message["content"] if i["type"] == "text")
    run = subprocess.run(
        ["node", str(JS_DIR / "files_flow.mjs"), base_url, str(image), prompt, str(case["max_new_tokens"])],
        capture_output=True, text=True, timeout=120, cwd=JS_DIR,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    data = image.read_bytes()
    assert out["uploaded"]["state"] == "ACTIVE"
    assert out["uploaded"]["sizeBytes"] == str(len(data))
    assert out["uploaded"]["sha256Hash"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert out["uploaded"]["displayName"] == "js upload"
    assert out["fetched"] == {"name": out["uploaded"]["name"], "state": "ACTIVE"}
    assert out["uploaded"]["name"] in out["listed"]
    assert out["text"] == case["greedy_text"]
    assert out["promptTokens"] == case["prompt_token_count"]
    assert out["afterDelete"]["status"] == 403, out["afterDelete"]


def test_js_sdk_interactions(base_url, expected):
    case = expected["caption_square"]
    run = subprocess.run(
        ["node", str(JS_DIR / "interactions_flow.mjs"), base_url, json.dumps(sdkutil.interaction_items(case)), str(case["max_new_tokens"])],
        capture_output=True, text=True, timeout=120, cwd=JS_DIR,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["unary"]["text"] == case["greedy_text"]
    assert out["unary"]["inputTokens"] == case["prompt_token_count"]
    kinds = out["stream"]["kinds"]
    assert kinds[:2] == ["interaction.created", "step.start"] and kinds[-2:] == ["step.stop", "interaction.completed"], kinds
    assert out["stream"]["text"] == case["greedy_text"]
    assert out["stream"]["inputTokens"] == case["prompt_token_count"]
    assert out["second"]["previous"] is not None
    # The second turn's prompt holds the first turn (input and answer) and the follow-up question.
    assert out["second"]["inputTokens"] > case["prompt_token_count"] + len(case["greedy_token_ids"])
    assert out["stored"]["steps"] == ["user_input", "model_output"]
    assert out["afterDelete"] == {"status": 404, "code": "not_found"}
    assert out["badInput"] == {"status": 400, "code": "invalid_request"}

