#!/usr/bin/env python3
"""Random-weight checkpoints of published vision-language models' real shapes, and transformers' answers on them.

No model hub is reachable from the machines Glimpse is built on, and the weights would tell nothing a speed or
parity check needs: what matters is that the *published configuration* loads (head dimensions, grouped-query
ratios, Qwen2.5-VL's windowed vision attention, tied embeddings, 150k+ vocabularies, SmolVLM's 512-px tiles) and
that Glimpse computes what transformers computes with it. So this script writes, for each model below:

* ``config.json``, ``preprocessor_config.json`` (and ``processor_config.json``), ``generation_config.json`` and the
  chat template as the published repository has them: ``scripts/models/configs/<model>/`` holds them, read from
  public copies of those files (its ``SOURCES.md`` names each copy and says which are byte-exact and which were
  rebuilt from the published values);
* ``tokenizer.json`` / ``tokenizer_config.json``: a byte-level BPE trained on the fixture corpus
  (``scripts/fixtures/make_tiny_qwen2_5_vl.build_corpus``), laid out so that every added token of the real
  tokenizer sits at its real id and the vocabulary has its real size (the ids no trained piece takes are filled
  with placeholder pieces ``<filler_N>`` that no merge produces);
* ``model.safetensors``: random float32 weights under the repository's tensor names, scaled as the tiny fixtures
  are (each matrix N(0, 1/fan_in), norm gains around 1, embeddings N(0, 1), a tied embedding at the output layer's
  scale) so that greedy decoding is well conditioned; the end tokens and the placeholders can never win (zero
  ``lm_head`` rows, or for tied embeddings rows scaled by 1e-3), so every answer runs to its token limit and speed
  runs decode a fixed number of tokens.

With ``--reference`` it also runs transformers (float32, eager attention, CPU, PIL image backend) on one prompt
with a 1024×768 photo and writes ``expected.json`` in the schema of ``fixtures/expected/*.json``: the expanded
prompt ids, image token counts, the first step's logits and the first ``--new-tokens`` greedy tokens with their
log-probabilities and top-2 margins. ``crates/glimpse-backend-mistralrs/tests/parity.rs``
(``real_shape_matches_transformers``, ignored by default) holds Glimpse to it.

Weights go to ``--out`` (default ``$XDG_CACHE_HOME/glimpse/real-shape``), never into git.

Usage: make_real_shape.py [--out DIR] [--reference] [--new-tokens N] [--dtype D] [--device D] [--layers N] MODEL...   (MODEL: a folder of scripts/models/configs, or ``all``)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts/fixtures"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers  # noqa: E402
from tokenizers import processors, trainers  # noqa: E402

import make_tiny_qwen2_5_vl as tiny_qwen  # noqa: E402  (the fixture corpus, JSON writing, top-2 margins)
from make_tiny_qwen2_5_vl import write_json  # noqa: E402

TRAINED_PIECES = 4000
LM_HEAD_GAIN = 16.0
CONFIGS = ROOT / "scripts/models/configs"
QWEN_PRETOKENIZE = tiny_qwen.QWEN2_PRETOKENIZE_REGEX


@dataclass
class Spec:
    """One published checkpoint, read from ``scripts/models/configs/<name>/``: the repository's own files
    (``config.json``, ``preprocessor_config.json``, ``processor_config.json``, ``generation_config.json``, the chat
    template; ``SOURCES.md`` says where each was read and how it was checked), its added tokens with their ids
    (``added_tokens.json``) and ``glimpse.json``: the family, the tokenizer's size, its pre-tokenizer style, the
    end tokens, the tokenizer_config fields and, where f32 would not fit 24 GB, the dtype the weights are saved in."""

    name: str
    repo: str
    family: str  # "idefics3" | "qwen2_5_vl" | "qwen3_vl" | "gemma3"
    config: dict
    preprocessor: dict
    processor: dict | None
    generation: dict
    chat_template: str
    added: list  # (id, content, special)
    tokenizer_size: int  # ids 0..tokenizer_size-1 are the tokenizer's (the model's vocabulary may be larger)
    tokenizer_config: dict
    end_tokens: list
    pretokenizer: str  # "bytelevel" (GPT-2 / SmolLM2) or "qwen" (Qwen2's split regex, then byte level)
    saved_dtype: str  # of the weights on disk unless --dtype says otherwise: bfloat16 where f32 would not fit 24 GB

    @property
    def tied(self) -> bool:
        text = self.config.get("text_config", {})
        return bool(self.config.get("tie_word_embeddings", text.get("tie_word_embeddings", False)))


def load_spec(name: str) -> Spec:
    folder = CONFIGS / name
    read = lambda file: json.loads((folder / file).read_text(encoding="utf-8"))  # noqa: E731
    meta = read("glimpse.json")
    jinja = folder / "chat_template.jinja"
    template = jinja.read_text(encoding="utf-8") if jinja.exists() else read("chat_template.json")["chat_template"]
    return Spec(
        name=name, repo=meta["repo"], family=meta["family"], config=read("config.json"),
        preprocessor=read("preprocessor_config.json"),
        processor=read("processor_config.json") if (folder / "processor_config.json").exists() else None,
        generation=read("generation_config.json"), chat_template=template,
        added=[(t["id"], t["content"], t["special"]) for t in read("added_tokens.json")],
        tokenizer_size=meta["tokenizer_size"], tokenizer_config=meta["tokenizer_config"],
        end_tokens=meta["end_tokens"], pretokenizer=meta["pretokenizer"],
        saved_dtype=meta.get("saved_dtype", "float32"),
    )


SPECS = sorted(p.name for p in CONFIGS.iterdir() if (p / "glimpse.json").exists())


# --------------------------------------------------------------------------------------------------------------
# Tokenizer: trained pieces + placeholders, every added token at its real id
# --------------------------------------------------------------------------------------------------------------
def build_tokenizer(spec: Spec) -> Tokenizer:
    trainer_tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    if spec.pretokenizer == "qwen":
        normalizer = normalizers.NFC()
        pre = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ])
    else:
        normalizer = None
        pre = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    trainer_tok.normalizer = normalizer
    trainer_tok.pre_tokenizer = pre
    trainer = trainers.BpeTrainer(vocab_size=TRAINED_PIECES, min_frequency=2, show_progress=False, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = tiny_qwen.build_corpus()
    if spec.pretokenizer == "bytelevel":
        # SmolLM2's vocabulary has "\n\n" as one piece, and llama.cpp's SmolVLM image layout looks it up as one
        # token (the transformers processor writes it around every image); the fixture corpus alone never merges it.
        # (Before a special token, as there, "\n\n" is a pre-token of its own.)
        corpus += [line + "\n\n" for line in corpus]
    trainer_tok.train_from_iterator(corpus, trainer=trainer)
    trained = json.loads(trainer_tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]

    added_ids = {tid for tid, _, _ in spec.added}
    free = (i for i in range(spec.tokenizer_size) if i not in added_ids)
    vocab = {}
    for piece, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        vocab[piece] = next(free)
    for n, tid in enumerate(free):
        vocab[f"<filler_{n}>"] = tid
    for tid, content, _ in spec.added:
        vocab[content] = tid
    assert len(vocab) == spec.tokenizer_size and len(set(vocab.values())) == spec.tokenizer_size

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    if spec.pretokenizer != "qwen":
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_tokens([AddedToken(c, special=s, normalized=False) for _, c, s in sorted(spec.added)])
    for tid, content, _ in spec.added:
        assert tok.token_to_id(content) == tid, (content, tok.token_to_id(content), tid)
    assert tok.get_vocab_size(with_added_tokens=True) == spec.tokenizer_size
    return tok


def tokenizer_config(spec: Spec) -> dict:
    decoder = {str(tid): {"content": c, "lstrip": False, "normalized": False, "rstrip": False,
                          "single_word": False, "special": s} for tid, c, s in sorted(spec.added)}
    return {**spec.tokenizer_config, "added_tokens_decoder": decoder, "chat_template": spec.chat_template,
            "extra_special_tokens": {}}


# --------------------------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------------------------
def transformers_classes(family: str):
    import transformers as tf
    return {
        "idefics3": (tf.Idefics3Config, tf.Idefics3ForConditionalGeneration),
        "qwen2_5_vl": (tf.Qwen2_5_VLConfig, tf.Qwen2_5_VLForConditionalGeneration),
        "qwen3_vl": (tf.Qwen3VLConfig, tf.Qwen3VLForConditionalGeneration),
        "gemma3": (tf.Gemma3Config, tf.Gemma3ForConditionalGeneration),
    }[family]


def hub_name(family: str, name: str) -> str:
    """transformers 5's parameter names → the names the published safetensors use (what mistralrs loads)."""
    # (Qwen3-VL was published with transformers 5's own names: `model.language_model.*`, `model.visual.*`.)
    if family == "qwen2_5_vl":
        for src, dst in (("model.language_model.", "model."), ("model.visual.", "visual.")):
            if name.startswith(src):
                return dst + name[len(src):]
    if family == "gemma3":
        import make_tiny_gemma3  # the Gemma 3 fixture's mapping (the SigLIP tower one level deeper on the hub)
        return make_tiny_gemma3.to_hub_name(name) or name
    return name


def init_weights(model, spec: Spec, seed: int, suppressed: list[int]) -> None:
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    tied = spec.tied
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if "norm" in name and name.endswith(".weight") or name.endswith("ln_q.weight"):
                base = 0.0 if spec.family == "gemma3" and "vision" not in name else 1.0  # Gemma RMSNorm adds 1
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g, device=g.device))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g, device=g.device))
            elif name.endswith("embed_tokens.weight") and tied:
                # The embedding is the output layer too: rows of N(0, 1) made the model copy its last input token
                # forever (h · e(x) ≈ |e(x)|² beats every other logit); at the untied lm_head's scale the output is
                # conditioned like the untied models' and the input no longer dominates the residual stream.
                p.copy_(LM_HEAD_GAIN / math.sqrt(p.shape[1]) * torch.randn(p.shape, generator=g, device=g.device))
            elif name.endswith("embed_tokens.weight") or name.endswith("position_embedding.weight"):
                p.copy_(torch.randn(p.shape, generator=g, device=g.device))
            elif name.endswith("lm_head.weight"):
                if not tied:
                    p.copy_(LM_HEAD_GAIN / math.sqrt(p.shape[1]) * torch.randn(p.shape, generator=g, device=g.device))
            else:
                fan_in = int(np.prod(p.shape[1:])) if p.dim() > 1 else p.shape[0]
                p.copy_(torch.randn(p.shape, generator=g, device=g.device) / math.sqrt(fan_in))
        # The end tokens and the placeholders never win, so that every answer runs to its limit in pieces of
        # text: a zero lm_head row gives logit 0 where the winning logit is far above; with tied embeddings the
        # row is the input embedding too, so it is made tiny instead of zero (the RMS norm of the next layer
        # scales an input back up).
        head = model.get_output_embeddings().weight
        rows = torch.tensor(suppressed, dtype=torch.long, device=head.device)
        if tied:
            head[rows] *= 1e-3
        else:
            head[rows] = 0.0


def shrunk(spec: Spec, layers: int) -> Spec:
    """The same model with `layers` text layers and vision blocks (the last one full attention): every tensor
    keeps its published shape, the checkpoint is a fraction of the size. For smoke runs of the tools that use the
    full checkpoint (scripts/gpu-check.sh --dry-run)."""
    config = json.loads(json.dumps(spec.config))
    text = config.get("text_config", config)
    text["num_hidden_layers"] = layers
    if "max_window_layers" in text:
        text["max_window_layers"] = layers
    vision = config.get("vision_config", {})
    if "depth" in vision:
        vision["depth"] = layers
    if "fullatt_block_indexes" in vision:
        vision["fullatt_block_indexes"] = [layers - 1]
    return dataclasses.replace(spec, name=f"{spec.name}-{layers}layers", config=config)


def build_checkpoint(name: str, spec: Spec, out: Path, seed: int = 0, dtype: str = "float32",
                     device: str = "cpu") -> Path:
    """Writes the checkpoint into `out/name`. The weights are drawn on `device` (on a GPU in seconds; the
    random stream differs from the CPU's, so a reference must come from the same device) and saved in `dtype`."""
    folder = out / name
    marker = folder / ".complete"
    if marker.exists():
        print(f"{folder}: present", file=sys.stderr)
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    started = time.time()
    tok = build_tokenizer(spec)
    tok.save(str(folder / "tokenizer.json"))
    write_json(folder / "tokenizer_config.json", tokenizer_config(spec))
    write_json(folder / "config.json", spec.config)
    write_json(folder / "preprocessor_config.json", spec.preprocessor)
    if spec.processor is not None:
        write_json(folder / "processor_config.json", spec.processor)
    write_json(folder / "generation_config.json", spec.generation)
    (folder / "chat_template.jinja").write_text(spec.chat_template, encoding="utf-8")
    write_json(folder / "chat_template.json", {"chat_template": spec.chat_template})

    config_cls, model_cls = transformers_classes(spec.family)
    config = config_cls.from_pretrained(str(folder))
    vocab = tok.get_vocab(with_added_tokens=True)
    from transformers.initialization import no_init_weights
    with no_init_weights(), torch.device(device):
        model = model_cls._from_config(config, dtype=getattr(torch, dtype))
    vocab_rows = model.get_output_embeddings().weight.shape[0]
    suppressed = ([tok.token_to_id(t) for t in spec.end_tokens]
                  + [i for t, i in vocab.items() if t.startswith("<filler_")]
                  + list(range(spec.tokenizer_size, vocab_rows)))  # the vocabulary's padding rows
    model.tie_weights()  # before the initialisation: a tied output layer must be the embedding it writes
    init_weights(model, spec, seed, suppressed)
    if spec.tied:
        assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    state = {}
    for key, tensor in model.state_dict().items():
        hub = hub_name(spec.family, key)
        if hub.endswith("lm_head.weight") and spec.tied:
            continue
        state[hub] = tensor.to("cpu").contiguous()
    save_sharded(state, folder)
    params = sum(t.numel() for t in state.values())
    write_json(folder / "shape.json", {"repo": spec.repo, "parameters": params, "seed": seed,
                                       "generator": "scripts/models/make_real_shape.py"})
    marker.write_text("")
    print(f"{folder}: {params / 1e6:.1f}M parameters written in {time.time() - started:.0f} s", file=sys.stderr)
    return folder


def save_sharded(state: dict, folder: Path, shard_bytes: int = 4 << 30) -> None:
    """model.safetensors, or model-0000N-of-0000M.safetensors + index when over `shard_bytes` (as the hub does)."""
    shards, current, size = [], {}, 0
    for key in sorted(state):
        nbytes = state[key].numel() * state[key].element_size()
        if current and size + nbytes > shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[key] = state[key]
        size += nbytes
    shards.append(current)
    if len(shards) == 1:
        save_file(shards[0], str(folder / "model.safetensors"), metadata={"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / file), metadata={"format": "pt"})
        weight_map.update({k: file for k in shard})
    total = sum(t.numel() * t.element_size() for t in state.values())
    write_json(folder / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})


# --------------------------------------------------------------------------------------------------------------
# transformers' reference on one photo
# --------------------------------------------------------------------------------------------------------------
PHOTO = "photo-1024x768.jpg"
PROMPT = "Describe this photo in detail."


def photo(out: Path) -> Path:
    path = out / PHOTO
    if not path.exists():
        sys.path.insert(0, str(ROOT / "scripts/bench"))
        import make_images
        out.mkdir(parents=True, exist_ok=True)
        make_images.photo_like(1024, 768).save(path, quality=90)
    return path


def reference(name: str, spec: Spec, folder: Path, image: Path, new_tokens: int) -> dict:
    from PIL import Image
    from transformers import AutoImageProcessor, AutoProcessor

    _, model_cls = transformers_classes(spec.family)
    processor = AutoProcessor.from_pretrained(str(folder))
    try:
        processor.image_processor = AutoImageProcessor.from_pretrained(str(folder), backend="pil")
    except (TypeError, ValueError):
        pass
    model = model_cls.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager").eval()
    messages = [{"role": "user", "content": [{"type": "image", "path": str(image)}, {"type": "text", "text": PROMPT}]}]
    template_messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    prompt_text = processor.apply_chat_template(template_messages, tokenize=False, add_generation_prompt=True)
    picture = Image.open(image).convert("RGB")
    inputs = processor(text=[prompt_text], images=[picture], return_tensors="pt")
    input_ids = inputs["input_ids"][0].tolist()
    image_token = spec.config.get("image_token_id", spec.config.get("image_token_index"))
    started = time.time()
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=new_tokens, output_logits=True,
                             return_dict_in_generate=True)
    seconds = time.time() - started
    gen = out.sequences[0, len(input_ids):].tolist()
    logits = [lg[0].to(torch.float32) for lg in out.logits]
    logprobs = []
    for lg, tid in zip(logits, gen):
        assert int(torch.argmax(lg)) == tid
        logprobs.append(float(torch.log_softmax(lg.double(), dim=-1)[tid]))
    margins = tiny_qwen.margins_of(logits)
    eos_ids = [processor.tokenizer.convert_tokens_to_ids(t) for t in spec.end_tokens]
    live = torch.zeros(logits[0].shape[0], dtype=torch.bool)
    live[[i for t, i in processor.tokenizer.get_vocab().items() if not t.startswith("<filler_") and i not in eos_ids]] = True
    return {
        "model_dir": str(folder),
        "generator": "scripts/models/make_real_shape.py",
        "repo": spec.repo,
        "cases": [{
            "name": "photo_1024x768",
            "messages": messages,
            "prompt_text": prompt_text,
            "input_ids": input_ids,
            "prompt_token_count": len(input_ids),
            "image_token_counts": [input_ids.count(image_token)],
            "image_sizes_wh": [list(picture.size)],
            "max_new_tokens": new_tokens,
            "greedy_token_ids": gen,
            "greedy_text": processor.tokenizer.decode(gen, skip_special_tokens=True),
            "greedy_tokens": [processor.tokenizer.decode([t]) for t in gen],
            "finish": "eos" if gen and gen[-1] in eos_ids else "length",
            "first_step_logits": [float(x) for x in logits[0].tolist()],
            # The spread of the logits that can win (the placeholders' and the end tokens' are held at 0).
            "first_step_logits_std": float(logits[0][live].std()),
            "step_logprobs": [float(f"{x:.6g}") for x in logprobs],
            "step_top2_margins": [float(f"{x:.6g}") for x in margins],
            "min_top2_margin": min(margins),
            "transformers_seconds": seconds,
        }],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "glimpse/real-shape"
    parser.add_argument("--out", type=Path, default=cache)
    parser.add_argument("--reference", action="store_true", help="also write expected.json from transformers")
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"],
                        help="of the saved weights (default: the model's glimpse.json saved_dtype, else float32)")
    parser.add_argument("--device", default="cpu", help="where the weights are drawn (cpu, cuda)")
    parser.add_argument("--layers", type=int, help="only this many text layers and vision blocks (smoke runs)")
    parser.add_argument("models", nargs="+", help=f"{', '.join(SPECS)} or all")
    args = parser.parse_args()
    # `all` is what fits this CPU machine: the GPU check's 7B shape (33 GB in f32) says "in_all": false.
    in_all = [n for n in SPECS if json.loads((CONFIGS / n / "glimpse.json").read_text()).get("in_all", True)]
    names = in_all if args.models == ["all"] else args.models
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        parser.error(f"unknown model {', '.join(unknown)}; known: {', '.join(SPECS)}")
    torch.set_num_threads(os.cpu_count() or 1)
    for name in names:
        spec = load_spec(name)
        if args.layers:
            spec = shrunk(spec, args.layers)
        folder = build_checkpoint(spec.name, spec, args.out, dtype=args.dtype or spec.saved_dtype, device=args.device)
        if args.reference and not (folder / "expected.json").exists():
            write_json(folder / "expected.json", reference(name, spec, folder, photo(args.out), args.new_tokens))
            print(f"{folder / 'expected.json'}: written", file=sys.stderr)
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
