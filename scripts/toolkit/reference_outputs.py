#!/usr/bin/env python3
"""Reference outputs of the toolkit models, computed with onnxruntime, for the Rust tests.

    <python with onnxruntime, numpy, pillow> scripts/toolkit/reference_outputs.py

(the venv made by prepare_models.py has them: ~/.cache/glimpse/toolkit-venv/bin/python).

Reads models/toolkit/{centernet,efficientnet_lite0,ppocrv5_rec}.onnx and the darknet sample images
(/usr/share/darknet/data/{dog,horses,kite,giraffe,person}.jpg, Debian package `darknet`), writes
  fixtures/images/ocr_line.png               "Glimpse reads 42 words", black on white, 480x64
  fixtures/expected/toolkit/reference.json   detections, top-5 classes and the OCR line

Preprocessing (the same as the Rust side should use; Pillow BILINEAR = `image` crate Triangle, both
widen the filter when downscaling, so expect small numeric differences, not bit equality):
  * all images: EXIF orientation applied, converted to RGB 8-bit.
  * CenterNet: scale = 512 / max(w, h); resize to (round(w*scale), round(h*scale)) bilinear; paste
    at the TOP-LEFT corner of a 512x512 canvas filled with 0 (black); NHWC float32 raw 0..255, no
    normalisation. Output rows (x1, y1, x2, y2, score, class) are in 512-canvas pixels, class is a
    0-based index into coco.names; original-image box = row / scale, clamped to the image. Rows
    are sorted by score; there is no NMS across classes (the same box can appear as cow and sheep).
  * EfficientNet-Lite0: scale = 256 / min(w, h); resize to (round(w*scale), round(h*scale))
    bilinear; centre crop 224x224 at ((W-224)//2, (H-224)//2); NCHW float32 (x - 127) / 128, RGB.
    Softmax over the logits; labels = imagenet.tsv line order.
  * PP-OCRv5 recogniser: crop the line; resize to height 48, width round(w*48/h), bilinear; BGR;
    (x/255 - 0.5)/0.5; NCHW. Output [1, T, 18385] are probabilities already (softmax inside);
    greedy CTC: argmax per step, merge repeats, drop index 0; index i -> line i (0-based) of
    ppocr_keys_v5.txt, whose line 0 is the literal "blank" placeholder and last line is " ".
"""
import hashlib
import json
from pathlib import Path
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODELS = os.path.join(ROOT, "models", "toolkit")
# Debian darknet's sample photos: unpacked into fixtures/photos by scripts/setup-deps.sh, or the installed package.
DARKNET = next((str(d) for d in (Path(__file__).resolve().parents[2] / "fixtures/photos", Path("/usr/share/darknet/data")) if (d / "dog.jpg").is_file()), "/usr/share/darknet/data")
IMAGES = ["dog", "horses", "kite", "giraffe", "person"]
OCR_TEXT = "Glimpse reads 42 words"
OCR_SIZE = (480, 64)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_SIZE = 36
DET_THRESHOLD = 0.2


def load_image(path):
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def read_coco_names():
    with open(os.path.join(MODELS, "coco.names"), encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def read_imagenet_names():
    with open(os.path.join(MODELS, "imagenet.tsv"), encoding="utf-8") as f:
        return [l.rstrip("\n").split("\t")[1] for l in f if l.strip()]


def read_ocr_keys():
    with open(os.path.join(MODELS, "ppocr_keys_v5.txt"), encoding="utf-8") as f:
        keys = f.read().split("\n")
    if keys and keys[-1] == "":
        keys.pop()  # trailing newline; the space line before it is a real key
    return keys


# --- CenterNet -----------------------------------------------------------------------------------

def centernet_input(img):
    w, h = img.size
    scale = 512 / max(w, h)
    resized = img.resize((round(w * scale), round(h * scale)), Image.BILINEAR)
    canvas = Image.new("RGB", (512, 512), (0, 0, 0))
    canvas.paste(resized, (0, 0))
    return np.asarray(canvas, np.float32)[None], scale


def detect(sess, img, names, threshold=DET_THRESHOLD):
    x, scale = centernet_input(img)
    rows = sess.run(["tower_0/detections"], {"tower_0/images": x})[0][0]
    w, h = img.size
    out = []
    for x1, y1, x2, y2, score, cls in rows:
        if score <= threshold:
            continue
        box = [min(max(x1 / scale, 0), w), min(max(y1 / scale, 0), h),
               min(max(x2 / scale, 0), w), min(max(y2 / scale, 0), h)]
        out.append({"label": names[int(cls)], "class": int(cls), "score": round(float(score), 4),
                    "box": [round(float(v), 1) for v in box]})
    return out


# --- EfficientNet-Lite0 --------------------------------------------------------------------------

def efficientnet_input(img):
    w, h = img.size
    s = 256 / min(w, h)
    r = img.resize((round(w * s), round(h * s)), Image.BILINEAR)
    left, top = (r.width - 224) // 2, (r.height - 224) // 2
    a = np.asarray(r.crop((left, top, left + 224, top + 224)), np.float32)
    return np.ascontiguousarray(((a - 127.0) / 128.0).transpose(2, 0, 1)[None])


def classify(sess, img, names, k=5):
    logits = sess.run(["logits"], {"input": efficientnet_input(img)})[0][0].astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    top = np.argsort(-p, kind="stable")[:k]
    return [{"label": names[i], "index": int(i), "prob": round(float(p[i]), 4)} for i in top]


# --- PP-OCRv5 recogniser -------------------------------------------------------------------------

def render_text_line(text, size=OCR_SIZE):
    im = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(im)
    font = ImageFont.truetype(FONT, FONT_SIZE) if os.path.exists(FONT) else ImageFont.load_default()
    l, t, r, b = d.textbbox((0, 0), text, font=font)
    d.text(((size[0] - (r - l)) // 2 - l, (size[1] - (b - t)) // 2 - t), text, font=font, fill=(0, 0, 0))
    return im


def tight_crop(im):
    """Crop to the bounding box of the non-white pixels (any channel < 255)."""
    a = np.asarray(im.convert("RGB"))
    ys, xs = np.where((a < 255).any(2))
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return im.crop(box), box


def recognize(sess, crop, keys):
    w, h = crop.size
    a = np.asarray(crop.resize((max(1, round(w * 48 / h)), 48), Image.BILINEAR), np.float32)[..., ::-1]
    x = np.ascontiguousarray(((a / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None])
    probs = sess.run(None, {"x": x})[0][0]
    idx = probs.argmax(1)
    chars, prev, confs = [], 0, []
    for t, i in enumerate(idx):
        if i != 0 and i != prev:
            chars.append(keys[i])
            confs.append(float(probs[t, i]))
        prev = i
    return "".join(chars), {"input_width": int(x.shape[3]), "steps": int(probs.shape[0]),
                            "mean_char_prob": round(float(np.mean(confs)), 4) if confs else 0.0}


# --- main ----------------------------------------------------------------------------------------

def session(name):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(os.path.join(MODELS, name), so, providers=["CPUExecutionProvider"])


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    det, cls, rec = session("centernet.onnx"), session("efficientnet_lite0.onnx"), session("ppocrv5_rec.onnx")
    coco, imagenet, keys = read_coco_names(), read_imagenet_names(), read_ocr_keys()
    if len(coco) != 80 or len(imagenet) != 1000 or len(keys) != 18385:
        raise SystemExit(f"label files: {len(coco)} coco, {len(imagenet)} imagenet, {len(keys)} ocr keys")

    images = {}
    for name in IMAGES:
        path = os.path.join(DARKNET, name + ".jpg")
        img = load_image(path)
        images[name + ".jpg"] = {
            "path": "Debian darknet: usr/share/darknet/data/" + os.path.basename(path),
            "size": list(img.size),
            "centernet": detect(det, img, coco),
            "efficientnet_top5": classify(cls, img, imagenet),
        }
        print(name, [(d["label"], d["score"]) for d in images[name + ".jpg"]["centernet"]][:6],
              [(t["label"], t["prob"]) for t in images[name + ".jpg"]["efficientnet_top5"]])

    line = render_text_line(OCR_TEXT)
    png = os.path.join(ROOT, "fixtures", "images", "ocr_line.png")
    line.save(png, optimize=True)
    crop, box = tight_crop(load_image(png))
    text, info = recognize(rec, crop, keys)
    print("ocr:", repr(text), info)

    ref = {
        "generated_by": "scripts/toolkit/reference_outputs.py (onnxruntime, Pillow bilinear)",
        "models_sha256": {m: sha256(os.path.join(MODELS, m)) for m in
                          ("centernet.onnx", "efficientnet_lite0.onnx", "ppocrv5_rec.onnx")},
        "preprocessing": {
            "centernet": "scale=512/max(w,h); bilinear resize to round(w*scale) x round(h*scale); top-left on a "
                         "512x512 canvas of 0; NHWC float 0..255; box_original = box_512 / scale, clamped",
            "efficientnet": "scale=256/min(w,h); bilinear resize to round(w*scale) x round(h*scale); centre crop "
                            "224 at ((W-224)//2,(H-224)//2); NCHW (x-127)/128 RGB; softmax",
            "ppocrv5_rec": "tight crop of non-white pixels; bilinear resize to height 48, width round(w*48/h); "
                           "BGR; (x/255-0.5)/0.5; NCHW; greedy CTC, blank=0, index i = keys line i",
        },
        "detection_threshold": DET_THRESHOLD,
        "images": images,
        "ocr_line": {
            "image": "fixtures/images/ocr_line.png",
            "text_rendered": OCR_TEXT,
            "font": f"{os.path.basename(FONT)} {FONT_SIZE}px" if os.path.exists(FONT) else "PIL default",
            "tight_crop_box": list(box),
            "ppocrv5_rec_greedy": text,
            **info,
        },
    }
    out = os.path.join(ROOT, "fixtures", "expected", "toolkit", "reference.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(ref, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", out, "and", png)


if __name__ == "__main__":
    sys.exit(main())
