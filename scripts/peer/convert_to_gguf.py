"""Converts a Qwen2.5-VL model folder (the bundled `shapes` model) to GGUF with llama.cpp's own converter:
the language model (`--outfile`) and its vision projector (`--mmproj`), as llama-server loads them.

Usage: convert_to_gguf.py LLAMA_CPP_SOURCE MODEL_DIR OUT_DIR (scripts/peer/convert-shapes.sh runs it)

Two things the converter cannot know about a checkpoint made here are told to it, and nothing else changes:
- the pre-tokenizer: llama.cpp recognises a BPE tokenizer by hashing how it splits a test text, and `shapes`'s
  448-token vocabulary splits it differently from any published model, although its pre-tokenizer is Qwen2's
  (the same split regex, see its tokenizer.json); it is declared "qwen2";
- the vocabulary is BPE (tokenizer.json), not SentencePiece, so the SentencePiece attempt is skipped.
"""
import subprocess
import sys
from pathlib import Path


def main() -> None:
    source, model_dir, out_dir = (Path(a) for a in sys.argv[1:4])
    out_dir.mkdir(parents=True, exist_ok=True)
    sys.path[:0] = [str(source / "gguf-py"), str(source)]
    sys.argv = [str(source / "convert_hf_to_gguf.py")]
    import convert_hf_to_gguf as converter  # noqa: E402  (llama.cpp's converter, from its source tree)
    from conversion import base, qwenvl  # noqa: E402

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
    qwenvl.Qwen2VLModel.set_vocab = lambda self: self._set_vocab_gpt2()
    for extra, name in (([], "model.gguf"), (["--mmproj"], "mmproj.gguf")):
        sys.argv = ["convert_hf_to_gguf.py", str(model_dir), "--outtype", "f32", "--outfile", str(out_dir / name), *extra]
        converter.main()


if __name__ == "__main__":
    main()
