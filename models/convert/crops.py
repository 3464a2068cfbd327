"""Detect + align faces from the shared photo sets into 112x112 ArcFace crops (run in .venv-ort).

Usage: python crops.py FACES_DIR DETECTOR.onnx OUT.npz

Splits (deterministic, see common.stable_order):
- calib   : 200 LFW View 1 DevTrain images + 60 AT&T/ORL + 40 deepface  (~300; quantization calibration)
- heldout : 150 other LFW DevTrain images + every face_recognition/ photo + the remaining deepface
            images (used only to compare the f32 and int8 embedders)
- pairs   : every image named in pairsDevTrain.txt, for the same/different cosine sanity check
LFW DevTest images (pairsDevTest.txt) are never read.
"""

import json
import os
import sys

import numpy as np

from common import Detector, align_arcface, lfw_devtest_images, lfw_devtrain_images, list_images, load_rgb, stable_order

N_LFW_CALIB, N_ATT_CALIB, N_DF_CALIB, N_LFW_HELDOUT = 200, 60, 40, 150


def main(faces: str, detector: str, out: str) -> None:
    det = Detector(detector, 128)
    devtest = lfw_devtest_images(faces)
    lfw = [p for p in lfw_devtrain_images(faces) if p not in devtest]
    lfw_order = stable_order(lfw, "lfw")
    att_order = stable_order(list_images(faces, "att_faces"), "att")
    df_order = stable_order(list_images(faces, "deepface"), "deepface")
    fr = list_images(faces, "face_recognition")

    cache: dict[str, np.ndarray | None] = {}
    misses: list[str] = []

    def crop(rel: str):
        if rel not in cache:
            rgb = load_rgb(os.path.join(faces, rel))
            face = det.best_face(rgb)
            cache[rel] = None if face is None else align_arcface(rgb, face.keypoints)
            if face is None:
                misses.append(rel)
        return cache[rel]

    def take(order: list[str], n: int, used: set[str]) -> list[str]:
        picked = []
        for rel in order:
            if len(picked) == n:
                break
            if rel in used:
                continue
            if crop(rel) is not None:
                picked.append(rel)
        return picked

    calib = take(lfw_order, N_LFW_CALIB, set()) + take(att_order, N_ATT_CALIB, set()) + take(df_order, N_DF_CALIB, set())
    used = set(calib)
    heldout = take(lfw_order, N_LFW_HELDOUT, used) + take(fr, len(fr), used) + take(df_order, len(df_order), used)
    assert not used & set(heldout)
    assert not used & devtest and not set(heldout) & devtest
    pairs_imgs = [p for p in lfw if crop(p) is not None]

    names = {"calib": calib, "heldout": heldout, "lfw_devtrain": pairs_imgs}
    arrays = {k: np.stack([cache[p] for p in v]) for k, v in names.items()}
    np.savez_compressed(out, **arrays)
    with open(out + ".json", "w") as f:
        json.dump({**names, "no_face": sorted(set(misses))}, f, indent=1)
    print(
        f"crops: calib={len(calib)} heldout={len(heldout)} lfw_devtrain={len(pairs_imgs)}"
        f" (no face found in {len(set(misses))} images read) -> {out}"
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
