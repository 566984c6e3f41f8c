#!/usr/bin/env python3
"""Held-out evaluation of the bundled `shapes` model through Glimpse's Gemini HTTP API.

Scenes come from `scenes.py` with a seed that training never uses (20250 by default). Every scene gets one
question per task, sent as a `generateContent` request with the scene as inline PNG, the way a Gemini client
would send it; the answers are scored here:

* caption  -- exact match with the ground-truth caption ("A red circle and a blue star.")
* count    -- exact match ("2")
* yesno    -- "Yes"/"No", case and a final full stop ignored
* read     -- exact match with the rendered word
* detect   -- a Gemini detection prompt (it names `box_2d`, so Glimpse's grounding adapter converts the model's
              native Qwen2.5-VL `bbox_2d`); each ground-truth object is matched to the answer's item with its
              label and scored by IoU on Gemini's 0-1000 grid of the original image; a missing object or an
              extra item scores 0; the task score is the mean over questions
* attribute -- colour / shape / position questions, reported without a threshold

With no `--url`, it starts `glimpse serve --model shapes` itself (GLIMPSE_BIN or target/debug/glimpse) and
stops it afterwards. It needs only the standard library, numpy, Pillow and httpx.

    python scripts/shapes/evaluate.py --scenes 500 --out eval-out/
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import scenes  # noqa: E402

EVAL_SEED = 20250
THRESHOLDS = {"caption": 0.90, "count": 0.90, "yesno": 0.95, "read": 0.90, "detect": 0.75}
TASKS = ["caption", "count", "yesno", "read", "detect", "attribute"]
DETECT_ALL = "Detect all shapes in the image. " + scenes.GEMINI_BOX
DETECT_ONE = "Detect the {label}. " + scenes.GEMINI_BOX


def questions(seed: int, n: int) -> list[dict]:
    """One question per task per scene (deterministic for a seed)."""
    items = []
    for i in range(n):
        sc = scenes.make_scene(seed, i)
        rng = np.random.default_rng([seed, i, 11])
        png = base64.b64encode(sc.png()).decode()
        for task in TASKS:
            item = {"scene": i, "task": task, "png": png}
            if task == "detect":
                if len(sc.objects) == 1 or rng.random() < 0.6:
                    item["question"], targets = DETECT_ALL, sc.objects
                else:
                    target = sc.objects[int(rng.integers(len(sc.objects)))]
                    item["question"], targets = DETECT_ONE.format(label=target.label), [target]
                item["gold"] = [{"label": o.label, "box_2d": scenes.gemini_box(o.box, sc.width, sc.height)} for o in targets]
            else:
                qa = scenes.ask(sc, task, rng)
                item["question"], item["gold"] = qa.question, qa.answer
            items.append(item)
    return items


def detection_score(answer: str, gold: list[dict]) -> float:
    try:
        items = json.loads(answer)
    except json.JSONDecodeError:
        return 0.0
    if not isinstance(items, list):
        return 0.0
    by_label = {}
    for it in items:
        if isinstance(it, dict) and isinstance(it.get("box_2d"), list) and len(it["box_2d"]) == 4:
            by_label.setdefault(str(it.get("label", "")), it["box_2d"])
    matched = [g for g in gold if g["label"] in by_label]
    total = sum(scenes.box_iou(by_label[g["label"]], g["box_2d"]) for g in matched)
    extra = len(items) - len(matched)
    return total / (len(gold) + max(0, extra))


def score(item: dict, answer: str) -> float:
    task, gold, got = item["task"], item["gold"], answer.strip()
    if task == "detect":
        return detection_score(got, gold)
    if task == "yesno":
        return float(got.rstrip(".").lower() == gold.lower())
    return float(got == gold)


def ask(client: httpx.Client, url: str, model: str, item: dict) -> str:
    body = {"contents": [{"role": "user", "parts": [
        {"inline_data": {"mime_type": "image/png", "data": item["png"]}},
        {"text": item["question"]},
    ]}]}
    r = client.post(f"{url}/v1beta/models/{model}:generateContent", json=body, timeout=300)
    if r.status_code != 200:
        return f"<HTTP {r.status_code}: {r.text[:200]}>"
    parts = r.json()["candidates"][0].get("content", {}).get("parts", [])
    return "".join(p.get("text", "") for p in parts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary: Path, model: str, log_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(log_dir / "glimpse.log", "wb")
    proc = subprocess.Popen([str(binary), "serve", "--model", model, "--host", "127.0.0.1", "--port", str(port),
                             "--data-dir", str(log_dir / "data")], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"glimpse exited with {proc.returncode}; see {log_dir / 'glimpse.log'}")
        try:
            if httpx.get(f"{url}/v1beta/models", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    sys.exit("glimpse did not start within 300 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a running Glimpse (default: start one)")
    ap.add_argument("--glimpse", type=Path, default=Path(os.environ.get("GLIMPSE_BIN", REPO / "target/debug/glimpse")))
    ap.add_argument("--model", default="shapes", help="the --model of the started server, and the model asked")
    ap.add_argument("--scenes", type=int, default=500)
    ap.add_argument("--seed", type=int, default=EVAL_SEED)
    ap.add_argument("--concurrency", type=int, default=1,
                    help="requests in flight (the answers are the same as one at a time: vendor/README.md)")
    ap.add_argument("--out", type=Path, help="folder for answers.jsonl, scores.json (and the server log)")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of the tasks")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="shapes-eval-"))
    out.mkdir(parents=True, exist_ok=True)
    tasks = args.tasks.split(",")
    if unknown := set(tasks) - set(TASKS):
        sys.exit(f"unknown tasks: {sorted(unknown)}")
    items = [it for it in questions(args.seed, args.scenes) if it["task"] in tasks]
    proc = None
    url = args.url
    model = Path(args.model).name if not args.url else args.model
    if url is None:
        proc, url = start_server(args.glimpse, args.model, out)
    started = time.time()
    try:
        with httpx.Client() as client, ThreadPoolExecutor(args.concurrency) as pool:
            answers = list(pool.map(lambda it: ask(client, url, model, it), items))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    elapsed = time.time() - started
    by_task: dict[str, list[float]] = {}
    with open(out / "answers.jsonl", "w") as fh:
        for it, ans in zip(items, answers):
            s = score(it, ans)
            by_task.setdefault(it["task"], []).append(s)
            fh.write(json.dumps({"scene": it["scene"], "task": it["task"], "question": it["question"],
                                 "gold": it["gold"], "answer": ans, "score": round(s, 4)}) + "\n")
    result = {task: round(float(np.mean(v)), 4) for task, v in by_task.items()}
    result.update({"scenes": args.scenes, "seed": args.seed, "requests": len(items),
                   "seconds": round(elapsed, 1), "pass": {k: result[k] >= v for k, v in THRESHOLDS.items() if k in result}})
    (out / "scores.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print(f"answers: {out / 'answers.jsonl'}")
    sys.exit(0 if all(result["pass"].values()) else 1)


if __name__ == "__main__":
    main()
