#!/usr/bin/env bash
# The predictor benchmark of issue 2: the fixture MLP served by `kiln predictor` pinned to one
# CPU, driven by `kiln-bench` pinned to the other, over gRPC raw, REST JSON and REST binary at
# concurrency 1, 8 and 64, without and with batching, beside a bare in-process ONNX Runtime
# caller; rates, latencies, RSS above a bare ONNX Runtime process, and the goal checks.
#
#   benches/predictor.sh [kiln-bench predictor flags, e.g. --seconds 2 --batch-delay-ms 0.5]
#
# Prints the table and rewrites the measured part of benches/RESULTS-predictor.md (date,
# machine, load, exact command, table); what follows the "notes" marker there is kept.
# SERVER_CPU / CLIENT_CPU pick the two CPUs (default 0 and 1); RESULTS=- writes no file.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$KILN_ROOT"

[ -f "$KILN_CACHE/native/onnxruntime/.done" ] || scripts/setup.sh
# The MLP alone comes from the Python part of scripts/make_fixtures.sh (no libtorch build).
[ -f "$KILN_CACHE/fixtures/mlp/model.onnx" ] ||
  "$KILN_CACHE/venv/bin/python" scripts/make_fixtures.py "$KILN_CACHE/fixtures"

cargo build --release -p kiln -p kiln-benches

SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
RESULTS="${RESULTS:-benches/RESULTS-predictor.md}"
cmd=(taskset -c "$CLIENT_CPU" target/release/kiln-bench predictor --server-cpu "$SERVER_CPU" "$@")

# Measured tree: HEAD, plus whether the crates it builds have uncommitted changes.
tree="$(git rev-parse --short HEAD)"
git diff --quiet HEAD -- api storage predictor kiln benches/src benches/Cargo.toml 2>/dev/null ||
  tree="$tree (with uncommitted changes in the built crates)"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "+ ${cmd[*]}" >&2
table="$("${cmd[@]}")"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "$table"
[ "$RESULTS" = - ] && exit 0

marker='<!-- notes: everything below is kept by benches/predictor.sh -->'
notes=""
[ -f "$RESULTS" ] && notes="$(sed -n "/^${marker//\//\\/}\$/,\$p" "$RESULTS" | tail -n +2)"
{
  echo "# Predictor benchmark (issue 2)"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $tree"
  echo "- Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
  echo "- Load average (1, 5, 15 min) before: $load_before; after: $load_after"
  echo "- Command: \`benches/predictor.sh${*:+ $*}\`, which runs \`${cmd[*]}\`"
  echo
  echo "$table"
  echo
  echo "$marker"
  [ -n "$notes" ] && echo "$notes"
} > "$RESULTS"
echo "wrote $RESULTS" >&2
