#!/usr/bin/env bash
# One model server on its own (no router, no autoscaler): `kiln predictor` serving the
# example model on http://127.0.0.1:8080 (REST) and :8081 (gRPC).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$KILN_ROOT"
"$KILN_ROOT/scripts/build.sh" --release
KILN_PROFILE=release "$KILN_ROOT/scripts/make_fixtures.sh"
exec target/release/kiln predictor \
  --model-name mlp \
  --storage-uri "$KILN_CACHE/fixtures/mlp" \
  --bind 127.0.0.1 --http-port "${KILN_HTTP_PORT:-8080}" --grpc-port "${KILN_GRPC_PORT:-8081}" "$@"
