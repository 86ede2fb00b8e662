#!/usr/bin/env bash
# Builds `kiln` and `kiln-predictor-torch` side by side (after scripts/setup.sh).
#   scripts/build.sh            debug build, target/debug/
#   scripts/build.sh --release  release build, target/release/
#   scripts/build.sh --cuda     also kiln-predictor-torch-cuda (links libtorch_cuda; release)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$KILN_ROOT"
profile=()
cuda=0
for arg in "$@"; do
  case "$arg" in
    --release) profile=(--release) ;;
    --cuda) cuda=1; profile=(--release) ;;
    *) echo "build.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
KILN_SETUP_CUDA="$cuda" "$KILN_ROOT/scripts/setup.sh"
cargo build "${profile[@]}" "${KILN_BUILD_TARGETS[@]}"
if [ "$cuda" = 1 ]; then
  LIBTORCH="$KILN_CACHE/native/libtorch-cuda" CARGO_TARGET_DIR="$KILN_ROOT/target/cuda" \
    cargo build --release -p kiln-predictor-torch
  cp "$KILN_ROOT/target/cuda/release/kiln-predictor-torch" "$KILN_ROOT/target/release/kiln-predictor-torch-cuda"
fi
