"""Convert MobileFaceNet.tflite (batch 2) to a batch-1 ONNX embedder (run in .venv-tf).

Usage: python mobilefacenet.py SRC.tflite DST.onnx [CROPS.npz TFLITE_REF.npz]

Steps:
1. tf2onnx --tflite SRC --opset 13 (tf2onnx keeps PReLU decomposed as Relu/Abs/Sub/Mul/Add; kept).
2. Rename tf2onnx's run-dependent generated tensor names by order of use (reproducible output).
   Pin the input `input` to [1,112,112,3] and the output `embeddings` to [1,192]; rewrite the two
   Reshape shape constants that carry the baked-in batch of 2 ([2,512,1,1] -> [1,512,1,1] and
   [2,192] -> [1,192]); drop stale value_info and the unused ai.onnx.ml opset import.
3. If CROPS.npz is given, run the original TFLite on the first 32 held-out crops (two at a time, as
   the TFLite expects) and save input/embeddings so that the ORT side can check the conversion.
"""

import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

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


def convert(src: str, dst: str) -> None:
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
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    del model.graph.value_info[:]
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, dst)
    print("mobilefacenet: Reshape constants " + ", ".join(rewritten) + f" -> {dst}")


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
    convert(sys.argv[1], sys.argv[2])
    if len(sys.argv) > 4:
        tflite_reference(sys.argv[1], sys.argv[3], sys.argv[4])
