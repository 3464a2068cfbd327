# Sourced by the cross build scripts: strip_and_report TARGET STRIP [PROFILE] strips
# target/TARGET/PROFILE/facegate (PROFILE: release by default) into facegate.stripped and prints
# its size, the size of models/*.onnx, of the models the default config loads on ARM
# (blazeface-front-128 and mobilefacenet, see the cards' preferred_on, and fr-liveness-128:
# [liveness] door = "enforce" by default), and the sums.
strip_and_report() {
    local target=$1 strip=$2 profile=${3:-release} out bin_bytes models_bytes default_bytes
    out="target/$target/$profile"
    "$strip" -o "$out/facegate.stripped" "$out/facegate"
    file "$out/facegate.stripped" 2>/dev/null || true
    bin_bytes=$(stat -c %s "$out/facegate.stripped")
    models_bytes=$(cat models/*.onnx | wc -c)
    default_bytes=$(cat models/blazeface-front-128.onnx models/mobilefacenet.onnx models/fr-liveness-128.onnx | wc -c)
    size() { awk -v b="$1" 'BEGIN { printf "%d bytes (%.2f MiB, %.2f MB)", b, b / 1048576, b / 1e6 }'; }
    echo "facegate (stripped, $target, profile $profile): $(size "$bin_bytes")"
    echo "models/*.onnx (all $(ls models/*.onnx | wc -l)):               $(size "$models_bytes")"
    echo "default models (front-128 + f32 + liveness): $(size "$default_bytes")"
    echo "binary + default models:             $(size $((bin_bytes + default_bytes)))"
    echo "binary + all models:                 $(size $((bin_bytes + models_bytes)))"
}
