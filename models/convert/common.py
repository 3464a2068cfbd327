"""Shared helpers for the model conversion scripts (run in the .venv-ort virtualenv).

Image loading, letterboxing, a small BlazeFace decoder and a 5-point similarity alignment to the
ArcFace 112x112 template, all in numpy + Pillow. This is the reference pre-processing used to
build the calibration set, the f32/int8 check and the tract-vs-onnxruntime fixtures; the Rust
code implements the same steps on its own.

Conventions
- Letterbox: the image is padded with black to a square, CENTRED (equal padding on both sides,
  the odd pixel going to the bottom/right), then resized with bilinear filtering to the model side.
- Coordinates: detector outputs are normalised to the letterboxed square ([0, 1]); they are
  mapped back to continuous image coordinates (pixel i covers [i, i+1)). The ArcFace template is
  in pixel-index coordinates (pixel centres on integers, the OpenCV warpAffine convention), so the
  keypoints are shifted by -0.5 before estimating the transform.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

# ArcFace 5-point template for a 112x112 crop: left eye, right eye, nose tip, left mouth corner,
# right mouth corner (left/right as seen in the image).
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
# BlazeFace gives a single mouth-centre keypoint: use the mean of the two template mouth corners.
ARCFACE_112_4PT = np.vstack([ARCFACE_112[:3], ARCFACE_112[3:].mean(axis=0, keepdims=True)])

BLAZEFACE_LAYERS = [(16, 2), (8, 6)]  # (grid side, anchors per cell), in output order
SCORE_CLIP = 100.0


def load_rgb(path: str) -> np.ndarray:
    """Load any image (JPEG, PNG with alpha, grey PGM), apply EXIF orientation, return HxWx3 uint8 RGB."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (0, 0, 0, 255))
            im = Image.alpha_composite(bg, im)
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


@dataclass
class Letterbox:
    side: int  # side of the padded square in source pixels
    pad_x: int  # left padding in source pixels
    pad_y: int  # top padding in source pixels
    size: int  # model input side


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Pad to a centred square with black, resize bilinearly to size x size. Returns uint8 HxWx3."""
    h, w = rgb.shape[:2]
    side = max(h, w)
    pad_x = (side - w) // 2
    pad_y = (side - h) // 2
    sq = np.zeros((side, side, 3), dtype=np.uint8)
    sq[pad_y : pad_y + h, pad_x : pad_x + w] = rgb
    out = np.asarray(Image.fromarray(sq).resize((size, size), Image.BILINEAR), dtype=np.uint8)
    return out, Letterbox(side, pad_x, pad_y, size)


def normalise(pixels: np.ndarray, mean: float, std: float) -> np.ndarray:
    """uint8 HxWx3 -> float32 1xHxWx3, (pixel - mean) / std."""
    x = (pixels.astype(np.float32) - np.float32(mean)) / np.float32(std)
    return x[None].astype(np.float32)


def blazeface_anchors() -> np.ndarray:
    """896 x 2 anchor centres, in output order: 16x16 grid x 2 anchors, then 8x8 grid x 6 anchors."""
    out = []
    for grid, per_cell in BLAZEFACE_LAYERS:
        for y in range(grid):
            for x in range(grid):
                for _ in range(per_cell):
                    out.append(((x + 0.5) / grid, (y + 0.5) / grid))
    return np.array(out, dtype=np.float64)


ANCHORS = blazeface_anchors()


@dataclass
class Face:
    score: float
    box: np.ndarray  # x0, y0, x1, y1 in source-image continuous coordinates
    keypoints: np.ndarray  # 6 x 2: image-left eye, image-right eye, nose tip, mouth, two ears


def blazeface_decode(outputs: dict, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (scores[896], boxes[896,4] as cx,cy,w,h, keypoints[896,6,2]) in letterbox-normalised units."""
    logits = np.concatenate(
        [outputs["Identity:0"].reshape(-1), outputs["Identity_1:0"].reshape(-1)]
    ).astype(np.float64)
    reg = np.concatenate(
        [outputs["Identity_2:0"].reshape(-1, 16), outputs["Identity_3:0"].reshape(-1, 16)]
    ).astype(np.float64)
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -SCORE_CLIP, SCORE_CLIP)))
    r = reg / size
    cx = r[:, 0] + ANCHORS[:, 0]
    cy = r[:, 1] + ANCHORS[:, 1]
    boxes = np.stack([cx, cy, r[:, 2], r[:, 3]], axis=1)
    kps = r[:, 4:16].reshape(-1, 6, 2) + ANCHORS[:, None, :]
    return scores, boxes, kps


class Detector:
    """BlazeFace through onnxruntime; returns the best-scoring face in original image coordinates."""

    def __init__(self, model_path: str, size: int, threads: int = 1):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
        self.size = size
        self.input_name = self.sess.get_inputs()[0].name
        self.output_names = [o.name for o in self.sess.get_outputs()]

    def best_face(self, rgb: np.ndarray, min_score: float = 0.5) -> Face | None:
        pixels, lb = letterbox(rgb, self.size)
        x = normalise(pixels, 127.5, 127.5)
        outs = dict(zip(self.output_names, self.sess.run(self.output_names, {self.input_name: x})))
        scores, boxes, kps = blazeface_decode(outs, self.size)
        i = int(np.argmax(scores))
        if scores[i] < min_score:
            return None
        to_src = lambda p: p * lb.side - np.array([lb.pad_x, lb.pad_y], dtype=np.float64)
        cx, cy, w, h = boxes[i]
        box = np.concatenate([to_src(np.array([cx - w / 2, cy - h / 2])), to_src(np.array([cx + w / 2, cy + h / 2]))])
        return Face(float(scores[i]), box, to_src(kps[i]))


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src -> dst; 2x3 matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = src.shape[0]
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / n
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = (s_c**2).sum() / n
    scale = (sig * d).sum() / var_s
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def align_arcface(rgb: np.ndarray, keypoints: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp the face to the ArcFace 112x112 template using eyes, nose tip and mouth centre."""
    src_idx = keypoints[:4] - 0.5  # continuous -> pixel-index coordinates
    m = umeyama_similarity(src_idx, ARCFACE_112_4PT)  # index(src) -> index(dst)
    a = np.vstack([m, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(a)
    # Pillow samples the input at continuous coordinates (pixel centres at +0.5):
    # src_cont = inv @ (dst_cont - 0.5) + 0.5
    shift = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    unshift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    full = unshift @ inv @ shift
    coeffs = tuple(float(v) for v in full[:2].reshape(-1))
    out = Image.fromarray(rgb).transform((size, size), Image.AFFINE, coeffs, resample=Image.BILINEAR)
    return np.asarray(out, dtype=np.uint8)


def stable_order(items: list[str], salt: str) -> list[str]:
    """Deterministic pseudo-random order, independent of library versions."""
    return sorted(items, key=lambda s: hashlib.sha256((salt + s).encode()).hexdigest())


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def lfw_devtrain_images(faces: str) -> list[str]:
    """Relative paths (under faces/) of every image named in pairsDevTrain.txt, sorted."""
    names = set()
    with open(os.path.join(faces, "lfw-dev", "pairsDevTrain.txt")) as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                names.add((parts[0], int(parts[1])))
                names.add((parts[0], int(parts[2])))
            elif len(parts) == 4:
                names.add((parts[0], int(parts[1])))
                names.add((parts[2], int(parts[3])))
    out = []
    for name, i in sorted(names):
        rel = f"lfw-dev/{name}/{name}_{i:04d}.jpg"
        if os.path.exists(os.path.join(faces, rel)):
            out.append(rel)
    return out


def lfw_devtest_images(faces: str) -> set[str]:
    """Images named in pairsDevTest.txt (never used for calibration)."""
    names = set()
    with open(os.path.join(faces, "lfw-dev", "pairsDevTest.txt")) as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                names.update({(parts[0], int(parts[1])), (parts[0], int(parts[2]))})
            elif len(parts) == 4:
                names.update({(parts[0], int(parts[1])), (parts[2], int(parts[3]))})
    return {f"lfw-dev/{n}/{n}_{i:04d}.jpg" for n, i in names}


def list_images(faces: str, subset: str) -> list[str]:
    out = []
    for root, _dirs, files in os.walk(os.path.join(faces, subset)):
        for fn in files:
            if fn.lower().endswith((".jpg", ".jpeg", ".png", ".pgm")):
                out.append(os.path.relpath(os.path.join(root, fn), faces))
    return sorted(out)
