#!/usr/bin/env bash
# Installs what building and testing Glimpse needs on a fresh Debian machine with Rust and Python 3:
# Debian packages for HEIC/HEIF decoding, the tests' curl, Node.js and Chromium (the playground test), a Python
# venv with the official SDKs, and the JS packages (@google/genai, playwright-core; pinned by
# tests/js/package-lock.json).
# Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in libheif-dev pkg-config curl chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import google.genai, openai, pytest, httpx, PIL" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-test.txt
fi

if [ ! -d tests/js/node_modules/@google/genai ] || [ ! -d tests/js/node_modules/playwright-core ]; then
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi
