"""Hugging Face's Qwen2-VL image processor on the same files as Glimpse's pixel path: file bytes -> PIL image
(`Image.open(...).convert("RGB")`, EXIF orientation applied as `transformers.image_utils.load_image` does) ->
`pixel_values`, with both backends (PIL and torchvision), on one thread. Median over repeated runs.

Usage: pixels_reference.py PREPROCESSOR_CONFIG.json FILE...   -> one JSON object {backend: {file: ms}}
"""
import io
import json
import sys
from pathlib import Path

import torch
from PIL import Image, ImageOps

try:
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:
    pass

from transformers import Qwen2VLImageProcessor, Qwen2VLImageProcessorPil

from benchutil import median_ms

torch.set_num_threads(1)
KEYS = ("min_pixels", "max_pixels", "patch_size", "merge_size", "temporal_patch_size", "image_mean", "image_std")


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    kwargs = {k: config[k] for k in KEYS if k in config}
    files = [Path(f) for f in sys.argv[2:]]
    processors = {"pil": Qwen2VLImageProcessorPil(**kwargs), "torchvision": Qwen2VLImageProcessor(**kwargs)}
    report = {}
    for backend, processor in processors.items():
        report[backend] = {}
        for f in files:
            data = f.read_bytes()

            def once():
                image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
                return processor(images=image, return_tensors="pt")["pixel_values"].shape

            report[backend][f.name] = median_ms(once, budget_s=2.0)
            print(f"{backend} {f.name}: {report[backend][f.name]:.2f} ms, pixel_values {tuple(once())}", file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
