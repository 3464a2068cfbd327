"""Convert MobileFaceNet.tflite (batch 2) to a batch-1 ONNX embedder (run in .venv-tf).

Usage: python mobilefacenet.py SRC.tflite DST.onnx [CROPS.npz TFLITE_REF.npz]
           [--prelu MODE] [--prelu-json OUT.json] [--decomposed OUT.onnx]

Steps:
1. tf2onnx --tflite SRC --opset 13 (tf2onnx emits each PReLU decomposed as Relu/Abs/Sub/Mul/Add).
2. Rename tf2onnx's run-dependent generated tensor names by order of use (reproducible output).
   Pin the input `input` to [1,112,112,3] and the output `embeddings` to [1,192]; rewrite the two
   Reshape shape constants that carry the baked-in batch of 2 ([2,512,1,1] -> [1,512,1,1] and
   [2,192] -> [1,192]); drop stale value_info and the unused ai.onnx.ml opset import.
3. Rewrite the decomposed PReLUs (prelu.py, --prelu MODE, default "flip": Max(s*x, x) with the
   channels whose slope is > 1 negated in the neighbouring convs; exact; "decomposed" keeps
   tf2onnx's form). --decomposed also saves the model before this step (for the equality check in
   quantize.py), --prelu-json the rewrite summary (for PROVENANCE.md).
4. If CROPS.npz is given, run the original TFLite on the first 32 held-out crops (two at a time, as
   the TFLite expects) and save input/embeddings so that the ORT side can check the conversion.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

import prelu

BATCH_FIXES = {(2, 512, 1, 1): (1, 512, 1, 1), (2, 192): (1, 192)}
GENERATED = re.compile(r"__\d+")


def canonical_names(model: onnx.ModelProto) -> None:
    """tf2onnx numbers the tensors it creates from a global counter whose value depends on set
    iteration order, so two runs give different names (`const_fold_opt__557`). Rename every such
    tensor by order of first use and store initializers in that order, so the file is reproducible."""
    g = model.graph
    order: list[str] = []
    seen = set()
    for node in g.node:
        for name in list(node.input) + list(node.output):
            if name and name not in seen:
                seen.add(name)
                order.append(name)
    rename = {}
    for k, name in enumerate(order):
        if GENERATED.search(name):
            rename[name] = f"{GENERATED.sub('', name).replace(':0', '')}__t{k}"
    for node in g.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
        for i, name in enumerate(node.output):
            node.output[i] = rename.get(name, name)
    for vi in list(g.input) + list(g.output):
        assert vi.name not in rename, vi.name
    position = {name: k for k, name in enumerate(order)}
    inits = sorted(g.initializer, key=lambda t: position[t.name])
    for t in inits:
        t.name = rename.get(t.name, t.name)
    del g.initializer[:]
    g.initializer.extend(inits)


def finish(model: onnx.ModelProto, dst: str) -> None:
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    del model.graph.value_info[:]
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, dst)


def convert(src: str, dst: str, prelu_mode: str, prelu_json: str | None, decomposed: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.onnx")
        subprocess.run(
            [sys.executable, "-m", "tf2onnx.convert", "--tflite", src, "--opset", "13", "--output", raw],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        model = onnx.load(raw)
    g = model.graph
    assert [i.name for i in g.input] == ["input"] and [o.name for o in g.output] == ["embeddings"]
    for vi, want in ((g.input[0], [1, 112, 112, 3]), (g.output[0], [1, 192])):
        dims = vi.type.tensor_type.shape.dim
        assert len(dims) == len(want)
        for d, v in zip(dims, want):
            d.Clear()
            d.dim_value = v

    inits = {i.name: i for i in g.initializer}
    shape_inputs = {n.input[1] for n in g.node if n.op_type == "Reshape"}
    rewritten = []
    for name in sorted(shape_inputs):
        arr = numpy_helper.to_array(inits[name])
        key = tuple(int(v) for v in arr)
        if key in BATCH_FIXES:
            inits[name].CopyFrom(numpy_helper.from_array(np.array(BATCH_FIXES[key], dtype=arr.dtype), name))
            rewritten.append(f"{list(key)} -> {list(BATCH_FIXES[key])}")
        else:
            assert key[0] != 2, (name, key)
    assert len(rewritten) == 2, rewritten

    canonical_names(model)
    del g.value_info[:]
    used_domains = {n.domain for n in g.node}
    keep = [o for o in model.opset_import if o.domain in used_domains or o.domain in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    if decomposed:
        finish(model, decomposed)
    summary = prelu.rewrite(model, prelu_mode)
    if prelu_json:
        with open(prelu_json, "w") as f:
            json.dump(summary, f, indent=1)
            f.write("\n")
    finish(model, dst)
    print("mobilefacenet: Reshape constants " + ", ".join(rewritten) + f" -> {dst}")
    print(
        f"mobilefacenet: PReLU ({summary['prelus']}, slopes {summary['slope_min']} .. {summary['slope_max']}) "
        f"rewritten as {prelu_mode}: {summary['forms']}, {summary['negated_channels']} channels negated"
    )


def tflite_reference(src: str, crops: str, out: str, n: int = 32) -> None:
    import tensorflow as tf

    x = np.load(crops)["heldout"][:n].astype(np.float32)
    x = (x - 127.5) / 128.0
    interp = tf.lite.Interpreter(model_path=src, num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    outp = interp.get_output_details()[0]
    assert list(inp["shape"]) == [2, 112, 112, 3], inp["shape"]
    embs = []
    for i in range(0, n, 2):
        interp.set_tensor(inp["index"], x[i : i + 2])
        interp.invoke()
        embs.append(interp.get_tensor(outp["index"]).copy())
    np.savez(out, input=x, embeddings=np.concatenate(embs))
    print(f"mobilefacenet: TFLite reference embeddings for {n} held-out crops -> {out}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("crops", nargs="?")
    ap.add_argument("tflite_ref", nargs="?")
    ap.add_argument("--prelu", choices=prelu.MODES, default=prelu.DEFAULT, help="PReLU form (see prelu.py)")
    ap.add_argument("--prelu-json", help="write the PReLU rewrite summary here")
    ap.add_argument("--decomposed", help="also save the model before the PReLU rewrite here")
    a = ap.parse_args()
    convert(a.src, a.dst, a.prelu, a.prelu_json, a.decomposed)
    if a.tflite_ref:
        tflite_reference(a.src, a.crops, a.tflite_ref)
