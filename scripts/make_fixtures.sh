#!/usr/bin/env bash
# Makes the test and example models (ONNX by Python, TorchScript by tch) into .kiln-cache/fixtures.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$KILN_ROOT"
out="${KILN_FIXTURES:-$KILN_CACHE/fixtures}"
mkdir -p "$out"
"$KILN_CACHE/venv/bin/python" scripts/make_fixtures.py "$out"
# Same profile as the binaries being tested or served (KILN_PROFILE=release from up.sh).
profile=()
[ "${KILN_PROFILE:-debug}" = release ] && profile=(--release)
cargo run --quiet "${profile[@]}" -p kiln-predictor-torch --example make_torch_fixture -- "$out"
