"""The pixel benchmark's inputs, generated (nothing is committed): photo-like JPEGs at four sizes, one noise JPEG
(the decoder's worst case), and a 12 MP PNG, WEBP and HEIC of the same photo-like content.

Photo-like: one of Debian darknet's sample photographs (fixtures/photos, unpacked by setup-deps.sh) scaled to the
size with Lanczos, plus fine grain (Gaussian-blurred noise, sigma 0.8, amplitude 6) so that a 12 MP JPEG at
quality 90 weighs what a phone photo does (3-5 MB) instead of compressing like a smooth upscale.
Usage: make_images.py OUT_DIR
"""
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[2]
SIZES = [(448, 448), (1024, 768), (1920, 1080), (4032, 3024)]


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    base = Image.open(ROOT / "fixtures/photos/horses.jpg").convert("RGB").resize((width, height), Image.LANCZOS)
    rng = np.random.default_rng(seed)
    grain = Image.fromarray((rng.normal(128, 40, (height, width)).clip(0, 255)).astype(np.uint8))
    grain = np.asarray(grain.filter(ImageFilter.GaussianBlur(0.8)), dtype=np.float32) - 128
    pixels = np.asarray(base, dtype=np.float32) + grain[..., None] * 0.15 * 6
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for w, h in SIZES:
        photo_like(w, h).save(out / f"photo-{w}x{h}.jpg", "JPEG", quality=90)
    rng = np.random.default_rng(1)
    noise = Image.fromarray(rng.integers(0, 256, (3024, 4032, 3), dtype=np.uint8))
    noise.save(out / "noise-4032x3024.jpg", "JPEG", quality=90)
    big = photo_like(4032, 3024)
    big.save(out / "photo-4032x3024.png", "PNG", compress_level=6)
    big.save(out / "photo-4032x3024.webp", "WEBP", quality=90)
    try:
        import pillow_heif

        pillow_heif.from_pillow(big).save(out / "photo-4032x3024.heic", quality=90)
    except ImportError:
        print("pillow-heif not installed: no HEIC input", file=sys.stderr)
    for f in sorted(out.iterdir()):
        print(f"{f.name}: {f.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
