#!/usr/bin/env bash
# Puts ONNX Runtime's shared library into models/toolkit/onnxruntime/ at setup time, for the toolkit to run its
# models on (tract-onnx, built in, is the fallback when the library is absent).
#
# Source: PyPI onnxruntime==1.32.0 (MIT), the CPython 3.11 manylinux_2_28 wheel of this machine's architecture,
# checked by sha256. The wheel's onnxruntime/capi/libonnxruntime.so.1.32.0 is ONNX Runtime's C library, the
# same for every Python version; it is copied out with the licence and third-party notices, nothing else.
# No Python is needed at run time.
#
# Idempotent: does nothing when the library is already there. Needs pip (default .venv/bin/pip; PIP=...)
# and python3 (the wheel is opened with its zipfile module). About 25 MB downloaded, 35 MB kept.
set -euo pipefail
cd "$(dirname "$0")/../.."

dir=models/toolkit/onnxruntime
lib=$dir/libonnxruntime.so
if [ -s "$lib" ]; then
  echo "fetch-onnxruntime: $lib already exists, skipping"
  exit 0
fi
version=1.32.0
case "$(uname -m)" in
  x86_64) platform=manylinux_2_28_x86_64; sha=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d ;;
  aarch64) platform=manylinux_2_28_aarch64; sha=2303372a85299b6757b0e11e1cbf13e410ddf7e10c37f4b37e99d1c90e7daf7c ;;
  *) echo "fetch-onnxruntime: no onnxruntime wheel pinned for $(uname -m); the toolkit runs on tract-onnx" >&2; exit 0 ;;
esac
PIP=${PIP:-.venv/bin/pip}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/glimpse-onnxruntime.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetch-onnxruntime: pip download onnxruntime==$version ($platform)"
"$PIP" download -q --disable-pip-version-check --no-deps --only-binary :all: --python-version 3.11 \
  --implementation cp --abi cp311 --platform "$platform" "onnxruntime==$version" -d "$tmp"
wheel=$(ls "$tmp"/onnxruntime-*.whl)
echo "$sha  $wheel" | sha256sum -c --quiet -
mkdir -p "$dir"
python3 - "$wheel" "$dir" "$version" <<'PY'
import sys, zipfile
wheel, out, version = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for member, name in [(f"onnxruntime/capi/libonnxruntime.so.{version}", "libonnxruntime.so.partial"),
                         ("onnxruntime/LICENSE", "LICENSE"), ("onnxruntime/ThirdPartyNotices.txt", "ThirdPartyNotices.txt")]:
        with z.open(member) as src, open(f"{out}/{name}", "wb") as dst:
            dst.write(src.read())
PY
mv "$dir/libonnxruntime.so.partial" "$lib"
echo "fetch-onnxruntime: wrote $lib (ONNX Runtime $version)"
