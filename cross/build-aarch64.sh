#!/usr/bin/env bash
# Cross-build facegate for aarch64 (64-bit ARM Linux, glibc) on a Debian 12 x86_64 host.
#
# Route: rustup's aarch64-unknown-linux-gnu std + Debian's cross gcc as linker.
#   Why: the machine's toolchain is rustup's stable, and `rustup target add` reaches its server
#   here (checked 2026-11, rustc 1.95.0), so the cross std matches the exact compiler that builds the host
#   binary and the tests (same rustc, same Cargo.lock resolution, no second toolchain).
#   Fallback if rustup cannot download (set FACEGATE_CROSS_ROUTE=debian, or it is picked
#   automatically when `rustup target add` fails): Debian bookworm-security's rustc-web/cargo-web
#   with libstd-rust-web-dev:arm64 (after `dpkg --add-architecture arm64`), see cross/README.md.
#   Either way the linker is Debian's gcc-aarch64-linux-gnu (.cargo/config.toml), so the binary
#   needs glibc >= 2.34 on the target (Pi OS Bookworm, Ubuntu 22.04+, JetPack 6).
#
# Builds (release profile, or FACEGATE_PROFILE): the `facegate` binary and the `model_timing`
# example (the ARM cost probe used by cross/arm-cost.sh), strips the binary into
# target/aarch64-unknown-linux-gnu/<profile>/facegate.stripped and prints its size, and its size
# together with the default models and with all of models/*.onnx.
#
# Usage: cross/build-aarch64.sh            (idempotent; installs what is missing, needs root for apt)
#        SKIP_INSTALL=1 cross/build-aarch64.sh   (only build)
#        FACEGATE_PROFILE=dist cross/build-aarch64.sh   (the size-optimised profile of Cargo.toml)
set -euo pipefail

TARGET=aarch64-unknown-linux-gnu
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROUTE="${FACEGATE_CROSS_ROUTE:-rustup}"

# shellcheck source=../scripts/apt.sh
source "$ROOT/scripts/apt.sh"

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    # Cross linker + arm64 glibc sysroot (/usr/aarch64-linux-gnu), strip, and qemu-user for the runner;
    # libclang for bindgen (the v4l crate's V4L2 bindings, from the sysroot's videodev2.h).
    apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu qemu-user libclang-dev
    if [ "$ROUTE" = rustup ]; then
        if ! rustup target list --installed | grep -qx "$TARGET"; then
            rustup target add "$TARGET" || { echo "rustup target add failed; falling back to Debian's rustc-web" >&2; ROUTE=debian; }
        fi
    fi
    if [ "$ROUTE" = debian ]; then
        dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64; apt_updated=0; }
        apt_install rustc-web cargo-web libstd-rust-web-dev:arm64
    fi
fi

if [ "$ROUTE" = debian ]; then
    # Debian's rustc-web/cargo-web live in /usr/bin, behind rustup's proxies in ~/.cargo/bin on PATH:
    # call them by full path (this route is documented but was not exercised here, see cross/README.md).
    RUSTC=$(ls /usr/bin/rustc-web /usr/bin/rustc 2>/dev/null | head -1); export RUSTC
    CARGO=("$(ls /usr/bin/cargo-web /usr/bin/cargo 2>/dev/null | head -1)")
else
    CARGO=(cargo)
fi

PROFILE="${FACEGATE_PROFILE:-release}"
start=$(date +%s)
# Two builds: built together with an example, `facegate` would get the dev-dependencies'
# features unified into it (a different, bigger binary than the one shipped).
"${CARGO[@]}" build --profile "$PROFILE" --locked --target "$TARGET" --bin facegate
"${CARGO[@]}" build --profile "$PROFILE" --locked --target "$TARGET" --example model_timing
echo "build took $(( $(date +%s) - start )) s (route: $ROUTE, profile: $PROFILE)"

# shellcheck source=report-size.sh
source "$ROOT/cross/report-size.sh"
strip_and_report "$TARGET" aarch64-linux-gnu-strip "$PROFILE"
