"""Writes fuzz/seeds/<target>/: real requests as the SDKs and curl send them, real upload framing, small real
images of every format (EXIF orientations, alpha, 16-bit, progressive, lossless), base64 in both alphabets,
URLs in every address form, and the documented config file. Run from the repository root with the test
virtual environment (`.venv/bin/python fuzz/make_seeds.py`); the seeds are committed, so this is only rerun to
change them."""

import base64
import io
import json
import pathlib
import shutil

from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent / "seeds"
FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "images"


def write(target, name, data):
    folder = ROOT / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def encoded(image, fmt, **options):
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def scene(size=(24, 16), mode="RGB"):
    image = Image.new(mode, size, "white" if mode != "L" else 255)
    for x in range(size[0] // 2):
        for y in range(size[1] // 2):
            image.putpixel((x, y), (200, 30, 30) if mode == "RGB" else 40)
    return image


def images():
    rgb = scene()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°
    found = {
        "png": encoded(rgb, "PNG"),
        "png_alpha": encoded(rgb.convert("RGBA"), "PNG"),
        "png_16bit_gray": encoded(scene().convert("I;16"), "PNG"),
        "png_palette": encoded(rgb.convert("P"), "PNG"),
        "jpeg": encoded(rgb, "JPEG", quality=80),
        "jpeg_exif_rotated": encoded(rgb, "JPEG", quality=80, exif=exif.tobytes()),
        "jpeg_progressive": encoded(rgb, "JPEG", quality=80, progressive=True),
        "jpeg_gray": encoded(rgb.convert("L"), "JPEG"),
        "webp_lossy": encoded(rgb, "WEBP", quality=70),
        "webp_lossless": encoded(rgb.convert("RGBA"), "WEBP", lossless=True),
        "gif_unsupported": encoded(rgb, "GIF"),
        "heic": (FIXTURES / "tiny.heic").read_bytes(),
        "heic_alpha": (FIXTURES / "alpha.heic").read_bytes(),
    }
    return found


IMAGES = images()
PNG = IMAGES["png"]
PNG64 = base64.b64encode(PNG).decode()


def gemini():
    with_image = {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": PNG64}}, {"text": "Detect the red square, with box_2d."}]}],
                  "generationConfig": {"maxOutputTokens": 16, "temperature": 0, "responseMimeType": "application/json",
                                       "responseSchema": {"type": "ARRAY", "items": {"type": "OBJECT", "properties": {"box_2d": {"type": "ARRAY", "items": {"type": "INTEGER"}}, "label": {"type": "STRING"}}}}}}
    snake = {"contents": [{"parts": [{"inline_data": {"mime_type": "image/jpeg", "data": base64.urlsafe_b64encode(IMAGES["jpeg"]).decode().rstrip("=")}}, {"text": "What is this?"}]}],
             "system_instruction": {"parts": [{"text": "Answer briefly."}]}, "generation_config": {"max_output_tokens": "8", "top_k": 40.0, "stop_sequences": ["."]}}
    turns = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "hello"}]}, {"role": "user", "parts": [{"fileData": {"fileUri": "files/abc", "mimeType": "image/png"}}, {"text": "and this?"}]}],
             "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_LOW", "candidateCount": 1}}
    batch = {"batch": {"display_name": "seed", "input_config": {"requests": {"requests": [{"request": with_image, "metadata": {"key": "a"}}]}}}}
    for n, (selector, body) in enumerate([(0, with_image), (1, snake), (2, turns), (0, turns), (3, batch), (2, {"generateContentRequest": {"model": "models/echo", "contents": with_image["contents"]}})]):
        write("gemini_request", f"seed{n}.bin", bytes([selector]) + json.dumps(body).encode())


def interactions():
    seeds = [
        {"model": "gemini-2.5-flash", "input": "Describe the image."},
        {"model": "echo", "input": [{"type": "text", "text": "What is this?"}, {"type": "image", "data": PNG64, "mime_type": "image/png"}], "generation_config": {"max_output_tokens": 8, "temperature": 0}},
        {"model": "echo", "input": [{"role": "user", "content": [{"type": "image", "uri": "files/abc"}, {"type": "text", "text": "box_2d"}]}], "stream": True, "store": False},
        {"model": "echo", "input": "again", "previous_interaction_id": "v1_0123456789abcdef", "system_instruction": "be brief", "response_format": {"type": "object"}},
    ]
    for n, body in enumerate(seeds):
        write("interactions_request", f"seed{n}.json", json.dumps(body))


def openai():
    url = "data:image/png;base64," + PNG64
    seeds = [
        {"model": "echo", "messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url, "detail": "low"}}]}], "max_tokens": 8},
        {"model": "gemini-2.5-flash", "messages": [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "hi"}], "stream": True, "stream_options": {"include_usage": True},
         "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}}},
        {"model": "echo", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": [{"type": "text", "text": "more"}]}], "temperature": "0.5", "top_p": 1, "n": 1, "stop": ["x"], "seed": 3},
    ]
    for n, body in enumerate(seeds):
        write("openai_request", f"seed{n}.json", json.dumps(body))


def caches():
    seeds = [
        {"model": "models/echo", "contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": PNG64}}]}], "systemInstruction": {"parts": [{"text": "You count squares."}]}, "ttl": "300s", "displayName": "seed"},
        {"model": "models/gemini-2.5-flash", "contents": [{"parts": [{"text": "a long document"}]}], "expire_time": "2030-01-01T00:00:00Z"},
    ]
    for n, body in enumerate(seeds):
        write("cache_request", f"seed{n}.json", json.dumps(body))


def uploads():
    metadata = json.dumps({"file": {"display_name": "seed.png", "mime_type": "image/png"}})
    multipart = (b"--glimpse-fuzz\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n" + metadata.encode()
                 + b"\r\n--glimpse-fuzz\r\nContent-Type: image/png\r\n\r\n" + PNG + b"\r\n--glimpse-fuzz--\r\n")
    write("upload_multipart", "multipart.bin", b"\x00" + multipart)
    write("upload_multipart", "raw.bin", b"\x01" + PNG)
    jsonl = b'{"key": "a", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}\n'
    jsonl_meta = json.dumps({"file": {"display_name": "in.jsonl", "mime_type": "jsonl"}})
    write("upload_multipart", "multipart_jsonl.bin", b"\x00--glimpse-fuzz\r\nContent-Type: application/json\r\n\r\n" + jsonl_meta.encode()
          + b"\r\n--glimpse-fuzz\r\nContent-Type: application/jsonl\r\n\r\n" + jsonl + b"\r\n--glimpse-fuzz--\r\n")
    sep = b"\n--\n"
    half = len(PNG) // 2
    write("upload_resumable", "one_chunk.bin", f"start||{len(PNG)}\n".encode() + metadata.encode() + sep + b"upload, finalize|0\n" + PNG)
    write("upload_resumable", "two_chunks.bin", f"start||{len(PNG)}\n".encode() + metadata.encode() + sep + b"upload|0\n" + PNG[:half]
          + sep + b"query\n" + sep + f"upload, finalize|{half}\n".encode() + PNG[half:])
    write("upload_resumable", "resent_chunk.bin", b"start\n{}" + sep + b"upload|0\n" + PNG[:half] + sep + b"upload|0\n" + PNG[:half] + sep + b"finalize|" + str(half).encode() + b"\n")


def image_seeds():
    for n, (name, data) in enumerate(IMAGES.items()):
        write("image", f"{name}.bin", bytes([n % 6]) + data)


def base64_seeds():
    for name, text in [("standard", base64.b64encode(PNG).decode()), ("url_safe", base64.urlsafe_b64encode(IMAGES["jpeg"]).decode()),
                       ("unpadded", base64.b64encode(b"glimpse!!").decode().rstrip("=")), ("wrapped", base64.encodebytes(PNG).decode()), ("empty", "")]:
        write("base64", f"{name}.txt", text)


def urls():
    forms = ["https://example.com/cat.png", "http://127.0.0.1/", "http://2130706433/", "http://0x7f.1/", "http://0177.0.0.1/", "http://127.1/",
             "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[::127.0.0.1]/", "http://[64:ff9b::a00:1]/",
             "http://[2002:a00:1::]/", "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "http://169.254.169.254/latest/meta-data",
             "http://[fe80::1%25eth0]/", "http://localhost./", "http://user:pw@10.0.0.1:8080/a?b#c", "http://[fc00::1]/", "http://0.0.0.0/", "http://100.64.0.1/"]
    for n, url in enumerate(forms):
        write("url_guard", f"url{n}.txt", url)


def configs():
    write("config_toml", "documented.toml", '''mask_model = "models/sam-vit-base"

[[model]]
name = "qwen"
model = "Qwen/Qwen2.5-VL-3B-Instruct"
aliases = ["gemini-2.5-flash", "gemini-3-flash-preview"]
isq = "q4k"
dtype = "bf16"
max_output_tokens = 4096

[[model]]
name = "qwen-cluster"
upstream = "http://10.0.0.5:8000/v1"
upstream_model = "Qwen/Qwen2.5-VL-7B-Instruct"
processor = "Qwen/Qwen2.5-VL-7B-Instruct"
max_concurrent = 64
upstream_timeout_seconds = 120
structured_output = false
''')
    write("config_toml", "toolkit.toml", '[[model]]\nmodel = "toolkit"\n')


if __name__ == "__main__":
    shutil.rmtree(ROOT, ignore_errors=True)
    gemini(); interactions(); openai(); caches(); uploads(); image_seeds(); base64_seeds(); urls(); configs()
    print("\n".join(f"{p.name}: {len(list(p.iterdir()))} seeds" for p in sorted(ROOT.iterdir())))
