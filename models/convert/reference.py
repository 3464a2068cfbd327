"""Write onnxruntime reference outputs for the tract-vs-ONNX-Runtime equality test (.venv-ort).

Usage: python reference.py MODELS_DIR FIXTURE_FACES_DIR OUT_DIR

For each model card MODELS_DIR/<stem>.toml (the four shipped models) one real input is built from
the fixture photo FIXTURE_FACES_DIR/obama_1.jpg:
- detector: the photo letterboxed (centred, black padding) to a square, resized to the model side
  (bilinear) and normalised with the card's mean/std;
- embedder: the photo's best BlazeFace-front-128 face aligned to the ArcFace 112x112 template,
  normalised with the card's mean/std.
onnxruntime runs it on one thread. Written files, all raw little-endian float32, C order:
  OUT_DIR/<stem>.input.f32, OUT_DIR/<stem>.<output name, ':' -> '_'>.f32
and OUT_DIR/<stem>.json describing names, shapes and files.
"""

import json
import os
import sys
import tomllib

import numpy as np
import onnxruntime as ort

from common import Detector, align_arcface, letterbox, load_rgb

STEMS = ["blazeface-front-128", "blazeface-back-256", "mobilefacenet", "mobilefacenet-int8"]
PHOTO = "obama_1.jpg"


def session(path: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def write_f32(path: str, arr: np.ndarray) -> None:
    np.ascontiguousarray(arr, dtype="<f4").tofile(path)


def main(models: str, faces: str, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    rgb = load_rgb(os.path.join(faces, PHOTO))
    face = Detector(os.path.join(models, "blazeface-front-128.onnx"), 128).best_face(rgb)
    assert face is not None, "no face in the reference photo"
    crop = align_arcface(rgb, face.keypoints)

    for stem in STEMS:
        with open(os.path.join(models, stem + ".toml"), "rb") as f:
            card = tomllib.load(f)
        inp = card["input"]
        assert inp["layout"] == "nhwc" and inp["colour"] == "rgb"
        if card["kind"] == "detector":
            assert inp["width"] == inp["height"]
            pixels, _ = letterbox(rgb, inp["width"])
        else:
            assert (inp["width"], inp["height"]) == (112, 112)
            pixels = crop
        mean = np.array(inp["mean"], dtype=np.float32)
        std = np.array(inp["std"], dtype=np.float32)
        x = ((pixels.astype(np.float32) - mean) / std)[None].astype(np.float32)

        sess = session(os.path.join(models, card["file"]))
        assert [i.name for i in sess.get_inputs()] == [inp["name"]]
        names = [o.name for o in sess.get_outputs()]
        outs = sess.run(names, {inp["name"]: x})

        desc = {
            "model": card["file"],
            "input": {"name": inp["name"], "shape": list(x.shape), "file": f"{stem}.input.f32"},
            "outputs": [],
            "onnxruntime": ort.__version__,
        }
        write_f32(os.path.join(out, f"{stem}.input.f32"), x)
        for name, y in zip(names, outs):
            fn = f"{stem}.{name.replace(':', '_')}.f32"
            write_f32(os.path.join(out, fn), y)
            desc["outputs"].append({"name": name, "shape": list(y.shape), "file": fn})
        with open(os.path.join(out, f"{stem}.json"), "w") as f:
            json.dump(desc, f, indent=2)
            f.write("\n")
        print(f"reference: {stem}: input {list(x.shape)} -> " + ", ".join(f"{o['name']} {o['shape']}" for o in desc["outputs"]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
