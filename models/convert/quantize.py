"""Static QDQ int8 quantization of the MobileFaceNet embedder + checks (run in .venv-ort).

Usage: python quantize.py F32.onnx INT8.onnx CROPS.npz TFLITE_REF.npz STATS.json [DECOMPOSED.onnx]

Recipe: onnxruntime.quantization.quantize_static, QuantFormat.QDQ, per-channel int8 weights
(symmetric), uint8 activations (asymmetric), CalibrationMethod.Percentile at 99.999, calibrated on
the ~300 aligned crops of the "calib" split. Only Conv nodes are quantized, and of those NOT:
the first conv (Conv2d_0), any depthwise conv (group > 1) and the head, i.e. every conv after
the last residual block: the 1x1 expansion to 512 (Conv2d_7), the global depthwise conv and the
two linear 1x1 convs under MobileFaceNet/Logits/ that produce the embedding (the paper's
"conv1x1 512, linear GDC, linear conv1x1" head). Quantizing Conv2d_7 too costs about 0.003 of
mean cosine to f32 (0.995 instead of 0.998 on the held-out crops). Everything else stays float; the QDQ graph
only adds QuantizeLinear/DequantizeLinear (no QLinear* / integer-only ops).

Checks printed and stored in STATS.json:
- f32 ONNX vs the original TFLite on 32 held-out crops (conversion fidelity);
- if DECOMPOSED.onnx (the f32 model before the PReLU rewrite, from mobilefacenet.py) is given:
  f32 vs it on the held-out and calibration crops (the rewrite must not change the embeddings);
- cosine f32 vs int8 over the held-out crops (never used for calibration);
- same/different-person cosine over LFW View 1 DevTrain pairs whose images are not in the
  calibration split, for f32 and int8 (a sanity check of alignment + model, not a benchmark).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from common import lfw_devtrain_images

MEAN, STD = 127.5, 128.0
HEAD_PREFIXES = ("MobileFaceNet/MobileFaceNet/Conv2d_7/", "MobileFaceNet/Logits/")


def session(path: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def embed(sess: ort.InferenceSession, crops: np.ndarray) -> np.ndarray:
    out = []
    for c in crops:
        x = ((c.astype(np.float32) - np.float32(MEAN)) / np.float32(STD))[None]
        out.append(sess.run(["embeddings"], {"input": x})[0][0])
    return np.stack(out)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class Crops(CalibrationDataReader):
    def __init__(self, crops: np.ndarray):
        self.items = iter(crops)

    def get_next(self):
        c = next(self.items, None)
        if c is None:
            return None
        return {"input": ((c.astype(np.float32) - np.float32(MEAN)) / np.float32(STD))[None]}


def conv_nodes_to_quantize(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    first = convs[0].name
    keep, skip = [], []
    for n in convs:
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        if n.name == first or group > 1 or n.name.startswith(HEAD_PREFIXES):
            skip.append(n.name)
        else:
            keep.append(n.name)
    for prefix in HEAD_PREFIXES:
        assert any(n.startswith(prefix) for n in skip), prefix
    return keep, skip


def pair_stats(faces_json: dict, emb: dict) -> dict:
    calib = set(faces_json["calib"])
    same, diff = [], []
    faces = os.environ["FACES"]
    with open(os.path.join(faces, "lfw-dev", "pairsDevTrain.txt")) as f:
        next(f)
        for line in f:
            p = line.split()
            if len(p) == 3:
                a, b, lab = f"lfw-dev/{p[0]}/{p[0]}_{int(p[1]):04d}.jpg", f"lfw-dev/{p[0]}/{p[0]}_{int(p[2]):04d}.jpg", 1
            else:
                a, b, lab = f"lfw-dev/{p[0]}/{p[0]}_{int(p[1]):04d}.jpg", f"lfw-dev/{p[2]}/{p[2]}_{int(p[3]):04d}.jpg", 0
            if a in calib or b in calib or a not in emb or b not in emb:
                continue
            c = float(np.dot(emb[a], emb[b]))
            (same if lab else diff).append(c)
    same, diff = np.array(same), np.array(diff)
    ts = np.linspace(-1, 1, 2001)
    acc = max(((same >= t).sum() + (diff < t).sum()) / (len(same) + len(diff)) for t in ts)
    return {
        "same_pairs": len(same),
        "diff_pairs": len(diff),
        "same_cos_mean": round(float(same.mean()), 4),
        "diff_cos_mean": round(float(diff.mean()), 4),
        "best_threshold_accuracy_fitted_on_same_pairs": round(float(acc), 4),
    }


def main(f32: str, int8: str, crops_npz: str, tflite_ref: str, stats_out: str, decomposed: str | None = None) -> None:
    data = np.load(crops_npz)
    with open(crops_npz + ".json") as f:
        names = json.load(f)

    model = onnx.load(f32)
    keep, skip = conv_nodes_to_quantize(model)
    with tempfile.TemporaryDirectory() as tmp:
        out_tmp = os.path.join(tmp, "int8.onnx")
        quantize_static(
            f32,
            out_tmp,
            Crops(data["calib"]),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            nodes_to_quantize=keep,
            nodes_to_exclude=skip,
            per_channel=True,
            reduce_range=False,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": 99.999, "ActivationSymmetric": False, "WeightSymmetric": True},
        )
        q = onnx.load(out_tmp)
    # Keep the file small and self-describing; nothing else is changed.
    q.producer_name, q.producer_version = "onnxruntime.quantization", ort.__version__
    del q.graph.value_info[:]
    onnx.checker.check_model(q, full_check=True)
    onnx.save(q, int8)

    s32, s8 = session(f32), session(int8)

    ref = np.load(tflite_ref)
    got = np.stack([s32.run(["embeddings"], {"input": x[None]})[0][0] for x in ref["input"]])
    tfl = {
        "crops": int(len(got)),
        "max_abs_diff": float(np.abs(got - ref["embeddings"]).max()),
        "min_cosine": float((unit(got) * unit(ref["embeddings"])).sum(-1).min()),
    }

    e32 = embed(s32, data["heldout"])
    e8 = embed(s8, data["heldout"])
    cos = (unit(e32) * unit(e8)).sum(-1)
    heldout = {"crops": int(len(cos)), "cos_mean": float(cos.mean()), "cos_min": float(cos.min())}

    rewrite = None
    if decomposed:
        sd = session(decomposed)
        e_cal = embed(s32, data["calib"])
        d_ho, d_cal = embed(sd, data["heldout"]), embed(sd, data["calib"])
        rewrite = {
            "crops": int(len(e32) + len(e_cal)),
            "max_abs_diff": float(max(np.abs(e32 - d_ho).max(), np.abs(e_cal - d_cal).max())),
            "identical": bool(np.array_equal(e32, d_ho) and np.array_equal(e_cal, d_cal)),
        }

    lfw = names["lfw_devtrain"]
    emb32 = dict(zip(lfw, unit(embed(s32, data["lfw_devtrain"]))))
    emb8 = dict(zip(lfw, unit(embed(s8, data["lfw_devtrain"]))))
    stats = {
        "onnxruntime": ort.__version__,
        "quantized_convs": len(keep),
        "float_convs": len(skip),
        "float_conv_names": skip,
        "calibration": {
            "crops": int(len(data["calib"])),
            "lfw_devtrain": sum(p.startswith("lfw-dev/") for p in names["calib"]),
            "att_faces": sum(p.startswith("att_faces/") for p in names["calib"]),
            "deepface": sum(p.startswith("deepface/") for p in names["calib"]),
        },
        "heldout_sets": {
            k: sum(p.startswith(k + "/") for p in names["heldout"]) for k in ("lfw-dev", "face_recognition", "deepface")
        },
        "f32_vs_tflite": tfl,
        "f32_vs_int8_heldout": heldout,
        "f32_vs_decomposed_prelu": rewrite,
        "lfw_devtrain_pairs_f32": pair_stats(names, emb32),
        "lfw_devtrain_pairs_int8": pair_stats(names, emb8),
    }
    with open(stats_out, "w") as f:
        json.dump(stats, f, indent=1)
    print(f"quantize: {len(keep)} convs int8, {len(skip)} float -> {int8}")
    print(f"quantize: f32 ONNX vs TFLite on {tfl['crops']} crops: max|diff|={tfl['max_abs_diff']:.2e} min cos={tfl['min_cosine']:.6f}")
    if rewrite:
        print(
            f"quantize: f32 vs f32 before the PReLU rewrite on {rewrite['crops']} crops: "
            f"max|diff|={rewrite['max_abs_diff']:.2e} identical={rewrite['identical']}"
        )
    print(f"quantize: f32 vs int8 cosine over {heldout['crops']} held-out crops: mean={heldout['cos_mean']:.4f} min={heldout['cos_min']:.4f}")
    for k in ("lfw_devtrain_pairs_f32", "lfw_devtrain_pairs_int8"):
        print(f"quantize: {k}: {stats[k]}")


if __name__ == "__main__":
    main(*sys.argv[1:7])
