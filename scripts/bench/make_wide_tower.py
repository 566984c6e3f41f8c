"""A random-weight Qwen2.5-VL whose vision tower has Qwen2.5-VL-3B-Instruct's published vision config (32 blocks of
width 1280, 16 heads, windowed attention with full attention at blocks 7/15/23/31, merger to 2048), in front of a
two-layer language model of width 2048 with the bundled `shapes` model's tokenizer and chat template. It measures
what caching a vision tower's output saves on a tower of real size; its answers mean nothing. Not committed.

Usage: make_wide_tower.py OUT_DIR [MAX_IMAGE_TOKENS]   (default 256: 256 * 28 * 28 pixels at most per image)
"""
import json
import shutil
import sys
from pathlib import Path

import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ROOT / "models/shapes"


def main(out: Path, max_tokens: int) -> None:
    base = json.loads((SHAPES / "config.json").read_text())
    vision = {
        "depth": 32, "hidden_act": "silu", "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
        "in_chans": 3, "out_hidden_size": 2048, "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14,
        "temporal_patch_size": 2, "tokens_per_second": 2, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31],
    }
    text = {key: base[key] for key in ("bos_token_id", "eos_token_id", "pad_token_id", "vision_start_token_id",
                                       "vision_end_token_id", "vision_token_id", "image_token_id", "video_token_id",
                                       "vocab_size", "rms_norm_eps", "rope_theta", "max_position_embeddings")}
    config = Qwen2_5_VLConfig(
        **text, hidden_size=2048, intermediate_size=4096, num_hidden_layers=2, num_attention_heads=16,
        num_key_value_heads=2, max_window_layers=2, tie_word_embeddings=False,
        rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}, vision_config=vision,
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    # transformers 5 nests the language model's keys under text_config and writes rope_parameters; the published
    # Qwen2.5-VL configs (and mistralrs) have them at the top level, as rope_theta and rope_scaling.
    saved = json.loads((out / "config.json").read_text())
    for key, value in saved.pop("text_config", {}).items():
        saved.setdefault(key, value)
    rope = saved.pop("rope_parameters", None) or {}
    saved["rope_theta"] = rope.get("rope_theta", 1000000.0)
    saved["rope_scaling"] = {"type": "mrope", "mrope_section": rope.get("mrope_section", [16, 24, 24])}
    (out / "config.json").write_text(json.dumps(saved, indent=2))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        shutil.copy(SHAPES / name, out / name)
    preprocessor = json.loads((SHAPES / "preprocessor_config.json").read_text())
    preprocessor.update(max_pixels=max_tokens * 28 * 28, size={"longest_edge": max_tokens * 28 * 28, "shortest_edge": 3136})
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    params = sum(p.numel() for p in model.parameters())
    print(f"{out}: {params / 1e6:.0f}M parameters, vision tower {sum(p.numel() for p in model.model.visual.parameters()) / 1e6:.0f}M")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 256)
