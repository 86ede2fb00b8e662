#!/usr/bin/env bash
# Router overhead with the MLP predictor as upstream (issue 3): `kiln predictor` serving the
# fixture MLP (ONNX, one inference thread, no batching) alone on $MODEL_CPU (default 1); the
# load generator on $CLIENT_CPU (default 0) and the router on $ROUTER_CPU (default: 2 on a
# machine with three CPUs or more, else the client's, so on two CPUs the router's CPU is
# taken from the client's core). REST JSON, one row of 784 floats, concurrency 1, 8 and 64:
# direct, through the router, and through nginx (Debian package, keep-alive proxy, pinned
# like the router) as the reference for what any proxy hop costs in the same layout.
#
# Usage: benches/router/mlp.sh [measured-seconds-per-run]
# Needs a built `kiln` (KILN_BIN, default target/release/kiln) and the fixture
# (MLP_DIR, default .kiln-cache/fixtures/mlp; see benches/predictor.sh for how it is made).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SECS=${1:-5}
MODEL_CPU=${MODEL_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
# A CPU of the router's own where there is one to spare; on two CPUs, the client's.
if [ "$(nproc)" -ge 3 ]; then ROUTER_CPU=${ROUTER_CPU:-2}; else ROUTER_CPU=${ROUTER_CPU:-$CLIENT_CPU}; fi
KILN_BIN=${KILN_BIN:-target/release/kiln}
MLP_DIR=${MLP_DIR:-.kiln-cache/fixtures/mlp}
source "$ROOT/benches/router/lib.sh"
overhead_bin
nginx_bin
[ -x "$KILN_BIN" ] || { echo "no kiln binary at $KILN_BIN (cargo build --release -p kiln)" >&2; exit 1; }
[ -f "$MLP_DIR/model.onnx" ] || { echo "no MLP fixture in $MLP_DIR" >&2; exit 1; }

P_HTTP=21401 P_GRPC=21402 R_HTTP=21410 R_GRPC=21411 NG_PORT=21420
WORK=$(mktemp -d)

python3 -c '
import json
data = [((i * 7 + 13) % 23 - 11) / 23 for i in range(784)]
print(json.dumps({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": data}]}))
' > "$WORK/body.json"
cat > "$WORK/routes.yaml" <<YAML
services:
  - name: mlp
    revisions:
      - name: mlp-00001
        percent: 100
        endpoints: ["127.0.0.1:$P_HTTP"]
YAML

taskset -c $MODEL_CPU "$KILN_BIN" predictor --model-name mlp --storage-uri "$MLP_DIR" --bind 127.0.0.1 \
  --http-port $P_HTTP --grpc-port $P_GRPC --threads 1 --model-cache-dir "$WORK/cache" \
  > "$WORK/predictor.log" 2>&1 & P_PID=$!; PIDS+=($P_PID)
taskset -c $ROUTER_CPU "$BIN" router --routes "$WORK/routes.yaml" --address 127.0.0.1 \
  --http-port $R_HTTP --grpc-port $R_GRPC & R_PID=$!; PIDS+=($R_PID)
nginx_start $ROUTER_CPU "$(nginx_proxy $NG_PORT $P_HTTP)"
wait_port $P_HTTP; wait_port $R_HTTP; wait_port $NG_PORT
for _ in $(seq 100); do grep -q '"event":"ready"' "$WORK/predictor.log" && break; sleep 0.1; done

RESULTS="$WORK/results.jsonl"
load() { taskset -c $CLIENT_CPU "$BIN" load --body-file "$WORK/body.json" --seconds "$SECS" "$@" | tee -a "$RESULTS"; }
for c in 1 8 64; do
  load --label "mlp direct" --url http://127.0.0.1:$P_HTTP/v2/models/mlp/infer --concurrency $c --pids $P_PID
  load --label "mlp router" --url http://127.0.0.1:$R_HTTP/v2/models/mlp/infer --concurrency $c --pids $R_PID
  load --label "mlp nginx" --url http://127.0.0.1:$NG_PORT/v2/models/mlp/infer --concurrency $c --pids $NG_PID,$NG_WORKERS
done

python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("\n| run | concurrency | p50 (us) | p99 (us) | throughput (req/s) | CPU per request (us) | failed |")
print("|---|---:|---:|---:|---:|---:|---|")
for r in rows:
    print(f'| {r["label"]} | {r["concurrency"]} | {r["p50_us"]} | {r["p99_us"]} | {r["rps"]:.0f} | {r["cpu_us_per_request"]} | {r["failed"]} |')
by = {(r["label"], r["concurrency"]): r["rps"] for r in rows}
for c in (1, 8, 64):
    d, t, n = by.get(("mlp direct", c)), by.get(("mlp router", c)), by.get(("mlp nginx", c))
    if d and t and n:
        print(f"\nc={c}: throughput / direct: router {t / d:.2f}, nginx {n / d:.2f}")
PY
