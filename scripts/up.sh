#!/usr/bin/env bash
# Kiln's main job, on a fresh machine: fetches what is missing, builds, makes the example
# model, and runs `kiln up` with the InferenceServices in examples/manifests/:
# the router on http://127.0.0.1:8080 (REST and gRPC), the admin API on :8079.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$KILN_ROOT"
"$KILN_ROOT/scripts/build.sh" --release
KILN_PROFILE=release "$KILN_ROOT/scripts/make_fixtures.sh"
exec target/release/kiln up \
  --manifests examples/manifests \
  --config examples/kiln.yaml \
  --state-dir "${KILN_STATE_DIR:-$KILN_CACHE/state}" \
  --http-port "${KILN_HTTP_PORT:-8080}" --admin-port "${KILN_ADMIN_PORT:-8079}" "$@"
