#!/usr/bin/env bash
# ARM cost per frame as guest instruction counts (repeatable), f32 vs int8, for facegate's models.
#
# What is counted:
#   aarch64: the `model_timing` example, cross-built by cross/build-aarch64.sh, runs under
#            qemu-user (`qemu-aarch64`, Debian's qemu-user) with the TCG plugin `libinsn.so`
#            (inline=on): every executed *guest* (AArch64) instruction adds 1 to a counter.
#            Debian's qemu-user is built with plugin support but ships no plugins, so this
#            script builds upstream's tests/plugin/insn.c against qemu-plugin.h, both taken from
#            the Debian source package of the installed qemu-user version (`apt-get source`,
#            deb-src enabled for it in /etc/apt/sources.list.d/facegate-deb-src.sources).
#   x86_64:  the host build of the same example under `valgrind --tool=callgrind` (total Ir =
#            executed x86 instructions). `perf stat -e instructions` is "not supported" here.
#            valgrind hides AVX-512 from the guest, so tract runs its AVX2/FMA kernels.
#   per inference = (count with --runs K) - (count with --runs 0), divided by K, same --warmup,
#   so model loading, optimisation and warm-up cancel out.
#
# What is measured, per model or stage (`--models`, names as `model_timing --only` takes them):
#   a model stem (models/<stem>.toml): one inference of the bare network on its reference input
#            tensor tests/fixtures/ort/<stem>.input.f32;
#   liveness-frame: the liveness check the door runs on each usable face (crop x2.7 + 128x128
#            BGR + fr-liveness-128 + the model-free cues + fusion), on the face of
#            tests/fixtures/faces/obama_1.jpg scaled into a 640x480 frame (detected once,
#            outside the count); liveness-cues: the cues alone; landmarks-frame: crop + 64x64
#            grey + fr-landmark-68 (each face when challenge = "turn").
#
# aarch64 CPU models (-cpu): tract chooses its aarch64 kernels at run time from AT_HWCAP/AT_HWCAP2
# (qemu-user fills them from the emulated CPU): SVE2 -> SVE kernels, FEAT_DotProd -> SDOT int8
# kernel, else NEON (SMLAL int8). Defaults measured: `max` (qemu-user's default: SVE2, dotprod,
# i8mm...), `cortex-a76` (Pi 5 class: NEON + dotprod), `cortex-a72` (Pi 4: NEON, no dotprod).
#
# Usage: cross/arm-cost.sh [--runs K] [--warmup W] [--cpus "max cortex-a76 cortex-a72"]
#                          [--models "mobilefacenet mobilefacenet-int8 blazeface-front-128 ..."]
#                          [--no-host] [--no-arm] [--no-build] [--append]
#   --no-build: count with the binaries already built (e.g. while cargo is busy with another build)
#   --append:   add to target/arm-cost/results.tsv instead of starting it afresh (the table shows all)
# Output: a table on stdout, and target/arm-cost/results.tsv. Needs root for apt (first run only).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS=5
WARMUP=2
CPUS="max cortex-a76 cortex-a72"
MODELS="mobilefacenet mobilefacenet-int8 blazeface-front-128 fr-liveness-128 fr-landmark-68"
MODELS+=" liveness-frame liveness-cues landmarks-frame"
HOST=1
ARM=1
BUILD=1
APPEND=0
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --cpus) CPUS="$2"; shift 2 ;;
        --models) MODELS="$2"; shift 2 ;;
        --no-host) HOST=0; shift ;;
        --no-arm) ARM=0; shift ;;
        --no-build) BUILD=0; shift ;;
        --append) APPEND=1; shift ;;
        *) echo "usage: $0 [--runs K] [--warmup W] [--cpus LIST] [--models LIST] [--no-host] [--no-arm] [--no-build] [--append]" >&2; exit 2 ;;
    esac
done
[ "$RUNS" -gt 0 ] || { echo "--runs must be > 0" >&2; exit 2; }

OUTDIR="$ROOT/target/arm-cost"
mkdir -p "$OUTDIR"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
ARM_BIN="$TARGET_DIR/aarch64-unknown-linux-gnu/release/examples/model_timing"
HOST_BIN="$TARGET_DIR/release/examples/model_timing"
PLUGIN="$OUTDIR/libinsn.so"
ARGS=(--models "$ROOT/models" --fixtures "$ROOT/tests/fixtures/ort"
      --frame "$ROOT/tests/fixtures/faces/obama_1.jpg" --warmup "$WARMUP")

# shellcheck source=../scripts/apt.sh
source "$ROOT/scripts/apt.sh"

build_plugin() {   # libinsn.so for the installed qemu-user, from its own Debian source
    local ver src work
    ver=$(dpkg-query -W -f='${source:Version}' qemu-user)
    src=$(dpkg-query -W -f='${source:Package}' qemu-user)
    if [ -f "$PLUGIN" ] && [ "$(cat "$PLUGIN.version" 2>/dev/null)" = "$ver" ]; then return 0; fi
    apt_install gcc pkg-config libglib2.0-dev xz-utils
    if ! apt-cache showsrc "$src" 2>/dev/null | grep -qx "Version: $ver"; then
        local list=/etc/apt/sources.list.d/facegate-deb-src.sources
        if [ ! -f "$list" ]; then
            # Same mirrors and suites as the binary sources, for source packages (Debian registry).
            sed -n 's/^Types: deb$/Types: deb-src/p; /^Types:/!p' /etc/apt/sources.list.d/debian.sources > "$list"
        fi
        apt-get update -qq; apt_updated=1
    fi
    work=$(mktemp -d)
    (cd "$work" && apt-get source -qq --download-only "$src=$ver" >/dev/null 2>&1)
    tar -xf "$work"/"${src}"_*.orig.tar.* -C "$work" --wildcards '*/include/qemu/qemu-plugin.h' '*/tests/plugin/insn.c'
    local top
    top=$(ls -d "$work"/*/ | head -1)
    # shellcheck disable=SC2046
    gcc -O2 -shared -fPIC -I"$top/include/qemu" $(pkg-config --cflags glib-2.0) \
        "$top/tests/plugin/insn.c" -o "$PLUGIN" $(pkg-config --libs glib-2.0)
    echo "$ver" > "$PLUGIN.version"
    rm -rf "$work"
    echo "built $PLUGIN from Debian source $src $ver" >&2
}

count_arm() {   # count_arm CPU STEM RUNS -> guest instructions of one whole process
    local log="$OUTDIR/qemu.$1.$2.$3.log"
    qemu-aarch64 -cpu "$1" -L /usr/aarch64-linux-gnu -plugin "$PLUGIN,inline=on" -d plugin -D "$log" \
        "$ARM_BIN" "${ARGS[@]}" --only "$2" --runs "$3" > /dev/null
    awk '/^insns:/ { print $2 }' "$log"
}

count_host() {  # count_host STEM RUNS -> x86 instructions (callgrind Ir) of one whole process
    local out="$OUTDIR/callgrind.$1.$2.out"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$HOST_BIN" "${ARGS[@]}" --only "$1" --runs "$2" \
        > /dev/null 2> "$out.stderr"
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

per_inference() { awk -v a="$1" -v b="$2" -v k="$RUNS" 'BEGIN { printf "%.0f", (b - a) / k }'; }

RESULTS="$OUTDIR/results.tsv"
if [ "$APPEND" = 0 ] || [ ! -f "$RESULTS" ]; then
    printf 'target\tcpu\tmodel\tinsns_runs0\tinsns_runsK\tinsns_per_inference\n' > "$RESULTS"
fi

if [ "$ARM" = 1 ]; then
    apt_install qemu-user libc6-dev-arm64-cross
    # First time: the whole cross setup + build; afterwards only bring the example up to date.
    if [ "$BUILD" = 0 ]; then
        [ -x "$ARM_BIN" ] || { echo "--no-build: $ARM_BIN not built" >&2; exit 1; }
    elif [ -x "$ARM_BIN" ]; then
        cargo build --release --locked --target aarch64-unknown-linux-gnu --example model_timing
    else
        "$ROOT/cross/build-aarch64.sh"
    fi
    build_plugin
    for cpu in $CPUS; do
        # What tract will see: the auxv hardware capabilities qemu-user gives this CPU model.
        hw=$(qemu-aarch64 -cpu "$cpu" -L /usr/aarch64-linux-gnu -E LD_SHOW_AUXV=1 "$ARM_BIN" --runs x 2>/dev/null \
             | awk '/^AT_HWCAP2?:/ { printf "%s ", $0 }' || true)
        echo "aarch64 -cpu $cpu: $hw" >&2
        for m in $MODELS; do
            c0=$(count_arm "$cpu" "$m" 0)
            ck=$(count_arm "$cpu" "$m" "$RUNS")
            printf 'aarch64\t%s\t%s\t%s\t%s\t%s\n' "$cpu" "$m" "$c0" "$ck" "$(per_inference "$c0" "$ck")" >> "$RESULTS"
            echo "  aarch64 $cpu $m: $(per_inference "$c0" "$ck") insns/inference" >&2
        done
    done
fi

if [ "$HOST" = 1 ]; then
    apt_install valgrind
    if [ "$BUILD" = 1 ]; then
        cargo build --release --locked --example model_timing
    fi
    [ -x "$HOST_BIN" ] || { echo "$HOST_BIN not built" >&2; exit 1; }
    for m in $MODELS; do
        c0=$(count_host "$m" 0)
        ck=$(count_host "$m" "$RUNS")
        printf 'x86_64\tvalgrind\t%s\t%s\t%s\t%s\n' "$m" "$c0" "$ck" "$(per_inference "$c0" "$ck")" >> "$RESULTS"
        echo "  x86_64 $m: $(per_inference "$c0" "$ck") insns/inference" >&2
    done
fi

# Table: instructions per inference, and int8/f32 (mobilefacenet-int8 / mobilefacenet) per target+cpu.
echo
echo "guest instructions per inference (--warmup $WARMUP, --runs $RUNS minus --runs 0); $(date -u +%F), host: $(lscpu | sed -n 's/^Model name: *//p')"
awk -F'\t' 'NR > 1 { key = $1 " " $2; v[key, $3] = $6; if (!(key in seen)) { seen[key] = 1; order[n++] = key } ; models[$3] = 1; if (!($3 in mseen)) { mseen[$3] = 1; morder[nm++] = $3 } }
    END {
        printf "%-26s %-22s %16s %12s\n", "target / cpu", "model / stage", "insns/inference", "int8/f32"
        for (i = 0; i < n; i++) for (j = 0; j < nm; j++) {
            k = order[i]; m = morder[j]; if (!((k, m) in v)) continue
            r = ""
            if (m == "mobilefacenet-int8" && ((k, "mobilefacenet") in v) && v[k, "mobilefacenet"] > 0)
                r = sprintf("%.3f", v[k, m] / v[k, "mobilefacenet"])
            printf "%-26s %-22s %16.0f %12s\n", k, m, v[k, m], r
        }
    }' "$RESULTS"
echo "(raw counts: $RESULTS)"
