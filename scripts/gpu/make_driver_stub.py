"""Writes a stub `libcuda.so` for linking a CUDA build on a machine without NVIDIA's driver.

The driver library (`libcuda.so.1`) comes with the driver, not with the toolkit wheels on PyPI, but cudarc (the
CUDA bindings candle uses, linked dynamically) needs it at link time. The stub defines every driver function
cudarc binds, as an empty function, under the real library's soname: the binary records `libcuda.so.1` and, on the
GPU machine, the loader resolves those names in the real driver. The stub is never loaded.

    python3 scripts/gpu/make_driver_stub.py OUT_DIR      # -> OUT_DIR/libcuda.so
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def cudarc_sources() -> list[Path]:
    """The `cudarc` source folders of this workspace's dependency graph (every version: the stub covers each)."""
    meta = json.loads(subprocess.run(["cargo", "metadata", "--locked", "--format-version", "1", "--features", "glimpse-cli/cuda"],
                                     check=True, capture_output=True, text=True).stdout)
    return [Path(p["manifest_path"]).parent for p in meta["packages"] if p["name"] == "cudarc"]


def driver_functions(source: Path) -> set[str]:
    text = (source / "src" / "driver" / "sys" / "mod.rs").read_text()
    return set(re.findall(r"\bfn (cu[A-Za-z0-9_]+)\s*\(", text))


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    names = set().union(*(driver_functions(s) for s in cudarc_sources()))
    if not names:
        sys.exit("no cudarc driver bindings found (run `cargo fetch --locked` first)")
    with tempfile.TemporaryDirectory() as tmp:
        c = Path(tmp) / "libcuda_stub.c"
        c.write_text("".join(f"void {name}(void) {{}}\n" for name in sorted(names)))
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out / "libcuda.so"), "-Wl,-soname,libcuda.so.1", str(c)],
                       check=True)
    print(f"{out / 'libcuda.so'}: {len(names)} driver functions")


if __name__ == "__main__":
    main()
