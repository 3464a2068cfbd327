#!/usr/bin/env bash
# Cross-build facegate for armv7 (32-bit ARM hard-float Linux, glibc: Raspberry Pi OS 32-bit,
# Pi 2/3/Zero 2 on armhf) on a Debian 12 x86_64 host.
#
# Route: rustup's armv7-unknown-linux-gnueabihf std + Debian's gcc-arm-linux-gnueabihf as linker
#   (.cargo/config.toml). This is the only route: Debian 12's armhf Rust std lags the compiler,
#   so there is no Debian-packaged fallback as there is for aarch64. If `rustup target add` cannot
#   reach its server, this script stops there.
#   The binary needs glibc >= 2.34 on the target (Debian 12's cross glibc): Pi OS Bookworm is fine.
#
# Builds (release profile): the `facegate` binary and the `model_timing` example, strips the
# binary into target/armv7-unknown-linux-gnueabihf/release/facegate.stripped and prints its size,
# and its size together with models/*.onnx. Run the example with
#   qemu-arm -L /usr/arm-linux-gnueabihf target/armv7-unknown-linux-gnueabihf/release/examples/model_timing --runs 1
#
# Usage: cross/build-armv7.sh            (idempotent; installs what is missing, needs root for apt)
#        SKIP_INSTALL=1 cross/build-armv7.sh   (only build)
set -euo pipefail

TARGET=armv7-unknown-linux-gnueabihf
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=../scripts/apt.sh
source "$ROOT/scripts/apt.sh"

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    # Cross linker + armhf glibc sysroot (/usr/arm-linux-gnueabihf), strip, and qemu-user (qemu-arm);
    # libclang for bindgen (the v4l crate's V4L2 bindings, from the sysroot's videodev2.h).
    apt_install gcc-arm-linux-gnueabihf libc6-dev-armhf-cross binutils-arm-linux-gnueabihf qemu-user libclang-dev
    rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
fi

start=$(date +%s)
# Two builds, so the dev-dependencies' features are not unified into `facegate`.
cargo build --release --locked --target "$TARGET" --bin facegate
cargo build --release --locked --target "$TARGET" --example model_timing
echo "build took $(( $(date +%s) - start )) s (route: rustup target)"

# shellcheck source=report-size.sh
source "$ROOT/cross/report-size.sh"
strip_and_report "$TARGET" arm-linux-gnueabihf-strip
