#!/usr/bin/env bash
# Makes the test and example models (ONNX by Python, TorchScript by tch) into .kiln-cache/fixtures.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$KILN_ROOT"
out="${KILN_FIXTURES:-$KILN_CACHE/fixtures}"
mkdir -p "$out"
"$KILN_CACHE/venv/bin/python" scripts/make_fixtures.py "$out"
cargo run --quiet -p kiln-predictor-torch --example make_torch_fixture -- "$out"
