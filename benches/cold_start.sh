#!/usr/bin/env bash
# Cold-start benchmark of `kiln up` (see benches/cold_start.py); figures go to stdout.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$KILN_ROOT"
scripts/build.sh --release
cargo build --release -p kiln --example burst
KILN_PROFILE=release scripts/make_fixtures.sh
"$KILN_CACHE/venv/bin/python" benches/cold_start.py target/release/kiln
