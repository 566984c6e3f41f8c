#!/usr/bin/env python3
"""Seeded generator of the synthetic 'shapes' scenes, with ground truth, and the questions asked about them.

A scene is an RGB image (several sizes and aspect ratios; half of them exact model-input sizes, the others
up to 3x larger so that the Qwen2.5-VL processor resizes them) on a plain or noisy light background, with 1 to
3 coloured shapes (4 colours x 4 shapes, distinct pairs; in a fifth of the scenes they may overlap, each
keeping at least 70% of its pixels visible) and one dark word of 12 rendered with DejaVu Sans. Ground truth
per scene: caption, objects (label, colour, shape, box in original pixels and in the model's resized input,
mask as run-length encoding, visible fraction), the word and its box, the background kind.

Everything is a pure function of (seed, index): ``make_scene(seed, index)`` always draws the same picture,
so training streams scenes of one seed and evaluation uses another.

Tasks (``ask(scene, task, rng)``) are phrased as users ask them; answers are deterministic strings:

* caption     "Caption this image."                -> "A red circle and a blue star." (shape, then colour order)
* count       "How many red shapes?"               -> "2"
* attribute   "What colour is the star?"           -> "blue"; "Which shape is furthest left?" -> "red circle";
              "Where is the red circle?"           -> "top left"
* yesno       "Is there a star?"                   -> "Yes" / "No"
* read        "What word is written in the image?" -> "cat"
* detect      Qwen-style ("Outline the position of each shape and output all the coordinates in JSON format.")
              and Gemini-style prompts (they name ``box_2d``: Glimpse then converts the answer) for all shapes
              or one named shape -> '[{"bbox_2d": [x1, y1, x2, y2], "label": "red circle"}, ...]', the
              Qwen2.5-VL grounding format: pixels of the RESIZED image the model sees, x2/y2 exclusive, objects
              left to right

Only Pillow and numpy are needed.  ``python scenes.py --seed 0 --count 8 --out DIR`` writes PNGs plus
``scenes.jsonl`` (one ground-truth record per line, with sample questions) for inspection.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# --------------------------------------------------------------------------------------------
# Vocabulary (fixed; the tokenizer must encode all of it)
# --------------------------------------------------------------------------------------------
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 40),
    "blue": (30, 70, 225),
    "yellow": (235, 200, 15),
}
SHAPES = ["circle", "square", "triangle", "star"]
PLURAL = {s: s + "s" for s in SHAPES}
WORDS = ["cat", "dog", "sun", "box", "key", "cup", "hat", "pen", "fox", "owl", "bee", "car"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five"]

MAX_OBJECTS = 3
MIN_VISIBLE = 0.7          # every shape keeps at least this fraction of its pixels visible
OVERLAP_PROB = 0.2         # scenes in which shapes may overlap
NOISY_PROB = 0.5           # scenes with a noisy background
TEXT_COLOURS = [(15, 15, 15), (60, 60, 60), (40, 40, 90)]

# Qwen2.5-VL image processing (must match preprocessor_config.json of the model folder)
FACTOR = 28
MIN_PIXELS = 56 * 56
MAX_PIXELS = 28 * 28 * 25  # at most 25 image tokens (140x140)
MIN_SIDE = 4 * FACTOR      # resized inputs are 112..168 px a side

FONT_CANDIDATES = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
]
_FONT_CACHE: dict[int, ImageFont.FreeTypeFont] = {}


def font(size: int):
    if size not in _FONT_CACHE:
        path = next((p for p in FONT_CANDIDATES if os.path.exists(p)), None)
        if path is None:  # deterministic only with DejaVu Sans; the default font is a fallback
            _FONT_CACHE[size] = ImageFont.load_default(size=size)
        else:
            _FONT_CACHE[size] = ImageFont.truetype(path, size)
    return _FONT_CACHE[size]


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def smart_resize(height: int, width: int, factor: int = FACTOR, min_pixels: int = MIN_PIXELS,
                 max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Qwen2-VL / Qwen2.5-VL `smart_resize` (transformers), returns (h, w) of the model's input."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError("aspect ratio too large")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------
def shape_polygon(shape: str, x: float, y: float, s: float):
    """Polygon (or None for circle) of `shape` inscribed in the square box (x, y, x+s, y+s)."""
    cx, cy, r = x + s / 2, y + s / 2, s / 2
    if shape == "triangle":
        return [(cx, y), (x + s, y + s), (x, y + s)]
    if shape == "diamond":
        return [(cx, y), (x + s, cy), (cx, y + s), (x, cy)]
    if shape == "star":
        # 5-pointed star, vertically centred in the box
        pts = []
        r_in = r * 0.45
        top, bottom = -r, r * math.cos(math.pi / 5)
        dy = (-(top + bottom) / 2)
        for i in range(10):
            rr = r if i % 2 == 0 else r_in
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((cx + rr * math.cos(a), cy + dy + rr * math.sin(a)))
        return pts
    return None


def draw_shape(d: ImageDraw.ImageDraw, shape: str, x: int, y: int, s: int, fill) -> None:
    if shape == "circle":
        d.ellipse([x, y, x + s - 1, y + s - 1], fill=fill)
    elif shape == "square":
        d.rectangle([x, y, x + s - 1, y + s - 1], fill=fill)
    else:
        d.polygon([(round(px), round(py)) for px, py in shape_polygon(shape, x, y, s - 1)], fill=fill)


def shape_mask(shape: str, x: int, y: int, s: int, w: int, h: int) -> np.ndarray:
    m = Image.new("L", (w, h), 0)
    draw_shape(ImageDraw.Draw(m), shape, x, y, s, 255)
    return np.asarray(m) > 0


def rle_encode(mask: np.ndarray) -> list[int]:
    """Row-major run lengths, starting with a (possibly empty) run of zeros."""
    flat = mask.reshape(-1).astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0] == 1:
        runs = [0] + runs
    return runs


def rle_decode(runs: list[int], w: int, h: int) -> np.ndarray:
    flat = np.zeros(w * h, dtype=bool)
    pos, val = 0, False
    for r in runs:
        if val:
            flat[pos:pos + r] = True
        pos += r
        val = not val
    return flat.reshape(h, w)


def mask_box(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def gemini_box(box: list[int], width: int, height: int) -> list[float]:
    """A pixel box [x0, y0, x1, y1) of the original image on Gemini's [ymin, xmin, ymax, xmax] 0-1000 grid."""
    return [box[1] / height * 1000, box[0] / width * 1000, box[3] / height * 1000, box[2] / width * 1000]


# --------------------------------------------------------------------------------------------
# Scenes
# --------------------------------------------------------------------------------------------
@dataclass
class Obj:
    colour: str
    shape: str
    box: list[int]            # original pixels, [x1, y1, x2, y2), tight box of the (amodal) mask
    box_resized: list[int]    # same box in the model's resized input
    visible: float            # visible fraction of the mask after drawing order
    mask_rle: list[int] = field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


@dataclass
class Scene:
    seed: int
    index: int
    width: int
    height: int
    resized_width: int
    resized_height: int
    background: str           # "plain" | "noisy"
    objects: list[Obj]        # sorted left to right (resized box x1, then y1): the detection answer order
    word: str
    word_box: list[int]
    image: Image.Image = field(repr=False)
    id_map: np.ndarray | None = field(default=None, repr=False)  # topmost object index per pixel (-1: none)

    @property
    def caption(self) -> str:
        # canonical vocabulary order (shape, then colour), not geometry: exact-match friendly
        order = sorted(self.objects, key=lambda o: (SHAPES.index(o.shape), list(COLOURS).index(o.colour)))
        names = [f"{article(o.label)} {o.label}" for o in order]
        if len(names) == 1:
            body = names[0]
        else:
            body = ", ".join(names[:-1]) + " and " + names[-1]
        return f"{body[0].upper()}{body[1:]}."

    def png(self) -> bytes:
        """The picture as PNG bytes (what a client uploads)."""
        buf = io.BytesIO()
        self.image.save(buf, format="PNG")
        return buf.getvalue()

    def grid_tokens(self) -> int:
        return (self.resized_width // FACTOR) * (self.resized_height // FACTOR)

    def to_json(self) -> dict:
        return {
            "seed": self.seed, "index": self.index,
            "width": self.width, "height": self.height,
            "resized_width": self.resized_width, "resized_height": self.resized_height,
            "image_tokens": self.grid_tokens(),
            "background": self.background,
            "caption": self.caption,
            "text": {"word": self.word, "box": self.word_box},
            "objects": [
                {"label": o.label, "colour": o.colour, "shape": o.shape, "box": o.box,
                 "box_resized": o.box_resized, "visible": round(o.visible, 4), "mask_rle": o.mask_rle}
                for o in self.objects
            ],
        }


def _sample_size(rng: np.random.Generator) -> tuple[int, int]:
    """Original (w, h). Half are exact model-input sizes (4..6 cells of 28 px a side, at most 25 cells, so the
    processor keeps them); the other half are arbitrary sizes up to 3x larger that the processor resizes."""
    while True:
        if rng.random() < 0.5:
            w, h = FACTOR * int(rng.integers(4, 7)), FACTOR * int(rng.integers(4, 7))
        else:
            k = float(rng.uniform(1.0, 3.0))
            w, h = int(rng.integers(100, 170) * k), int(rng.integers(100, 170) * k)
        if max(w, h) / min(w, h) > 1.6:
            continue
        rh, rw = smart_resize(h, w)
        if min(rh, rw) >= MIN_SIDE:
            return w, h


def _background(rng: np.random.Generator, w: int, h: int, kind: str) -> Image.Image:
    base = rng.integers(200, 256, size=3)
    if kind == "plain":
        return Image.new("RGB", (w, h), tuple(int(c) for c in base))
    sigma = float(rng.uniform(8, 28))
    noise = rng.normal(0, sigma, size=(h, w, 1)) + rng.normal(0, sigma / 3, size=(h, w, 3))
    arr = np.clip(base[None, None, :] + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def make_scene(seed: int, index: int, max_objects: int = MAX_OBJECTS) -> Scene:
    """Scene `index` of `seed`; `max_objects` < MAX_OBJECTS draws a different (simpler) scene for the same
    index (training's curriculum uses it)."""
    rng = np.random.default_rng([seed, index] if max_objects == MAX_OBJECTS else [seed, index, max_objects])
    for _attempt in range(100):
        scene = _try_scene(rng, seed, index, max_objects)
        if scene is not None:
            return scene
    raise RuntimeError(f"could not place scene {seed}:{index}")


def _try_scene(rng: np.random.Generator, seed: int, index: int, max_objects: int) -> Scene | None:
    w, h = _sample_size(rng)
    rh, rw = smart_resize(h, w)
    sx, sy = rw / w, rh / h
    # object sizes in resized pixels (what the model sees), converted to original pixels
    rmin = min(rw, rh)
    n = int(rng.integers(1, max_objects + 1))
    overlap_ok = rng.random() < OVERLAP_PROB
    kind = "noisy" if rng.random() < NOISY_PROB else "plain"

    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    chosen = [pairs[i] for i in rng.choice(len(pairs), size=n, replace=False)]

    placed: list[tuple[str, str, int, int, int]] = []  # colour, shape, x, y, s (original px)
    boxes: list[list[int]] = []
    for colour, shape in chosen:
        for _ in range(50):
            s_res = float(rng.uniform(26, 0.4 * rmin))
            s = max(8, int(round(s_res / ((sx + sy) / 2))))
            if s >= min(w, h) - 4:
                continue
            x = int(rng.integers(2, w - s - 1))
            y = int(rng.integers(2, h - s - 1))
            b = [x, y, x + s, y + s]
            clash = False
            for ob in boxes:
                if overlap_ok:
                    if box_iou(b, ob) > 0.2:
                        clash = True
                elif not (b[2] + 3 <= ob[0] or ob[2] + 3 <= b[0] or b[3] + 3 <= ob[1] or ob[3] + 3 <= b[1]):
                    clash = True
            if not clash:
                placed.append((colour, shape, x, y, s))
                boxes.append(b)
                break
        else:
            return None

    # the word: must not touch any shape box
    word = WORDS[int(rng.integers(len(WORDS)))]
    fsize = int(round(rng.uniform(19, 24) / ((sx + sy) / 2)))
    f = font(fsize)
    l, t, r, btm = f.getbbox(word)
    tw, th = r - l, btm - t
    if tw + 4 >= w or th + 4 >= h:
        return None
    for _ in range(60):
        tx = int(rng.integers(2, w - tw - 2))
        ty = int(rng.integers(2, h - th - 2))
        tb = [tx, ty, tx + tw, ty + th]
        if all(tb[2] + 3 <= ob[0] or ob[2] + 3 <= tb[0] or tb[3] + 3 <= ob[1] or ob[3] + 3 <= tb[1]
               for ob in boxes):
            break
    else:
        return None

    img = _background(rng, w, h, kind)
    d = ImageDraw.Draw(img)
    masks = []
    drawn = np.zeros((h, w), dtype=np.int16) - 1  # index of the topmost shape per pixel
    for i, (colour, shape, x, y, s) in enumerate(placed):
        draw_shape(d, shape, x, y, s, COLOURS[colour])
        m = shape_mask(shape, x, y, s, w, h)
        masks.append(m)
        drawn[m] = i
    text_colour = TEXT_COLOURS[int(rng.integers(len(TEXT_COLOURS)))]
    d.text((tx - l, ty - t), word, font=f, fill=text_colour)

    objs = []
    for i, ((colour, shape, *_), m) in enumerate(zip(placed, masks)):
        vis = float((drawn == i).sum()) / float(m.sum())
        if vis < MIN_VISIBLE:
            return None
        b = mask_box(m)
        br = [round(b[0] * sx), round(b[1] * sy), round(b[2] * sx), round(b[3] * sy)]
        objs.append(Obj(colour, shape, b, br, vis, rle_encode(m)))
    order = sorted(range(len(objs)), key=lambda i: (objs[i].box_resized[0], objs[i].box_resized[1]))
    remap = np.full(len(objs) + 1, -1, dtype=np.int16)
    for new, old in enumerate(order):
        remap[old] = new
    id_map = remap[drawn]  # drawn == -1 maps to remap[-1] == -1
    objs = [objs[i] for i in order]
    return Scene(seed, index, w, h, rw, rh, kind, objs, word, [tx, ty, tx + tw, ty + th], img, id_map)


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------
TASKS = ["caption", "count", "attribute", "yesno", "read", "detect"]

CAPTION_Q = ["Caption this image.", "Describe this image in one sentence.", "What is in this picture?"]
READ_Q = ["What word is written in the image?", "Read the text in the image.", "What does the text say?"]
GEMINI_BOX = "The box_2d should be [ymin, xmin, ymax, xmax] normalized to 0-1000."
GEMINI_SEGMENT = ('Output a JSON list of segmentation masks where each entry contains the 2D bounding box in the key '
                  '"box_2d", the segmentation mask in key "mask", and the text label in the key "label". '
                  'Use descriptive labels.')
DETECT_ALL_Q = [
    "Outline the position of each shape and output all the coordinates in JSON format.",
    "Detect all shapes in the image and return their locations in the form of coordinates.",
    f"Detect the all of the prominent items in the image. {GEMINI_BOX}",
    f"Detect all shapes in the image. {GEMINI_BOX}",
    f"Give the segmentation masks for the shapes. {GEMINI_SEGMENT}",
]
# Gemini-style prompts (with "box_2d": what Glimpse's grounding adapter recognises) name one target
DETECT_ONE_Q = [
    "Locate the {label} and output its bbox coordinates in JSON format.",
    "Detect the {label}. " + GEMINI_BOX,
    "Give the segmentation mask for the {label}. " + GEMINI_SEGMENT,
]


POSITIONS = [["top left", "top", "top right"], ["left", "center", "right"],
             ["bottom left", "bottom", "bottom right"]]


def detection_json(objs: list[Obj], style: str = "compact") -> str:
    """Qwen2.5-VL grounding answer for `objs` (boxes in resized pixels)."""
    items = [f'{{"bbox_2d": [{b[0]}, {b[1]}, {b[2]}, {b[3]}], "label": "{o.label}"}}'
             for o in objs for b in [o.box_resized]]
    if style == "qwen":  # exactly how the released models format it
        return "```json\n[\n" + ",\n".join("\t" + it for it in items) + "\n]\n```"
    return "[" + ", ".join(items) + "]"


@dataclass
class QA:
    task: str
    question: str
    answer: str
    meta: dict = field(default_factory=dict)  # detect: "boxes"; a question about given shapes: their "named" labels


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def ask(scene: Scene, task: str, rng: np.random.Generator, det_style: str = "compact") -> QA:
    objs = scene.objects
    colours_present = {o.colour for o in objs}
    shapes_present = {o.shape for o in objs}
    if task == "caption":
        return QA(task, _pick(rng, CAPTION_Q), scene.caption)
    if task == "read":
        return QA(task, _pick(rng, READ_Q), scene.word)
    if task == "count":
        k = int(rng.integers(3))
        if k == 0:
            return QA(task, _pick(rng, ["How many shapes are there?", "How many shapes are in the image?"]),
                      str(len(objs)))
        if k == 1:  # colour; present colours twice as often as absent ones
            c = _pick(rng, sorted(colours_present)) if rng.random() < 0.67 else _pick(rng, list(COLOURS))
            return QA(task, f"How many {c} shapes?", str(sum(o.colour == c for o in objs)))
        s = _pick(rng, sorted(shapes_present)) if rng.random() < 0.67 else _pick(rng, SHAPES)
        return QA(task, f"How many {PLURAL[s]} are there?", str(sum(o.shape == s for o in objs)))
    if task == "yesno":
        want_yes = rng.random() < 0.5
        k = int(rng.integers(4))
        if k == 3 and len(objs) >= 2:
            a, b = [objs[i] for i in rng.choice(len(objs), size=2, replace=False)]
            if abs(a.center[0] - b.center[0]) >= 0.06 * scene.width:
                yes = a.center[0] < b.center[0]
                return QA(task, f"Is the {a.label} to the left of the {b.label}?", "Yes" if yes else "No",
                          {"named": [a.label, b.label]})
            k = 0
        if k == 3:
            k = 2
        if k == 0:
            pool = sorted(shapes_present) if want_yes else [s for s in SHAPES if s not in shapes_present]
            s = _pick(rng, pool)
            return QA(task, f"Is there {article(s)} {s}?", "Yes" if s in shapes_present else "No")
        if k == 1:
            pool = sorted(colours_present) if want_yes else [c for c in COLOURS if c not in colours_present]
            c = _pick(rng, pool)
            return QA(task, f"Is there {article(c)} {c} shape?", "Yes" if c in colours_present else "No")
        labels = {o.label for o in objs}
        if want_yes:
            lab = _pick(rng, sorted(labels))
        else:  # hard negatives: right colour or right shape, wrong combination, half the time
            near = [f"{c} {s}" for c in COLOURS for s in SHAPES
                    if f"{c} {s}" not in labels and (c in colours_present or s in shapes_present)]
            far = [f"{c} {s}" for c in COLOURS for s in SHAPES if f"{c} {s}" not in labels]
            lab = _pick(rng, near if (near and rng.random() < 0.5) else far)
        return QA(task, f"Is there {article(lab)} {lab}?", "Yes" if lab in labels else "No",
                  {"named": [lab]} if lab in labels else {})
    if task == "attribute":
        opts = []
        for s in sorted(shapes_present):
            if sum(o.shape == s for o in objs) == 1:
                opts.append(("colour_of", s))
        for c in sorted(colours_present):
            if sum(o.colour == c for o in objs) == 1:
                opts.append(("shape_of", c))
        if len(objs) >= 2:
            for side in ("left", "right", "top", "bottom"):
                opts.append(("extreme", side))
        opts += [("where", i) for i in range(len(objs))]
        rng.shuffle(opts)
        for kind, arg in opts:
            if kind == "colour_of":
                o = next(o for o in objs if o.shape == arg)
                return QA(task, f"What colour is the {arg}?", o.colour)
            if kind == "shape_of":
                o = next(o for o in objs if o.colour == arg)
                return QA(task, f"What shape is the {arg} one?", o.shape)
            if kind == "extreme":
                axis = 0 if arg in ("left", "right") else 1
                sign = 1 if arg in ("left", "top") else -1
                order = sorted(objs, key=lambda o: sign * o.center[axis])
                extent = scene.width if axis == 0 else scene.height
                if abs(order[0].center[axis] - order[1].center[axis]) < 0.08 * extent:
                    continue
                phr = {"left": "furthest left", "right": "furthest right", "top": "highest",
                       "bottom": "lowest"}[arg]
                return QA(task, f"Which shape is {phr}?", order[0].label, {"named": [order[0].label]})
            if kind == "where":
                o = objs[arg]
                fx, fy = o.center[0] / scene.width, o.center[1] / scene.height
                # skip centres close to the thirds' borders (ambiguous)
                if min(abs(fx - 1 / 3), abs(fx - 2 / 3), abs(fy - 1 / 3), abs(fy - 2 / 3)) < 0.05:
                    continue
                pos = POSITIONS[min(2, int(fy * 3))][min(2, int(fx * 3))]
                return QA(task, f"Where is the {o.label}?", pos, {"named": [o.label]})
        o = objs[0]
        return QA(task, f"What colour is the {o.shape}?", o.colour) if \
            sum(x.shape == o.shape for x in objs) == 1 else QA(task, "How many shapes are there?", str(len(objs)))
    if task == "detect":
        if rng.random() < 0.6 or len(objs) == 1:
            return QA(task, _pick(rng, DETECT_ALL_Q), detection_json(objs, det_style),
                      {"boxes": [{"bbox_2d": o.box_resized, "label": o.label} for o in objs]})
        o = _pick(rng, objs)
        q = _pick(rng, DETECT_ONE_Q).format(label=o.label)
        return QA(task, q, detection_json([o], det_style),
                  {"boxes": [{"bbox_2d": o.box_resized, "label": o.label}]})
    raise ValueError(task)


def sample_qas(scene: Scene, rng: np.random.Generator, k: int, weights: dict[str, float] | None = None,
               det_style: str = "compact") -> list[QA]:
    """k distinct tasks about one scene (for multi-turn training conversations)."""
    weights = weights or {t: 1.0 for t in TASKS}
    tasks = list(weights)
    p = np.array([weights[t] for t in tasks], dtype=np.float64)
    p /= p.sum()
    k = min(k, len(tasks))
    chosen = list(rng.choice(len(tasks), size=k, replace=False, p=p))
    return [ask(scene, tasks[i], rng, det_style) for i in chosen]


# --------------------------------------------------------------------------------------------
# Answer parsing for evaluation
# --------------------------------------------------------------------------------------------
def parse_detection(text: str) -> list[dict] | None:
    """The list of {"bbox_2d": [..4 numbers..], "label": str} in a model answer (fences allowed)."""
    t = text.strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else ""
        t = t.rsplit("```", 1)[0]
    try:
        v = json.loads(t)
    except Exception:
        return None
    if isinstance(v, dict):
        v = [v]
    out = []
    if not isinstance(v, list):
        return None
    for it in v:
        if isinstance(it, dict) and isinstance(it.get("bbox_2d"), list) and len(it["bbox_2d"]) == 4 \
                and all(isinstance(x, (int, float)) for x in it["bbox_2d"]):
            out.append({"bbox_2d": [float(x) for x in it["bbox_2d"]], "label": str(it.get("label", ""))})
    return out


def detection_score(pred_text: str, gt: list[dict]) -> float:
    """Mean IoU of a detection answer: predictions matched to ground truth by label (labels are unique
    per scene), every unmatched ground truth or prediction counts 0; unparseable answer: 0."""
    pred = parse_detection(pred_text)
    if pred is None:
        return 0.0
    by_label = {}
    for p in pred:
        by_label.setdefault(p["label"], p)
    matched = 0
    total = 0.0
    for g in gt:
        p = by_label.get(g["label"])
        if p is not None:
            total += box_iou(p["bbox_2d"], g["bbox_2d"])
            matched += 1
    denom = len(gt) + (len(pred) - matched)
    return total / denom if denom else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("scenes_out"))
    ap.add_argument("--stats", type=int, default=0, help="also print statistics over this many scenes")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "scenes.jsonl", "w") as fh:
        for i in range(args.count):
            sc = make_scene(args.seed, i)
            sc.image.save(args.out / f"scene_{args.seed}_{i:05d}.png")
            rec = sc.to_json()
            rng = np.random.default_rng([args.seed, i, 1])
            rec["questions"] = [vars(ask(sc, t, rng)) for t in TASKS]
            fh.write(json.dumps(rec) + "\n")
    if args.stats:
        import collections
        toks, nobj, sizes, resized = [], collections.Counter(), [], 0
        for i in range(args.stats):
            sc = make_scene(args.seed, i)
            toks.append(sc.grid_tokens())
            nobj[len(sc.objects)] += 1
            sizes += [o.box_resized[2] - o.box_resized[0] for o in sc.objects]
            resized += (sc.width, sc.height) != (sc.resized_width, sc.resized_height)
        print(f"image tokens: mean {np.mean(toks):.1f} min {min(toks)} max {max(toks)}; objects {dict(sorted(nobj.items()))}; "
              f"object width (resized px): mean {np.mean(sizes):.1f} min {min(sizes)}; resized images {resized}/{args.stats}")


if __name__ == "__main__":
    main()
