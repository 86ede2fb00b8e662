#!/usr/bin/env bash
# Runs every test on a fresh machine: fetches what is missing (scripts/setup.sh), builds
# both binaries, makes the fixtures, then runs the whole workspace's tests.
#   scripts/test.sh          all tests
#   scripts/test.sh --lint   also rustfmt --check and clippy -D warnings first
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$KILN_ROOT"
"$KILN_ROOT/scripts/setup.sh"
if [ "${1:-}" = "--lint" ]; then
  cargo fmt --all --check
  cargo clippy --workspace --all-targets -- -D warnings
fi
[ -n "${KILN_KUBE_BIN:-}" ] || "$KILN_ROOT/scripts/kube/build.sh" >/dev/null  # the tests' Kubernetes control plane, built once per machine (testkit/kube/README.md)
# One build for everything: with the test targets in the same invocation, dependencies get
# the test features once (a plain `--bins` build first would compile many of them twice).
# No incremental cache: a from-scratch build does not use it, and it doubles the disk used.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo build --workspace --bins --tests --examples
"$KILN_ROOT/scripts/make_fixtures.sh"
cargo test --workspace --no-fail-fast
