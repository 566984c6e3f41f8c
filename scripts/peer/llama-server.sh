#!/usr/bin/env bash
# Prints the path of a llama.cpp `llama-server`, building it first if this machine has none: llama.cpp's sources
# from PyPI (scripts/peer/llama-cpp-source.sh), CMake and Ninja from PyPI (in the test venv), the system's C++
# compiler; CPU only, portable (no -march=native). The build (about 6 minutes on 2 cores) is cached beside the
# sources, outside the checkout, so clean clones on one machine build it once. The peer engine of
# tests/sdk/test_upstream.py; scripts/setup-deps.sh runs this.
set -euo pipefail
cd "$(dirname "$0")/../.."

src=$(scripts/peer/llama-cpp-source.sh)
server="$(dirname "$src")/llama-server"
if [ -x "$server" ]; then
  echo "$server"
  exit 0
fi

build=$(mktemp -d "$(dirname "$src")/build.XXXXXX")
trap 'rm -rf "$build"' EXIT
PATH="$PWD/.venv/bin:$PATH"
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
  >"$build/configure.log" 2>&1 || { tail -30 "$build/configure.log" >&2; exit 1; }
cmake --build "$build" --target llama-server -j"$(nproc)" >"$build/build.log" 2>&1 || { tail -30 "$build/build.log" >&2; exit 1; }
mv "$build/bin/llama-server" "$server.tmp"
mv "$server.tmp" "$server"
echo "$server"
