"""Time to first token on the same checkpoint, same images, same threads: Glimpse over HTTP and transformers
in-process, plus Glimpse's countTokens latency.

Glimpse: `glimpse serve --model MODEL` on a free loopback port, its image and encoder caches off (transformers has
none, and every repetition would otherwise be a cache hit); each request sends the image inline (base64, as the SDKs
do) to `:streamGenerateContent?alt=sse` with maxOutputTokens 1, and the time is taken from the start of
the request to the first `data:` event. countTokens is timed twice: with the image inline (what a client pays,
transfer of the base64 included), and with the image uploaded once through the File API and referenced by
`fileData` (a small request: the server's own work).
transformers: bytes -> PIL -> the checkpoint's processor (chat template, images) -> `generate(max_new_tokens=1)`.

Usage: ttft.py GLIMPSE_BIN MODEL_DIR THREADS FILE...   -> one JSON object
"""
import base64
import io
import json
import sys
from pathlib import Path

from benchutil import first_token, glimpse_server, median_ms

PROMPT = "What is in this picture?"


def mime(path: Path) -> str:
    return {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".heic": "image/heic"}[path.suffix]


def glimpse(binary: str, model: str, threads: int, files: list[Path]) -> dict:
    caches_off = ["--image-cache-bytes", "0", "--encoder-cache-bytes", "0"]
    with glimpse_server(binary, model, caches_off, env={"RAYON_NUM_THREADS": str(threads)}) as (url, client):
        report = {}
        for f in files:
            data = f.read_bytes()
            inline = {"inlineData": {"mimeType": mime(f), "data": base64.b64encode(data).decode()}}
            body = json.dumps({"contents": [{"parts": [inline, {"text": PROMPT}]}],
                               "generationConfig": {"maxOutputTokens": 1}}).encode()
            upload = client.post(f"{url.replace('/v1beta', '/upload/v1beta')}/files", content=data,
                                 headers={"X-Goog-Upload-Protocol": "raw", "content-type": mime(f)})
            reference = {"fileData": {"fileUri": upload.json()["file"]["uri"], "mimeType": mime(f)}}

            def count(part):
                count_body = json.dumps({"contents": [{"parts": [part, {"text": PROMPT}]}]}).encode()

                def once():
                    r = client.post(f"{url}/models/m:countTokens", content=count_body, headers={"content-type": "application/json"})
                    assert r.status_code == 200, r.text

                return median_ms(once, 7)

            report[f.name] = {
                "ttft_ms": median_ms(lambda: first_token(client, url, body), 7),
                "count_tokens_inline_ms": count(inline),
                "count_tokens_file_ms": count(reference),
            }
            print(f"glimpse {f.name}: {report[f.name]}", file=sys.stderr)
        return report


def transformers_ttft(model: str, threads: int, files: list[Path]) -> dict:
    import torch
    from PIL import Image, ImageOps
    from transformers import AutoModelForImageTextToText, AutoProcessor

    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:
        pass
    torch.set_num_threads(threads)
    processor = AutoProcessor.from_pretrained(model)
    net = AutoModelForImageTextToText.from_pretrained(model, dtype=torch.float32).eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    report = {}
    for f in files:
        data = f.read_bytes()

        def once():
            image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
            inputs = processor(text=[text], images=[image], return_tensors="pt")
            with torch.inference_mode():
                net.generate(**inputs, max_new_tokens=1, do_sample=False)

        report[f.name] = {"ttft_ms": median_ms(once, 7)}
        print(f"transformers {f.name}: {report[f.name]}", file=sys.stderr)
    return report


def main() -> None:
    binary, model, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    files = [Path(f) for f in sys.argv[4:]]
    print(json.dumps({"glimpse": glimpse(binary, model, threads, files),
                      "transformers": transformers_ttft(model, threads, files)}))


if __name__ == "__main__":
    main()
