# Sourced by the cross build scripts: strip_and_report TARGET STRIP strips
# target/TARGET/release/facegate into facegate.stripped and prints its size, the size of
# models/*.onnx, and the two together.
strip_and_report() {
    local target=$1 strip=$2 out bin_bytes models_bytes
    out="target/$target/release"
    "$strip" -o "$out/facegate.stripped" "$out/facegate"
    file "$out/facegate.stripped" 2>/dev/null || true
    bin_bytes=$(stat -c %s "$out/facegate.stripped")
    models_bytes=$(cat models/*.onnx | wc -c)
    mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
    echo "facegate (stripped, $target): $bin_bytes bytes ($(mib "$bin_bytes"))"
    echo "models/*.onnx:                $models_bytes bytes ($(mib "$models_bytes"))"
    echo "binary + models:              $((bin_bytes + models_bytes)) bytes ($(mib $((bin_bytes + models_bytes))))"
}
