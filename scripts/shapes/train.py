#!/usr/bin/env python3
"""Train the bundled `shapes` model: a small Qwen2.5-VL learning the scenes of scenes.py, on CPU.

The model is transformers' Qwen2_5_VLForConditionalGeneration with a shrunk config (--size; "m" is 3.0M
parameters, 12 MB in float32). The folder it writes is a real Qwen2.5-VL checkpoint in the hub layout (flat
config.json, ``model.*`` / ``visual.*`` / ``lm_head`` tensor names, model.safetensors) with the real chat
template, a byte-level BPE tokenizer trained here on the task text (Qwen2's pre-tokenizer, the 14 Qwen special
tokens) and the Qwen2-VL image processor at the scenes' pixel budget (at most 25 image tokens), so Glimpse
loads it through the same mistralrs path as a downloaded Qwen2.5-VL.

Training examples are multi-turn chats about one scene (1..--max-turns questions), rendered by the
processor's own chat template and processor call; the loss is on the assistant's answer tokens (and their
<|im_end|>). `--aux W` adds a dense loss on the vision tower's output tokens (class of the shape or word under
each 28-px cell, the word, the shape's box), used only in training and never exported; `--vision-warmup N`
trains the vision tower alone on it for the first N steps. `eval` runs greedy generation with transformers on
held-out scenes (the scores that count are measured through Glimpse's HTTP API by evaluate.py).

`--probe W` adds linear read-outs of a middle layer at answer positions (see Encoder.probe_targets), and
`--probe-where` adds where the named objects are to them (see where_of_question); train.sh uses both, at 0.2.
Two research options train.sh does not use (the model card says what they did): `--probe-digits` adds to the
read-outs the coordinate each box digit belongs to, and `--aux-digits` adds the same for each shape's edges to
the tower's dense targets, both as digit_code.
Another research option it does not use (the model card says what it measured): `--oracle llm|vision|joint`
replaces the image tokens by ground-truth ones (see Oracle) to train the language model apart from the tower.

    python -m torch.distributed.run --nproc-per-node 2 train.py train --out DIR ...   # train.sh: the bundled
                                                                                     # model's phases
    train.py eval  --out DIR --scenes 100
    train.py bench --steps 20          # throughput only

Data parallelism over processes (gloo, one thread each) scales better than threads on small CPUs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from transformers import AutoImageProcessor, AutoProcessor, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import scenes  # noqa: E402

REPO = HERE.parents[1]
BASE_SCRIPT = REPO / "scripts/fixtures/make_tiny_qwen2_5_vl.py"


def load_base():
    """The Qwen2.5-VL fixture generator (tokenizer recipe, special tokens, chat template, hub tensor names, JSON
    writer), imported read-only so both checkpoints follow one recipe."""
    sys.dont_write_bytecode = True
    spec = importlib.util.spec_from_file_location("make_tiny_qwen2_5_vl", BASE_SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


base = load_base()

TRAIN_SEED = 1
EVAL_SEED = 20250
CORPUS_SEED = 7
TASK_WEIGHTS = {"caption": 1.0, "count": 1.0, "attribute": 0.5, "yesno": 1.0, "read": 1.0, "detect": 2.0}
MAX_NEW = {"caption": 30, "count": 4, "attribute": 8, "yesno": 4, "read": 6, "detect": 120}

# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------
SIZES = {
    # text: hidden, intermediate, layers, heads, kv heads, mrope_section (sum = head_dim / 2)
    # vision: hidden, intermediate, depth, heads, window, full-attention blocks
    "s": dict(hidden=128, inter=384, layers=4, heads=4, kv=2, mrope=[4, 6, 6],
              v_hidden=96, v_inter=256, v_depth=4, v_heads=4, window=112, fullatt=[1, 3]),
    "m": dict(hidden=192, inter=512, layers=4, heads=6, kv=2, mrope=[4, 6, 6],
              v_hidden=128, v_inter=320, v_depth=4, v_heads=4, window=112, fullatt=[1, 3]),
    "l": dict(hidden=256, inter=768, layers=6, heads=8, kv=2, mrope=[4, 6, 6],
              v_hidden=160, v_inter=448, v_depth=6, v_heads=5, window=112, fullatt=[2, 5]),
}


def hub_config(size: dict, vocab_size: int, sid: dict) -> dict:
    """config.json for a --size: the fixture generator's Qwen2.5-VL config with these sizes."""
    text = {**base.TEXT, "hidden_size": size["hidden"], "intermediate_size": size["inter"],
            "num_hidden_layers": size["layers"], "num_attention_heads": size["heads"],
            "num_key_value_heads": size["kv"], "max_position_embeddings": 2048, "mrope_section": size["mrope"]}
    vision = {**base.VISION, "depth": size["v_depth"], "hidden_size": size["v_hidden"],
              "out_hidden_size": size["hidden"], "intermediate_size": size["v_inter"], "num_heads": size["v_heads"],
              "window_size": size["window"], "fullatt_block_indexes": size["fullatt"]}
    return base.hub_config(vocab_size, sid, text, vision)


REGULAR_VOCAB = 640


def tokenizer_corpus() -> list[str]:
    """Every kind of text the model reads or writes: questions and answers about corpus scenes (a seed used
    neither for training nor evaluation) and the chat template's fixed text."""
    lines = ["You are a helpful assistant.", "system", "user", "assistant", "Yes", "No"]
    lines += [str(i) for i in range(200)]
    for i in range(3000):
        sc = scenes.make_scene(CORPUS_SEED, i)
        rng = np.random.default_rng([CORPUS_SEED, i])
        for t in scenes.TASKS:
            qa = scenes.ask(sc, t, rng)
            lines += [qa.question, qa.answer]
    return lines


def write_folder(out: Path, cfg_of_vocab) -> dict:
    """Model folder without weights: a byte-level BPE tokenizer trained here on the task corpus (Qwen2's
    pre-tokenizer: digits one by one) with the 14 Qwen special tokens after it, the real Qwen2.5-VL chat
    template, the Qwen2-VL image processor settings of the scenes' pixel budget, generation config and
    config.json. Returns the config."""
    out.mkdir(parents=True, exist_ok=True)
    base.TARGET_REGULAR_VOCAB = REGULAR_VOCAB
    tok = base.build_tokenizer(tokenizer_corpus())
    base.check_tokens_ascii(tok)
    n = tok.get_vocab_size(with_added_tokens=True)
    sid = {t: tok.token_to_id(t) for t in base.SPECIAL_TOKENS}
    cfg = cfg_of_vocab(base.round_up(n, 64), sid)
    tok.save(str(out / "tokenizer.json"), pretty=True)
    base.write_json(out / "tokenizer_config.json", base.tokenizer_config(sid))
    (out / "chat_template.jinja").write_text(base.CHAT_TEMPLATE, encoding="utf-8")
    base.write_json(out / "generation_config.json", {
        "bos_token_id": sid["<|endoftext|>"],
        "eos_token_id": [sid["<|im_end|>"], sid["<|endoftext|>"]],
        "pad_token_id": sid["<|endoftext|>"],
        "do_sample": False,
    })
    base.write_json(out / "preprocessor_config.json", {
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": base.OPENAI_CLIP_MEAN, "image_processor_type": "Qwen2VLImageProcessor",
        "image_std": base.OPENAI_CLIP_STD, "max_pixels": scenes.MAX_PIXELS, "merge_size": 2,
        "min_pixels": scenes.MIN_PIXELS, "patch_size": 14, "processor_class": "Qwen2_5_VLProcessor",
        "resample": 3, "rescale_factor": 1 / 255,
        "size": {"longest_edge": scenes.MAX_PIXELS, "shortest_edge": scenes.MIN_PIXELS},
        "temporal_patch_size": 2,
    })
    base.write_json(out / "config.json", cfg)
    return cfg


def new_model(cfg: dict, seed: int) -> Qwen2_5_VLForConditionalGeneration:
    config = Qwen2_5_VLConfig(**json.loads(json.dumps(cfg)))
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
    return model


def save_weights(model, out: Path, dtype=torch.float32) -> int:
    """model.safetensors in the transformers-4.x hub layout (as the fixture); returns bytes."""
    sd = model.state_dict()
    hub = {base.to_hub_name(k): v.detach().contiguous().to(dtype) for k, v in sd.items()}
    hub = {k: hub[k] for k in sorted(hub)}
    tmp = out / "model.safetensors.tmp"
    save_file(hub, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out / "model.safetensors")
    return (out / "model.safetensors").stat().st_size


def load_weights(model, folder: Path) -> None:
    """Loads a model.safetensors written by save_weights (float32, hub names) into a training model."""
    hub = load_file(str(folder / "model.safetensors"))
    model.load_state_dict({k: hub[base.to_hub_name(k)] for k in model.state_dict()})


def load_model(out: Path) -> Qwen2_5_VLForConditionalGeneration:
    m = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(out), dtype=torch.float32,
                                                           attn_implementation="sdpa")
    m.eval()
    return m


def load_processor(out: Path):
    """AutoProcessor with the PIL image backend (as the fixture generator does)."""
    processor = AutoProcessor.from_pretrained(str(out))
    processor.image_processor = AutoImageProcessor.from_pretrained(str(out), backend="pil")
    return processor


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def conversation(scene, qas, image_first=True) -> list[dict]:
    msgs = []
    for i, qa in enumerate(qas):
        content = [{"type": "text", "text": qa.question}]
        if i == 0:
            content = [{"type": "image"}] + content if image_first else content + [{"type": "image"}]
        msgs.append({"role": "user", "content": content})
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": qa.answer}]})
    return msgs


class Encoder:
    def __init__(self, processor):
        self.p = processor
        tok = processor.tokenizer
        self.header = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
        self.im_end = tok.convert_tokens_to_ids("<|im_end|>")
        self.pad = tok.convert_tokens_to_ids("<|endoftext|>")
        self.probes = False  # --probe
        self.probe_where = False  # --probe-where
        self.probe_digits = False  # --probe-digits

    def encode_train(self, scene, qas, image_first=True) -> dict:
        msgs = conversation(scene, qas, image_first)
        text = self.p.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False)
        enc = self.p(text=[text], images=[scene.image], return_tensors="pt")
        ids = enc["input_ids"][0]
        labels = torch.full_like(ids, -100)
        task_ids = torch.full_like(ids, -1)
        lst = ids.tolist()
        h = self.header
        i, n_ans = 0, 0
        spans = []  # [start, end) of each answer's label positions (its tokens and <|im_end|>)
        while i < len(lst):
            if lst[i:i + len(h)] == h:
                j = i + len(h)
                while j < len(lst) and lst[j] != self.im_end:
                    j += 1
                labels[i + len(h):j + 1] = ids[i + len(h):j + 1]
                task_ids[i + len(h):j + 1] = scenes.TASKS.index(qas[n_ans].task)
                spans.append((i + len(h), j + 1))
                n_ans += 1
                i = j
            i += 1
        assert n_ans == len(qas), (n_ans, len(qas))
        grid = enc["image_grid_thw"][0].tolist()
        assert [grid[1] * 14, grid[2] * 14] == [scene.resized_height, scene.resized_width], (grid, scene)
        ex = {"input_ids": ids, "labels": labels, "task_ids": task_ids, "mm_token_type_ids": enc["mm_token_type_ids"][0],
              "pixel_values": enc["pixel_values"], "image_grid_thw": enc["image_grid_thw"]}
        if self.probes:
            ex["probe"] = self.probe_targets(ids, spans, scene, qas)
        return ex

    def probe_targets(self, ids, spans, scene, qas) -> dict:
        """Training-only targets for --probe, at each position that predicts an answer token: what the token
        about to be written is about (colour and shape of the object asked about or being described, which
        coordinate and digit of a box it is, that object's box) and which labels the scene holds. Each is an
        intermediate step of an answer; supervising it directly turns answers that need two facts at once
        (question x picture, coordinate x box) into two one-fact lookups that a small model picks up sooner."""
        L = len(ids)
        colour = torch.full((L,), -100, dtype=torch.long)
        shape = torch.full((L,), -100, dtype=torch.long)
        slot = torch.full((L,), -100, dtype=torch.long)
        box = torch.zeros((L, 4))
        has_box = torch.zeros(L, dtype=torch.bool)
        answer_pos = torch.zeros(L, dtype=torch.bool)
        digit = torch.zeros((L, len(digit_code(0.0))))
        has_digit = torch.zeros(L, dtype=torch.bool)
        for qa, (a, j) in zip(qas, spans):
            answer_pos[a - 1:j - 1] = True
            per_token = probe_of_answer(scene, qa, self.p.tokenizer, ids[a:j - 1].tolist(), self.probe_where)
            if per_token is None:
                continue
            for k, (c, sh, sl, b) in enumerate(per_token):
                colour[a - 1 + k], shape[a - 1 + k], slot[a - 1 + k] = c, sh, sl
                if b is not None:
                    box[a - 1 + k] = torch.tensor(b, dtype=torch.float32) / 160.0
                    has_box[a - 1 + k] = True
                if self.probe_digits and b is not None and sl != -100:  # a box digit: its coordinate
                    digit[a - 1 + k] = torch.tensor(digit_code(float(b[sl // 3])))
                    has_digit[a - 1 + k] = True
        bag = torch.zeros(len(LABELS))
        for o in scene.objects:
            bag[LABELS.index(o.label)] = 1.0
        out = {"colour": colour, "shape": shape, "slot": slot, "box": box, "has_box": has_box,
               "answer_pos": answer_pos, "bag": bag[None].expand(L, -1).clone()}
        if self.probe_digits:
            out["digit"], out["has_digit"] = digit, has_digit
        return out

    def collate(self, items: list[dict]) -> dict:
        L = max(len(it["input_ids"]) for it in items)
        B = len(items)
        ids = torch.full((B, L), self.pad, dtype=torch.long)
        lab = torch.full((B, L), -100, dtype=torch.long)
        tid = torch.full((B, L), -1, dtype=torch.long)
        att = torch.zeros((B, L), dtype=torch.long)
        mm = torch.zeros((B, L), dtype=items[0]["mm_token_type_ids"].dtype)
        for b, it in enumerate(items):
            n = len(it["input_ids"])
            ids[b, :n] = it["input_ids"]
            lab[b, :n] = it["labels"]
            tid[b, :n] = it["task_ids"]
            att[b, :n] = 1
            mm[b, :n] = it["mm_token_type_ids"]
        batch = {"input_ids": ids, "labels": lab, "task_ids": tid, "attention_mask": att, "mm_token_type_ids": mm,
                 "pixel_values": torch.cat([it["pixel_values"] for it in items]),
                 "image_grid_thw": torch.cat([it["image_grid_thw"] for it in items])}
        if "probe" in items[0]:
            batch["probe"] = {}
            for k, v in items[0]["probe"].items():
                fill = -100 if v.dtype == torch.long else 0
                t = torch.full((B, L) + tuple(v.shape[1:]), fill, dtype=v.dtype)
                for b, it in enumerate(items):
                    t[b, :len(it["input_ids"])] = it["probe"][k]
                batch["probe"][k] = t
        if "aux" in items[0]:
            batch["aux"] = {k: torch.cat([it["aux"][k] for it in items]) for k in items[0]["aux"]}
        return batch


LABELS = [f"{c} {s}" for c in scenes.COLOURS for s in scenes.SHAPES]
N_CLS = 2 + len(LABELS)  # background, text, labels


def aux_targets(scene) -> dict:
    """Dense per-merged-token targets (training-only auxiliary head; never exported): for each 28x28 cell
    of the resized image (row-major, the order of the vision tower's output), its class (2+ colour-shape
    label of the shape covering most of the cell when that is >= 20% of it, else 1 when the cell overlaps
    the word, else 0 background), the word for text cells, and the box of the cell's shape relative to
    the cell centre (in units of 56 px)."""
    gh, gw = scene.resized_height // 28, scene.resized_width // 28
    sx, sy = scene.width / scene.resized_width, scene.height / scene.resized_height
    cls = np.zeros(gh * gw, dtype=np.int64)
    word = np.full(gh * gw, -100, dtype=np.int64)
    box = np.zeros((gh * gw, 4), dtype=np.float32)
    has_box = np.zeros(gh * gw, dtype=bool)
    box_px = np.zeros((gh * gw, 4), dtype=np.float32)  # the answer's units: pixels of the resized input
    wb = scene.word_box
    for r in range(gh):
        for c in range(gw):
            k = r * gw + c
            cx, cy = c * 28 + 14, r * 28 + 14
            x0, y0 = int(c * 28 * sx), int(r * 28 * sy)
            x1, y1 = max(x0 + 1, int((c + 1) * 28 * sx)), max(y0 + 1, int((r + 1) * 28 * sy))
            crop = scene.id_map[y0:y1, x0:x1]
            counts = np.bincount(crop.reshape(-1) + 1, minlength=len(scene.objects) + 1)[1:]
            ovx = min(x1, wb[2]) - max(x0, wb[0])
            ovy = min(y1, wb[3]) - max(y0, wb[1])
            if counts.size and counts.max() >= 0.2 * crop.size:
                o = scene.objects[int(counts.argmax())]
                cls[k] = 2 + LABELS.index(o.label)
                b = o.box_resized
                if ABSOLUTE_AUX:
                    # 0..1 of the resized image: the tower has no absolute position embedding, only relative
                    # (rotary) attention, so without this no token learns where it is
                    box[k] = [b[0] / scene.resized_width, b[1] / scene.resized_height,
                              b[2] / scene.resized_width, b[3] / scene.resized_height]
                else:  # relative to the cell centre, in units of 56 px
                    box[k] = [(b[0] - cx) / 56, (b[1] - cy) / 56, (b[2] - cx) / 56, (b[3] - cy) / 56]
                has_box[k] = True
                box_px[k] = b
            elif ovx > 4 * sx and ovy > 4 * sy:
                cls[k] = 1
                word[k] = scenes.WORDS.index(scene.word)
    pos = np.array([[(c * 28 + 14) / scene.resized_width, (r * 28 + 14) / scene.resized_height]
                    for r in range(gh) for c in range(gw)], dtype=np.float32)
    pos_px = pos * np.array([scene.resized_width, scene.resized_height], dtype=np.float32)
    lens = np.full((gh * gw, 2), -100, dtype=np.int64)  # answer tokens each cell should read as (--lens)
    for k in range(gh * gw):
        if cls[k] >= 2:
            colour, shape = LABELS[cls[k] - 2].split(" ")
            lens[k] = [LENS_IDS[" " + colour], LENS_IDS[" " + shape]]
        elif cls[k] == 1:
            lens[k, 0] = LENS_IDS[scene.word]
    out = {"cls": torch.from_numpy(cls), "word": torch.from_numpy(word), "box": torch.from_numpy(box),
           "has_box": torch.from_numpy(has_box), "lens": torch.from_numpy(lens), "pos": torch.from_numpy(pos),
           "pos_px": torch.from_numpy(pos_px), "box_px": torch.from_numpy(box_px)}
    if AUX_DIGITS:  # the phases of the shape's four edges (the ones and tens digits the answer writes)
        phase = [[c for v in b for c in digit_code(float(v))[1:]] for b in box_px]
        out["box_phase"] = torch.tensor(phase, dtype=torch.float32).reshape(gh * gw, -1)
    return out


def where_of_question(scene, qa):
    """--probe-where: the box read-out's target for a question that is not detection. The box of the one object
    the question or its answer names (`qa.meta["named"]`: "Where is the red circle?", "Is there a red star?",
    "Which shape is highest?"), or, for the two of "Is the A to the left of the B?", the centres of A and B
    (x, y, x, y); None when no object is named. Relations and positions need the language model to gather where
    the named objects are, which no other target asks of it."""
    boxes = [next(o for o in scene.objects if o.label == lab).box_resized for lab in qa.meta.get("named", [])]
    if len(boxes) == 2:
        a, b = boxes
        return [(a[0] + a[2]) / 2, (a[1] + a[3]) / 2, (b[0] + b[2]) / 2, (b[1] + b[3]) / 2]
    return list(boxes[0]) if boxes else None


def probe_of_answer(scene, qa, tokenizer, answer_ids: list[int], where: bool = False):
    """(colour, shape, slot, box) for each answer token (see Encoder.probe_targets); None when the
    answer's tokens in the conversation are not its tokens alone."""
    enc = tokenizer(qa.answer, add_special_tokens=False, return_offsets_mapping=True)
    if enc["input_ids"] != answer_ids:
        return None
    colours, shapes = list(scenes.COLOURS), list(scenes.SHAPES)
    words = qa.question.lower().rstrip("?.").split()
    q_colour = next((colours.index(w) for w in words if w in colours), -100)
    q_shape = next((shapes.index(w.rstrip("s")) for w in words if w.rstrip("s") in shapes), -100)
    if len(qa.meta.get("named", [])) == 2:  # "Is the A to the left of the B?": two objects, no single one
        q_colour = q_shape = -100
    if qa.task != "detect":
        return [(q_colour, q_shape, -100, where_of_question(scene, qa) if where else None)] * len(answer_ids)
    # detection: which object each character belongs to, and each digit's coordinate and place
    text = qa.answer
    char_obj = [-1] * len(text)
    char_slot = [-100] * len(text)
    for n, m in enumerate(re.finditer(r"\{[^}]*\}", text)):
        for k in range(m.start(), m.end()):
            char_obj[k] = n
        arr = re.search(r"\[([0-9, ]+)\]", m.group(0))
        for c, num in enumerate(re.finditer(r"[0-9]+", arr.group(1))):
            start = m.start() + arr.start(1) + num.start()
            for d in range(len(num.group(0))):
                char_slot[start + d] = c * 3 + (len(num.group(0)) - 1 - d)
    objs = [None] + [next(o for o in scene.objects if o.label == b["label"]) for b in qa.meta["boxes"]]
    out = []
    for (s0, s1) in enc["offset_mapping"]:
        n = max(char_obj[s0:s1] or [-1])
        o = objs[n + 1]
        sl = next((x for x in char_slot[s0:s1] if x != -100), -100)
        if o is None:
            out.append((-100, -100, -100, None))
        else:
            out.append((colours.index(o.colour), shapes.index(o.shape), sl, o.box_resized))
    return out


def digit_code(v: float) -> list[float]:
    """A coordinate `v` (pixels) as v/160 and the phases of v on periods of 10 and 100 pixels: its ones and
    tens digits are then the angle of a point on a circle, which a linear map splits into ten sectors, where
    from v alone they are sawtooth functions that a small network learns slowly."""
    return [v / 160.0] + [f(2 * math.pi * v / p) for p in (10.0, 100.0) for f in (math.sin, math.cos)]


class ProbeHead(torch.nn.Module):
    """Training-only linear read-outs of a middle layer's hidden state at answer positions (--probe)."""

    def __init__(self, dim: int, digits: bool = False):
        super().__init__()
        self.digits = len(digit_code(0.0)) if digits else 0
        n = len(scenes.COLOURS) + len(scenes.SHAPES) + 12 + 4 + self.digits + len(LABELS)
        self.proj = torch.nn.Linear(dim, n)

    def loss(self, hidden: torch.Tensor, t: dict) -> tuple[torch.Tensor, dict]:
        F = torch.nn.functional
        nc, ns = len(scenes.COLOURS), len(scenes.SHAPES)
        y = self.proj(F.layer_norm(hidden, hidden.shape[-1:]))  # the residual's scale grows
        parts, total = {}, hidden.sum() * 0
        for name, lo, hi in (("colour", 0, nc), ("shape", nc, nc + ns), ("slot", nc + ns, nc + ns + 12)):
            sel = t[name] != -100
            if sel.any():
                v = F.cross_entropy(y[sel][:, lo:hi], t[name][sel])
                parts["probe_" + name] = float(v)
                total = total + v
        hb = t["has_box"]
        if hb.any():
            v = F.smooth_l1_loss(y[hb][:, nc + ns + 12:nc + ns + 16], t["box"][hb], beta=0.02) * 10
            parts["probe_box"] = float(v)
            total = total + v
        hd = t.get("has_digit")
        if self.digits and hd is not None and hd.any():
            lo = nc + ns + 16
            v = F.smooth_l1_loss(y[hd][:, lo:lo + self.digits], t["digit"][hd], beta=0.02) * 10
            parts["probe_digit"] = float(v)
            total = total + v
        ap = t["answer_pos"]
        if ap.any():
            v = F.binary_cross_entropy_with_logits(y[ap][:, -len(LABELS):], t["bag"][ap])
            parts["probe_bag"] = float(v)
            total = total + v
        return total, parts


LENS_IDS: dict[str, int] = {}
ABSOLUTE_AUX = True  # set from --absolute-aux
AUX_DIGITS = False  # set from --aux-digits


def set_lens_ids(tokenizer) -> None:
    """The single tokens of " red", " circle" (as captions write them) and of each bare word (as read answers
    write it)."""
    for text in [" " + c for c in scenes.COLOURS] + [" " + s for s in scenes.SHAPES] + scenes.WORDS:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, (text, ids)
        LENS_IDS[text] = ids[0]


def single_object_p(step: int, args) -> float:
    """Curriculum: the share of one-shape scenes, from --single-p0 at step --single-from falling linearly to
    --single-p1 over --single-span steps (one shape first makes binding words to image tokens easy)."""
    if not args.single_p0 or step < args.single_from:
        return 0.0
    t = min(1.0, (step - args.single_from) / max(1, args.single_span))
    return args.single_p0 + (args.single_p1 - args.single_p0) * t


def train_example(enc: Encoder, index: int, args, step: int = 0) -> dict:
    rng = np.random.default_rng([TRAIN_SEED, index, 7])
    one = rng.random() < single_object_p(step, args)
    scene = scenes.make_scene(TRAIN_SEED, index, max_objects=1 if one else scenes.MAX_OBJECTS)
    k = int(rng.integers(1, args.max_turns + 1))
    weights = {**TASK_WEIGHTS, **json.loads(args.task_weights)} if args.task_weights else TASK_WEIGHTS
    qas = scenes.sample_qas(scene, rng, k, weights, args.det_style)
    ex = enc.encode_train(scene, qas, image_first=rng.random() < 0.85)
    if getattr(args, "aux", 0) or getattr(args, "oracle", "off") != "off":
        ex["aux"] = aux_targets(scene)
    return ex


def batches(enc: Encoder, args, start_step: int, rank: int = 0, world: int = 1):
    """Step s uses scenes s*B*P .. : P*B examples sorted by length into P batches (less padding);
    with `world` data-parallel processes, each rank takes its own disjoint share of scenes."""
    B, P = args.batch, args.pool
    step = start_step
    buf = []
    while True:
        if not buf:
            group = step // P
            first = (group * world + rank) * B * P
            items = [train_example(enc, first + i, args, group * P) for i in range(B * P)]
            items.sort(key=lambda it: len(it["input_ids"]))
            buf = [items[i * B:(i + 1) * B] for i in range(P)]
            order = np.random.default_rng([TRAIN_SEED, group, 3]).permutation(P)
            buf = [buf[i] for i in order][step % P:]
        yield step, enc.collate(buf.pop(0))
        step += 1


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
class AuxHead(torch.nn.Module):
    """Training-only dense head on the vision tower's output (not part of the exported model)."""

    def __init__(self, dim: int):
        super().__init__()
        self.phases = 4 * (len(digit_code(0.0)) - 1) if AUX_DIGITS else 0  # four edges' phases
        self.proj = torch.nn.Linear(dim, N_CLS + len(scenes.WORDS) + self.phases + (2 if ABSOLUTE_AUX else 0) + 4)

    def loss(self, feats: torch.Tensor, t: dict, lens=None, lens_w: float = 0.0) -> tuple[torch.Tensor, dict]:
        """`lens` (feats -> vocabulary logits through the language model's final norm and lm_head) trains each
        image token to read, in the model's own output space, as the words an answer would use for it."""
        y = self.proj(feats)
        lc = torch.nn.functional.cross_entropy(y[:, :N_CLS], t["cls"])
        wsel = t["word"] != -100
        lw = torch.nn.functional.cross_entropy(y[wsel, N_CLS:N_CLS + len(scenes.WORDS)], t["word"][wsel]) \
            if wsel.any() else y.sum() * 0
        hb = t["has_box"]
        lb = torch.nn.functional.smooth_l1_loss(y[hb, -4:], t["box"][hb], beta=0.05) * 10 if hb.any() else y.sum() * 0
        parts = {"aux_cls": float(lc), "aux_word": float(lw), "aux_box": float(lb)}
        total = lc + lw + lb
        if self.phases and hb.any():  # the edges' digits as phases, linear in the tower's output
            lo = N_CLS + len(scenes.WORDS)
            lph = torch.nn.functional.smooth_l1_loss(y[hb, lo:lo + self.phases], t["box_phase"][hb], beta=0.02) * 10
            parts["aux_digits"] = float(lph)
            total = total + lph
        if ABSOLUTE_AUX:  # each token's own place in the image
            lp = torch.nn.functional.smooth_l1_loss(y[:, -6:-4], t["pos"], beta=0.02) * 10
            parts["aux_pos"] = float(lp)
            total = total + lp
        if lens is not None and lens_w > 0:
            tl = t["lens"]
            sel = tl[:, 0] != -100
            if sel.any():
                logits = lens(feats[sel])
                ll = torch.nn.functional.cross_entropy(logits, tl[sel, 0])
                sel2 = tl[sel, 1] != -100
                if sel2.any():
                    ll = ll + torch.nn.functional.cross_entropy(logits[sel2], tl[sel, 1][sel2])
                total = total + lens_w * ll
                parts["aux_lens"] = float(ll)
        return total, parts


class Oracle(torch.nn.Module):
    """Training-only: the image tokens a perfect vision tower could give, built from the scene's ground truth
    (per 28-px cell: its class, its word, its own position and its shape's box in pixels of the resized input,
    as Fourier features). With --oracle llm the language model learns the tasks on these tokens alone (no
    vision tower: fast, and the answers' dependence on the picture is clean from the first step); with
    --oracle vision the tower learns to produce them; with --oracle joint both train on real pixels while the
    tower is held near them. Never exported: the checkpoint is the plain Qwen2.5-VL."""

    PERIODS = (10.0, 20.0, 40.0, 80.0, 160.0, 320.0)

    def __init__(self, dim: int):
        super().__init__()
        # colour and shape apart (questions name either), and what the cell is: background, word or shape
        self.kind = torch.nn.Embedding(3, dim)
        self.colour = torch.nn.Embedding(len(scenes.COLOURS), dim)
        self.shape = torch.nn.Embedding(len(scenes.SHAPES), dim)
        self.word = torch.nn.Embedding(len(scenes.WORDS) + 1, dim)
        self.val = torch.nn.Linear(6 * (1 + 2 * len(self.PERIODS)), dim)
        for p in (self.kind.weight, self.colour.weight, self.shape.weight, self.word.weight):
            torch.nn.init.normal_(p, std=0.5)

    def forward(self, t: dict) -> torch.Tensor:
        vals = torch.cat([t["pos_px"], t["box_px"]], dim=1)  # (N, 6) pixels
        ang = vals[:, :, None] * (2 * math.pi / torch.tensor(self.PERIODS))
        feats = torch.cat([vals[:, :, None] / 160.0, torch.sin(ang), torch.cos(ang)], dim=2)  # (N, 6, 13)
        feats[:, 2:] *= t["has_box"][:, None, None].to(feats.dtype)  # no box where no shape
        word = torch.where(t["word"] >= 0, t["word"] + 1, torch.zeros_like(t["word"]))
        label = (t["cls"] - 2).clamp(min=0)  # LABELS is colour-major
        is_shape = (t["cls"] >= 2).to(feats.dtype)[:, None]
        n_shapes = len(scenes.SHAPES)
        return self.kind(t["cls"].clamp(max=2)) + is_shape * (self.colour(label // n_shapes) + self.shape(label % n_shapes)) \
            + self.word(word) + self.val(feats.reshape(len(vals), -1))


def oracle_distance(feats: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error relative to the target's mean square (scale-free)."""
    return ((feats - target) ** 2).mean() / (target ** 2).mean().clamp(min=1e-6)


def use_oracle_tokens(model, oracle: Oracle, current: dict) -> None:
    """Make the vision tower return the oracle's tokens for the batch in current["aux"] (skipping its work)."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    def forward(pixel_values, grid_thw=None, **_kw):
        return BaseModelOutputWithPooling(pooler_output=oracle(current["aux"]))
    model.model.visual.forward = forward


_FEATS: dict = {}


def accumulate(per_task: dict, parts: dict) -> None:
    """Add one step's named loss parts to the running {name: [sum, count]} of the log."""
    for k, v in parts.items():
        acc = per_task.setdefault(k, [0.0, 0])
        acc[0] += v
        acc[1] += 1


def capture_vision(model) -> None:
    """Keep the vision tower's output (merged tokens, row-major per image) of each forward in _FEATS."""
    def hook(_m, _inp, out):
        _FEATS["v"] = out.pooler_output if hasattr(out, "pooler_output") else out
    model.model.visual.register_forward_hook(hook)


def loss_of(model, batch, per_task: dict | None = None, hidden: dict | None = None) -> tuple[torch.Tensor, int]:
    """Mean cross entropy over answer tokens; `per_task` accumulates {task: [sum, count]}; `hidden`, when
    given, receives the hidden states of every layer."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                mm_token_type_ids=batch["mm_token_type_ids"], pixel_values=batch["pixel_values"],
                image_grid_thw=batch["image_grid_thw"], use_cache=False, output_hidden_states=hidden is not None)
    if hidden is not None:
        hidden["all"] = out.hidden_states
    logits = out.logits[:, :-1]
    tgt = batch["labels"][:, 1:]
    mask = tgt != -100
    tok_loss = torch.nn.functional.cross_entropy(logits[mask].float(), tgt[mask], reduction="none")
    if per_task is not None:
        tl = tok_loss.detach()

        def add(name: str, sel: torch.Tensor) -> None:
            if sel.any():
                acc = per_task.setdefault(name, [0.0, 0])
                acc[0] += float(tl[sel].sum())
                acc[1] += int(sel.sum())
        tids = batch["task_ids"][:, 1:][mask]
        for k, name in enumerate(scenes.TASKS):
            add(name, tids == k)
        if "probe" in batch:  # box digits by place (ones, tens, hundreds): the log's d1, d10, d100
            slot = batch["probe"]["slot"][:, :-1][mask]
            for place, name in ((0, "d1"), (1, "d10"), (2, "d100")):
                add(name, (slot != -100) & (slot % 3 == place))
    return tok_loss.mean(), int(mask.sum())


def fade(step: int, args) -> float:
    """Weight of the training-only losses: 1, falling linearly to 0 over the last half of training."""
    half = args.steps // 2
    return 1.0 if step < half else max(0.0, 1 - (step - half) / max(1, args.steps - half))


def aux_w(step: int, args) -> float:
    """Auxiliary dense loss weight: args.aux, fading with `fade`."""
    return args.aux * fade(step, args)


def restart_ramp(done: int, n: int) -> float:
    """--restart N: the learning-rate factor of the model's groups `done` steps into a run whose optimizer state is
    fresh. The first N steps freeze the model (its gradients are dropped) while the fresh training-only heads learn
    to read it at full rate; over the next N the factor rises linearly from 0 to 1, so that Adam's first steps,
    full-size before its moment estimates settle, do not land on trained weights at the full rate."""
    if n <= 0 or done < n or done >= 2 * n:
        return 1.0
    return (done - n + 1) / n


def lr_at(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))


def setup(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = Path(args.out)
    size = SIZES[args.size]
    cfg = write_folder(out, lambda vocab, sid: hub_config(size, vocab, sid))
    return out, cfg, load_processor(out)


def setup_readonly(args):
    """setup() for ranks > 0: the folder already exists (written by rank 0)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = Path(args.out)
    return out, json.loads((out / "config.json").read_text()), load_processor(out)


def count_params(model) -> dict:
    vis = sum(p.numel() for n, p in model.named_parameters() if ".visual." in n or n.startswith("visual."))
    tot = sum(p.numel() for p in model.parameters())
    return {"total": tot, "vision": vis, "text": tot - vis, "mb_f32": tot * 4 / 1e6, "mb_bf16": tot * 2 / 1e6}


def compile_blocks(model) -> None:
    """`torch.compile` each decoder layer and vision block in place (parameter names unchanged, so checkpoints
    and saved weights are the same either way). On these CPUs it takes about 3 minutes to warm up and then 12%
    off a training step; the whole model does not compile as one graph (the tower's per-window attention loop,
    the scatter of image tokens into the text)."""
    for layer in model.model.language_model.layers:
        layer.compile(dynamic=True)
    for block in model.model.visual.blocks:
        block.compile(dynamic=True)


def dist_setup():
    """Data parallelism over processes (torchrun --nproc-per-node N, gloo): each process one thread,
    gradients averaged with one all_reduce per step.  On small CPUs this scales better than threads."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist
    dist.init_process_group("gloo")
    return dist.get_rank(), world


def allreduce_grads(model, world: int) -> None:
    import torch.distributed as dist
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:  # a part this phase does not train
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    o = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[o:o + n].view_as(g))
        o += n


def cmd_train(args) -> None:
    global ABSOLUTE_AUX, AUX_DIGITS
    ABSOLUTE_AUX = args.absolute_aux
    AUX_DIGITS = args.aux_digits
    rank, world = dist_setup()
    say = print if rank == 0 else (lambda *a, **k: None)
    if world > 1:
        import torch.distributed as dist
        if rank == 0:
            setup(args)
        dist.barrier()
    out, cfg, processor = setup(args) if rank == 0 or world == 1 else setup_readonly(args)
    enc = Encoder(processor)
    enc.probes = bool(args.probe)
    enc.probe_where = args.probe_where
    enc.probe_digits = args.probe_digits
    set_lens_ids(processor.tokenizer)
    model = new_model(cfg, seed=0)
    model.config._attn_implementation = "sdpa"
    model.train()
    if args.compile:
        compile_blocks(model)

    def lens(feats):
        return model.lm_head(model.model.language_model.norm(feats))
    pc = count_params(model)
    say(f"params {json.dumps(pc)}", flush=True)
    aux_head = None
    if args.aux:
        torch.manual_seed(1)
        aux_head = AuxHead(cfg["hidden_size"])
        capture_vision(model)
    oracle = None
    current: dict = {}
    if args.oracle != "off":
        torch.manual_seed(2)
        oracle = Oracle(cfg["hidden_size"])
        if args.oracle == "llm":
            use_oracle_tokens(model, oracle, current)
        elif aux_head is None:
            capture_vision(model)
    probe_head = None
    if args.probe:
        torch.manual_seed(3)
        probe_head = ProbeHead(cfg["hidden_size"], digits=args.probe_digits)
    named = list(model.named_parameters()) + (list(aux_head.named_parameters()) if aux_head else []) \
        + ([("oracle." + n, p) for n, p in oracle.named_parameters()] if oracle is not None else [])
    probe_named = [("probe." + n, p) for n, p in probe_head.named_parameters()] if probe_head is not None else []

    def groups(params: list) -> list[dict]:
        decay = [p for n, p in params if not (p.ndim < 2 or "norm" in n or "embed" in n)]
        no_decay = [p for n, p in params if p.ndim < 2 or "norm" in n or "embed" in n]
        return [{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups(named), lr=args.lr, betas=(0.9, 0.98), eps=1e-8)
    ckpt = out / "ckpt.pt"
    start = 0
    resume = ckpt.exists() and not args.fresh and not args.init_weights
    st = torch.load(ckpt, map_location="cpu", weights_only=False) if resume else None
    # the probe head's groups come last, and only join before loading a state that has them
    probe_saved = st is not None and len(st["opt"]["param_groups"]) > 2
    if probe_named and (st is None or probe_saved):
        for g in groups(probe_named):
            opt.add_param_group(g)
    named += probe_named
    if st is not None:
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        if probe_named and not probe_saved:
            for g in groups(probe_named):
                opt.add_param_group(g)
        if probe_head is not None and st.get("probe"):
            probe_head.load_state_dict(st["probe"])
        if oracle is not None and st.get("oracle"):
            oracle.load_state_dict(st["oracle"])
        if aux_head is not None and "aux" in st:
            try:
                aux_head.load_state_dict(st["aux"])
            except RuntimeError:  # the head changed shape: it is training-only, start it again
                for p in aux_head.parameters():
                    opt.state.pop(p, None)
                say("aux head reinitialised", flush=True)
        start = st["step"]
        say(f"resumed at step {start}", flush=True)
    if args.init_weights:
        load_weights(model, Path(args.init_weights))
        start = args.init_step
        say(f"model weights from {args.init_weights} at step {start}; optimizer and training-only heads fresh",
            flush=True)
    log = open(out / "train_log.jsonl", "a") if rank == 0 else open(os.devnull, "w")
    t0, c0 = time.time(), time.process_time()
    last_save = time.time()
    ema = None
    per_task: dict = {}
    data_t = 0.0
    it = batches(enc, args, start, rank, world)
    step = start
    while step < args.steps:
        td = time.time()
        step, batch = next(it)
        data_t += time.time() - td
        for i, g in enumerate(opt.param_groups):
            # --restart: the first two groups hold the model (and the aux head); the probe head's follow
            g["lr"] = lr_at(step, args) * (restart_ramp(step - start, args.restart) if i < 2 else 1.0)
        current["aux"] = batch.get("aux")
        if step < args.vision_warmup or args.oracle == "vision":  # the vision tower alone on dense targets
            model.model.visual(batch["pixel_values"], grid_thw=batch["image_grid_thw"])
            loss, ntok = torch.zeros(()), 0
        else:
            hidden = {} if probe_head is not None else None
            loss, ntok = loss_of(model, batch, per_task, hidden)
            if probe_head is not None:
                lp, parts = probe_head.loss(hidden["all"][args.probe_layer], batch["probe"])
                accumulate(per_task, parts)
                loss = loss + args.probe * fade(step, args) * lp
        if oracle is not None and args.oracle in ("vision", "joint"):
            with torch.no_grad():
                target = oracle(batch["aux"])
            feats = _FEATS["v"] if aux_head is not None else _FEATS.pop("v")
            lo = oracle_distance(feats, target)
            accumulate(per_task, {"oracle": float(lo)})
            loss = loss + (1.0 if args.oracle == "vision" else args.oracle_w) * lo
        if aux_head is not None and args.oracle != "llm":
            la, parts = aux_head.loss(_FEATS.pop("v"), batch["aux"], lens, args.lens)
            accumulate(per_task, parts)
            loss = loss + aux_w(step, args) * la
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if step - start < args.restart:  # the fresh training-only heads first learn to read the model as it is
            for p in model.parameters():
                p.grad = None
        if world > 1:
            allreduce_grads(model, world)
            if aux_head is not None:
                allreduce_grads(aux_head, world)
            if oracle is not None and args.oracle == "llm":
                allreduce_grads(oracle, world)
            if probe_head is not None:
                allreduce_grads(probe_head, world)
        gn = torch.nn.utils.clip_grad_norm_([p for _, p in named if p.grad is not None], args.clip)
        opt.step()
        step += 1
        lv = float(loss.detach())
        ema = lv if ema is None else 0.95 * ema + 0.05 * lv
        el, cpu = time.time() - t0, time.process_time() - c0
        if step % args.log_every == 0 or step == start + 1:
            rec = {"step": step, "loss": round(lv, 4), "ema": round(ema, 4), "lr": round(opt.param_groups[0]["lr"], 6),
                   "gnorm": round(float(gn), 3), "ans_tokens": ntok, "seq_len": int(batch["input_ids"].shape[1]),
                   "wall_s": round(el, 1), "cpu_s": round(cpu, 1), "data_wall_s": round(data_t, 1),
                   "steps_per_wall_s": round((step - start) / el, 4), "steps_per_cpu_s": round((step - start) / cpu, 4),
                   "task_loss": {k: round(v[0] / max(1, v[1]), 4) for k, v in per_task.items()}}
            per_task = {}
            say(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
        done = step >= min(args.steps, args.stop_at or args.steps) or bool(args.minutes and el > args.minutes * 60)
        if world > 1:  # every rank stops (and saves) at the same step
            import torch.distributed as dist
            flag = torch.tensor([float(done), float(time.time() - last_save > args.save_minutes * 60)])
            dist.broadcast(flag, 0)
            done, save_now = bool(flag[0]), bool(flag[1])
        else:
            save_now = time.time() - last_save > args.save_minutes * 60
        if rank != 0:
            if done:
                break
            continue
        if done or save_now:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                        "aux": aux_head.state_dict() if aux_head is not None else None,
                        "oracle": oracle.state_dict() if oracle is not None else None,
                        "probe": probe_head.state_dict() if probe_head is not None else None}, ckpt)
            save_weights(model, out)
            last_save = time.time()
        if args.eval_every and step % args.eval_every == 0 and not done:
            model.eval()
            res = evaluate(model, processor, args.eval_scenes, args)
            model.train()
            res["step"] = step
            say("eval " + json.dumps(res), flush=True)
            log.write(json.dumps({"eval": res}) + "\n")
            log.flush()
        if done:
            break
    if rank != 0:
        return
    nbytes = save_weights(model, out)
    print(f"saved {out / 'model.safetensors'} ({nbytes / 1e6:.2f} MB) at step {step}", flush=True)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
def eval_items(n_scenes: int, det_style: str):
    items = []
    for i in range(n_scenes):
        sc = scenes.make_scene(EVAL_SEED, i)
        rng = np.random.default_rng([EVAL_SEED, i, 11])
        for t in scenes.TASKS:
            items.append((sc, scenes.ask(sc, t, rng, det_style)))
    return items


@torch.no_grad()
def generate_batch(model, processor, batch) -> list[str]:
    texts, images = [], []
    for sc, qa in batch:
        msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": qa.question}]}]
        texts.append(processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
        images.append(sc.image)
    processor.tokenizer.padding_side = "left"
    inputs = processor(text=texts, images=images, return_tensors="pt", padding=True)
    max_new = max(MAX_NEW[qa.task] for _, qa in batch)
    out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new,
                         eos_token_id=[processor.tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                       processor.tokenizer.convert_tokens_to_ids("<|endoftext|>")],
                         pad_token_id=processor.tokenizer.convert_tokens_to_ids("<|endoftext|>"))
    gen = out[:, inputs["input_ids"].shape[1]:]
    return [processor.tokenizer.decode(g, skip_special_tokens=True) for g in gen]


def score(task: str, qa, pred: str) -> float:
    p = pred.strip()
    if task == "detect":
        return scenes.detection_score(p, qa.meta["boxes"])
    if task == "yesno":
        return float(p.rstrip(".").lower() == qa.answer.lower())
    return float(p == qa.answer)


def evaluate(model, processor, n_scenes: int, args, dump: Path | None = None) -> dict:
    items = eval_items(n_scenes, args.det_style)
    by_task: dict[str, list] = {}
    for it in items:
        by_task.setdefault(it[1].task, []).append(it)
    res, rows = {}, []
    t0 = time.time()
    for task, its in by_task.items():
        scores = []
        for i in range(0, len(its), args.eval_batch):
            chunk = its[i:i + args.eval_batch]
            preds = generate_batch(model, processor, chunk)
            for (sc, qa), pr in zip(chunk, preds):
                s = score(task, qa, pr)
                scores.append(s)
                rows.append({"scene": sc.index, "task": task, "q": qa.question, "gold": qa.answer, "pred": pr,
                             "score": round(s, 4)})
        res[task] = round(float(np.mean(scores)), 4)
    res["eval_s"] = round(time.time() - t0, 1)
    res["n_scenes"] = n_scenes
    if dump:
        with open(dump, "w") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
    return res


THRESHOLDS = {"caption": 0.90, "count": 0.90, "yesno": 0.95, "read": 0.90, "detect": 0.75}


def cmd_eval(args) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    model = load_model(out)
    processor = load_processor(out)
    res = evaluate(model, processor, args.scenes, args, dump=out / "eval_preds.jsonl")
    res["pass"] = {k: res[k] >= v for k, v in THRESHOLDS.items()}
    print(json.dumps(res, indent=1))
    (out / "eval.json").write_text(json.dumps(res, indent=1) + "\n")


def cmd_bench(args) -> None:
    """Steps/s of training (forward+backward+AdamW) and of data preparation, separately."""
    out, cfg, processor = setup(args)
    enc = Encoder(processor)
    model = new_model(cfg, 0)
    model.train()
    print(f"size {args.size} params {json.dumps(count_params(model))}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    # data alone
    t0, c0 = time.time(), time.process_time()
    data = []
    gen = batches(enc, args, 0)
    for _ in range(args.steps):
        data.append(next(gen)[1])
    dw, dc = time.time() - t0, time.process_time() - c0
    seq = [b["input_ids"].shape[1] for b in data]
    ans = [int((b["labels"] != -100).sum()) for b in data]
    img = [int(b["image_grid_thw"].prod(-1).sum()) // 4 for b in data]
    print(f"data: {dw / args.steps:.3f} wall-s/batch, {dc / args.steps:.3f} cpu-s/batch; batch {args.batch}: "
          f"mean padded len {np.mean(seq):.0f}, answer tokens/batch {np.mean(ans):.0f}, image tokens/batch {np.mean(img):.0f}",
          flush=True)
    # model alone (first step excluded: warm-up)
    loss_of(model, data[0])[0].backward()
    t0, c0 = time.time(), time.process_time()
    for b in data[1:]:
        loss, _ = loss_of(model, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    n = len(data) - 1
    mw, mc = time.time() - t0, time.process_time() - c0
    print(f"model: {mw / n:.3f} wall-s/step, {mc / n:.3f} cpu-s/step ({args.threads} threads); "
          f"loss {float(loss):.3f}", flush=True)
    print(json.dumps({"size": args.size, "batch": args.batch, "threads": args.threads,
                      "data_cpu_s_per_batch": round(dc / args.steps, 4), "model_cpu_s_per_step": round(mc / n, 4),
                      "model_wall_s_per_step": round(mw / n, 4), "data_wall_s_per_batch": round(dw / args.steps, 4)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("train", "eval", "bench"):
        p = sub.add_parser(name)
        p.add_argument("--out", default=str(HERE / "run"))
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--size", default="m", choices=sorted(SIZES))
        p.add_argument("--batch", type=int, default=8)
        p.add_argument("--pool", type=int, default=4, help="batches drawn together and sorted by length")
        p.add_argument("--max-turns", type=int, default=3)
        p.add_argument("--det-style", default="compact", choices=["compact", "qwen"])
        p.add_argument("--eval-batch", type=int, default=16)
        p.add_argument("--steps", type=int, default=3000)
        p.add_argument("--scenes", type=int, default=500)
        p.add_argument("--minutes", type=float, default=0.0)
        p.add_argument("--lr", type=float, default=2e-3)
        p.add_argument("--min-lr-frac", type=float, default=0.05)
        p.add_argument("--warmup", type=int, default=100)
        p.add_argument("--wd", type=float, default=0.05)
        p.add_argument("--clip", type=float, default=1.0)
        p.add_argument("--log-every", type=int, default=10)
        p.add_argument("--save-minutes", type=float, default=10.0)
        p.add_argument("--eval-every", type=int, default=0)
        p.add_argument("--eval-scenes", type=int, default=50)
        p.add_argument("--fresh", action="store_true")
        p.add_argument("--init-weights", default="",
                       help="start from this folder's model.safetensors (not DIR/ckpt.pt) at --init-step, with the "
                            "optimizer and the training-only heads fresh")
        p.add_argument("--init-step", type=int, default=0, help="--init-weights: the step those weights were at")
        p.add_argument("--restart", type=int, default=0,
                       help="with fresh optimizer state: N steps of the training-only heads alone, then the model's "
                            "learning rate ramps up over N more")
        p.add_argument("--aux", type=float, default=0.0, help="weight of the dense auxiliary vision loss")
        p.add_argument("--vision-warmup", type=int, default=0, help="first steps train only the vision tower (--aux)")
        p.add_argument("--absolute-aux", action="store_true",
                       help="--aux boxes in image coordinates, plus each token's position (else relative boxes)")
        p.add_argument("--aux-digits", action="store_true",
                       help="--aux: also the phases of each shape's edges on 10 and 100 px (see digit_code)")
        p.add_argument("--stop-at", type=int, default=0, help="stop (and save) at this step; the schedule stays --steps")
        p.add_argument("--task-weights", default="", help='JSON overriding TASK_WEIGHTS, e.g. {"yesno": 2}')
        p.add_argument("--lens", type=float, default=0.0, help="weight of the image-tokens-read-as-words loss (--aux)")
        p.add_argument("--oracle", default="off", choices=["off", "llm", "vision", "joint"],
                       help="ground-truth image tokens: llm learns on them, vision learns to give them, joint both")
        p.add_argument("--oracle-w", type=float, default=1.0, help="--oracle joint: weight of the tower-to-oracle loss")
        p.add_argument("--probe", type=float, default=0.0,
                       help="weight of the middle-layer read-outs of what each answer token is about")
        p.add_argument("--probe-digits", action="store_true",
                       help="--probe: also the coordinate each box digit belongs to, as digit_code")
        p.add_argument("--probe-layer", type=int, default=2, help="--probe reads this layer's output")
        p.add_argument("--probe-where", action="store_true",
                       help="--probe also reads out where the objects a question names are (see where_of_question)")
        p.add_argument("--compile", action="store_true", help="torch.compile the decoder layers and vision blocks")
        p.add_argument("--single-p0", type=float, default=0.0, help="curriculum: share of one-shape scenes ...")
        p.add_argument("--single-p1", type=float, default=0.1, help="... falling to this share ...")
        p.add_argument("--single-from", type=int, default=0, help="... from this step ...")
        p.add_argument("--single-span", type=int, default=2500, help="... over this many steps")
    args = ap.parse_args()
    {"train": cmd_train, "eval": cmd_eval, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    main()
