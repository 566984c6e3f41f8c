#!/usr/bin/env bash
# Prints the folder of llama.cpp's sources, fetching them first if this machine has none: they come from PyPI's
# llama-cpp-python source release (the Python package compiles the same tree), pinned by version and sha256, and
# are kept under ${GLIMPSE_CACHE_DIR:-~/.cache/glimpse}, outside the checkout. Used by llama-server.sh (the peer
# engine) and convert-shapes.sh (llama.cpp's GGUF converter).
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=0.3.36
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
cache="${GLIMPSE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/glimpse}/llama.cpp-$VERSION"
src="$cache/src"
if [ -f "$src/CMakeLists.txt" ]; then
  echo "$src"
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
.venv/bin/python - "$VERSION" "$SHA256" "$work/sdist.tar.gz" <<'PY'
import hashlib, json, sys, urllib.parse, urllib.request
version, sha256, out = sys.argv[1:4]
index = "https://pypi.org/pypi/llama-cpp-python/json"
release = json.load(urllib.request.urlopen(index, timeout=60))["releases"][version]
sdist = next(f for f in release if f["packagetype"] == "sdist")
data = urllib.request.urlopen(urllib.parse.urljoin(index, sdist["url"]), timeout=600).read()
if hashlib.sha256(data).hexdigest() != sha256:
    sys.exit(f"llama-cpp-python {version}: the sdist's sha256 is not the pinned one")
open(out, "wb").write(data)
PY
tar xzf "$work/sdist.tar.gz" -C "$work"
rm -rf "$src"
mv "$work/llama_cpp_python-$VERSION/vendor/llama.cpp" "$src"
echo "$src"
