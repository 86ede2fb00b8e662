#!/usr/bin/env bash
# Builds what benches/gpu.sh carries to a GPU machine: release `kiln`, the CUDA build of
# `kiln-predictor-torch` (linked against libtorch_cuda), stripped, plus the fixtures,
# into target/gpu-carry (well under the 64 MiB a device run may carry).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$KILN_ROOT"
scripts/build.sh --cuda
scripts/make_fixtures.sh
rm -rf target/gpu-carry && mkdir -p target/gpu-carry/fixtures
strip -o target/gpu-carry/kiln target/release/kiln
strip -o target/gpu-carry/kiln-predictor-torch-cuda target/release/kiln-predictor-torch-cuda
cp -r "$KILN_CACHE/fixtures/mlp" "$KILN_CACHE/fixtures/mlp-torch" target/gpu-carry/fixtures/
gzip -1 -c "$KILN_CACHE"/native/onnxruntime/libonnxruntime.so.1.* > target/gpu-carry/libonnxruntime.so.1.32.0.gz
du -sh target/gpu-carry
