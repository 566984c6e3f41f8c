#!/usr/bin/env bash
# Builds `glimpse` with `--features cuda` for NVIDIA GPUs of compute capability 9.0 (H100, H200) on a machine with
# no GPU and no CUDA installation, and packs what the GPU machine needs into one archive:
#
#     scripts/build-cuda.sh            # -> out/glimpse-cuda.tar.xz (the binary and what it was built with)
#
# NVIDIA's compiler, headers and libraries come from PyPI (the `nvidia-*` wheels unpack into one CUDA root,
# `nvidia/cu13`). The version defaults to 13.0: the lent machines run driver 580 (CUDA 13.0) and PyTorch 2.11+cu130,
# and the kernels built here must not need a newer driver. What the wheels lack for linking is made here:
# the unversioned `libX.so` names the linker looks for, and a stub `libcuda.so` (the driver library ships with
# the driver, never on PyPI) that defines every driver function cudarc binds, so that the binary records
# `libcuda.so.1` and finds the real one at start. At run time the binary needs the driver and the CUDA 13 runtime,
# cuBLAS, cuRAND and NVRTC libraries: PyTorch's `nvidia-*` wheels on the GPU machine have them (gpu-check.sh
# points LD_LIBRARY_PATH there), as does any CUDA 13 installation.
#
# Not part of CI. On this project's 2-core build machine the first build took 57 minutes (the CUDA kernels of candle
# and of the engine, its quantisation and paged attention, and every crate again with the feature), the archive
# is 27 MB; see docs/gpu.md.
#
# Environment: CUDA_VERSION (13.0), CUDA_COMPUTE_CAP (90), OUT_ARCHIVE (out/glimpse-cuda.tar.xz).
set -euo pipefail
cd "$(dirname "$0")/.."

cuda_version=${CUDA_VERSION:-13.0}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
archive=${OUT_ARCHIVE:-out/glimpse-cuda.tar.xz}
toolkit=$PWD/target-cuda/toolkit-$cuda_version
root=$toolkit/nvidia/cu13
started=$(date +%s)

if [ ! -x "$root/bin/nvcc" ]; then
  echo "== CUDA $cuda_version toolkit from PyPI into $toolkit"
  rm -rf "$toolkit"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$toolkit" \
    "nvidia-cuda-nvcc==$cuda_version.*" "nvidia-cuda-crt==$cuda_version.*" "nvidia-nvvm==$cuda_version.*" \
    "nvidia-cuda-runtime==$cuda_version.*" "nvidia-cuda-cccl==$cuda_version.*" "nvidia-cuda-nvrtc==$cuda_version.*" \
    "nvidia-cublas==$cuda_version.*" "nvidia-curand==10.4.*"
fi

# The unversioned names the linker asks for (-lcublas …), and the driver stub.
for lib in "$root"/lib/lib*.so.*; do
  name=$(basename "$lib")
  case "$name" in *alt*|*builtins*) continue ;; esac
  ln -sf "$name" "$root/lib/${name%%.so.*}.so"
done
mkdir -p "$root/lib/stubs"
if [ ! -f "$root/lib/stubs/libcuda.so" ]; then
  cargo fetch --locked --quiet
  python3 scripts/gpu/make_driver_stub.py "$root/lib/stubs"
fi

export CUDA_HOME=$root CUDA_ROOT=$root CUDA_PATH=$root
export PATH=$root/bin:$PATH
export LIBRARY_PATH=$root/lib:$root/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}
export LD_LIBRARY_PATH=$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvcc --version | tail -2

echo "== cargo build --features cuda (compute capability $CUDA_COMPUTE_CAP)"
# The main job's profile (dev, with the engine and Glimpse's crates at opt-level 3: Cargo.toml), in its own
# target folder so the CPU build is untouched.
cargo build --locked -p glimpse-cli --features cuda --bin glimpse --target-dir target-cuda
built=$(date +%s)

echo "== packing $archive"
stage=target-cuda/pack/glimpse-cuda
rm -rf "$stage" && mkdir -p "$stage" "$(dirname "$archive")"
strip -o "$stage/glimpse" target-cuda/debug/glimpse
cat > "$stage/BUILD.txt" <<EOF
glimpse $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes'), --features cuda, compute capability $CUDA_COMPUTE_CAP
$(nvcc --version | tail -1)
needs at run time: NVIDIA driver >= 580 (CUDA $cuda_version) and $(readelf -d "$stage/glimpse" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | grep -E 'cu|nvrtc' | xargs)
EOF
tar -C "$(dirname "$stage")" -cJf "$archive" glimpse-cuda
echo "== built in $((built - started)) s; $archive: $(du -h "$archive" | cut -f1)"
ldd "$stage/glimpse" | grep -E "cuda|cublas|curand|nvrtc" || true
