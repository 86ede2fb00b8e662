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
# The same targets as scripts/build.sh (a `-p kiln-predictor-torch` build would compile the
# predictor again with other features).
cargo build --quiet "${profile[@]}" "${KILN_BUILD_TARGETS[@]}"
"${CARGO_TARGET_DIR:-$KILN_ROOT/target}/${KILN_PROFILE:-debug}/examples/make_torch_fixture" "$out"
