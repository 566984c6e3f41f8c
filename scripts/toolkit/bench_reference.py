"""The reference side of scripts/toolkit/bench.sh: onnxruntime (one thread, as Glimpse runs each answer) running the
same ONNX files with the same preprocessing (Pillow) on the same images, as images per second per task.
Prints one JSON line. OCR is not measured here (its Python pipeline would be a different program)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models/toolkit"
PHOTOS = [ROOT / "fixtures/photos" / n for n in ["dog.jpg", "horses.jpg", "kite.jpg", "giraffe.jpg", "person.jpg"]]


def session(name: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(MODELS / name), options, providers=["CPUExecutionProvider"])


def letterbox(img: Image.Image, size: int) -> tuple[np.ndarray, float]:
    scale = size / max(img.size)
    resized = img.resize((round(img.width * scale), round(img.height * scale)), Image.BILINEAR)
    canvas = Image.new("RGB", (size, size))
    canvas.paste(resized, (0, 0))
    return np.asarray(canvas, dtype=np.float32)[None], scale


def centre_crop(img: Image.Image, size: int = 224) -> np.ndarray:
    scale = 256 / min(img.size)
    w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
    resized = img.resize((w, h), Image.BILINEAR)
    x, y = (w - size) // 2, (h - size) // 2
    crop = np.asarray(resized.crop((x, y, x + size, y + size)), dtype=np.float32)
    return ((crop - 127.0) / 128.0).transpose(2, 0, 1)[None]


def mask_window(img: Image.Image, box: list[float], size: int = 320) -> np.ndarray:
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * 1.2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    window = img.crop((max(0, cx - side / 2), max(0, cy - side / 2), min(img.width, cx + side / 2), min(img.height, cy + side / 2)))
    arr = np.asarray(window.resize((size, size), Image.BILINEAR), dtype=np.float32)
    return ((arr - 128.0) / 256.0).transpose(2, 0, 1)[None]


def rate(images: list, passes: int, run) -> float:
    """Images per second of the median pass, as the Rust side measures."""
    run(images[0])
    rates = []
    for _ in range(passes):
        start = time.perf_counter()
        for image in images:
            run(image)
        rates.append(len(images) / (time.perf_counter() - start))
    return sorted(rates)[len(rates) // 2]


def main() -> None:
    passes = max(1, int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    photos = [ImageOps.exif_transpose(Image.open(p)).convert("RGB") for p in PHOTOS]
    detector, classifier = session("centernet.onnx"), session("efficientnet_lite0.onnx")
    results = {
        "detect": rate(photos, passes, lambda im: detector.run(None, {detector.get_inputs()[0].name: letterbox(im, 512)[0]})),
        "classify": rate(photos, passes, lambda im: classifier.run(None, {classifier.get_inputs()[0].name: centre_crop(im)})),
    }
    if (MODELS / "isnet.onnx").is_file():
        isnet = session("isnet.onnx")
        boxes = {}
        for im in photos:
            x, scale = letterbox(im, 512)
            rows = detector.run(None, {detector.get_inputs()[0].name: x})[0][0]
            boxes[id(im)] = [v / scale for v in rows[0][:4]]
        results["mask"] = rate(photos, passes, lambda im: isnet.run(None, {isnet.get_inputs()[0].name: mask_window(im, boxes[id(im)])}))
    print(json.dumps({k: round(v, 3) for k, v in results.items()}))


if __name__ == "__main__":
    main()
