"""Converts a vision-language model folder (the bundled `shapes` model, or a real-shape checkpoint from
scripts/models/make_real_shape.py) to GGUF with llama.cpp's own converter: the language model (`model.gguf`) and
its vision projector (`mmproj.gguf`), as llama-server loads them.

Usage: convert_to_gguf.py LLAMA_CPP_SOURCE MODEL_DIR OUT_DIR [PRE_TOKENIZER [OUTTYPE]]
       (PRE_TOKENIZER: llama.cpp's name for the checkpoint's pre-tokenizer, default qwen2; OUTTYPE default f32)
scripts/peer/convert-shapes.sh and scripts/bench/models.sh run it.

Two things the converter cannot know about a checkpoint made here are told to it, and nothing else changes:
- the pre-tokenizer: llama.cpp recognises a BPE tokenizer by hashing how it splits a test text, and a vocabulary
  trained here splits it differently from any published model although its pre-tokenizer is the published one
  (Qwen2's split regex, or GPT-2's byte-level regex for SmolLM2 / SmolVLM; see its tokenizer.json): it is named;
- the vocabulary is BPE (tokenizer.json), not SentencePiece, so the SentencePiece attempt is skipped.
"""
import sys
from pathlib import Path


def main() -> None:
    source, model_dir, out_dir = (Path(a) for a in sys.argv[1:4])
    pre = sys.argv[4] if len(sys.argv) > 4 else "qwen2"
    outtype = sys.argv[5] if len(sys.argv) > 5 else "f32"
    out_dir.mkdir(parents=True, exist_ok=True)
    sys.path[:0] = [str(source / "gguf-py"), str(source)]
    sys.argv = [str(source / "convert_hf_to_gguf.py")]
    import convert_hf_to_gguf as converter  # noqa: E402  (llama.cpp's converter, from its source tree)
    from conversion import base, llama, qwenvl  # noqa: E402

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: pre
    for model_class in (qwenvl.Qwen2VLModel, llama.LlamaModel):
        model_class.set_vocab = lambda self: self._set_vocab_gpt2()
    for extra, name in (([], "model.gguf"), (["--mmproj"], "mmproj.gguf")):
        sys.argv = ["convert_hf_to_gguf.py", str(model_dir), "--outtype", outtype, "--outfile", str(out_dir / name),
                    *extra]
        converter.main()


if __name__ == "__main__":
    main()
