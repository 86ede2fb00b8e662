#!/usr/bin/env bash
# Router overhead benchmark (issue 3): direct vs through kiln-router vs through nginx, with a
# trivial upstream, HTTP/1.1 keep-alive and gRPC (nginx: proxy_pass and grpc_pass),
# concurrency 1, 8 and 64, plus concurrency 1 with everything on one CPU; router CPU time per
# request; peak RSS with 10,000 requests held in the activator queue.
#
# Usage: benches/router/run.sh [measured-seconds-per-run]      (from anywhere)
#        REPEAT=5 benches/router/run.sh 3    (five rounds of the HTTP/1.1 rows, then medians)
# Pinning: router / nginx alone on CPU $ROUTER_CPU (default 0); load generator and upstream on
# CPU $LOAD_CPU (default 1).
# Overrides: BIN=path/to/overhead (skips the build), NGINX_BIN=path/to/nginx.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SECS=${1:-5}
REPEAT=${REPEAT:-1}   # rounds of the HTTP/1.1 rows, alternating router and nginx (medians printed)
ROUTER_CPU=${ROUTER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
source "$ROOT/benches/router/lib.sh"
overhead_bin
nginx_bin

UP_HTTP=21101 UP_GRPC=21102 R_HTTP=21110 R_GRPC=21111 NG_PORT=21120 NG_GRPC=21121 HOLD_HTTP=21130
WORK=$(mktemp -d)

cat > "$WORK/routes.yaml" <<YAML
services:
  - name: echo
    revisions:
      - name: echo-00001
        percent: 100
        endpoints: ["127.0.0.1:$UP_HTTP"]
  - name: echo-grpc
    revisions:
      - name: echo-grpc-00001
        percent: 100
        endpoints: ["127.0.0.1:$UP_GRPC"]
YAML
cat > "$WORK/cold.yaml" <<YAML
services:
  - name: cold
    revisions:
      - name: cold-00001
        percent: 100
        endpoints: []
YAML
taskset -c $LOAD_CPU "$BIN" upstream --http-port $UP_HTTP --grpc-port $UP_GRPC & UP_PID=$!; PIDS+=($UP_PID)
taskset -c $ROUTER_CPU "$BIN" router --routes "$WORK/routes.yaml" --address 127.0.0.1 \
  --http-port $R_HTTP --grpc-port $R_GRPC & R_PID=$!; PIDS+=($R_PID)
nginx_start $ROUTER_CPU "$(nginx_proxy $NG_PORT $UP_HTTP; nginx_grpc $NG_GRPC $UP_GRPC)"
wait_port $UP_HTTP; wait_port $UP_GRPC; wait_port $R_HTTP; wait_port $R_GRPC; wait_port $NG_PORT; wait_port $NG_GRPC

RESULTS="$WORK/results.jsonl"
load() { taskset -c $LOAD_CPU "$BIN" "$@" --seconds "$SECS" | tee -a "$RESULTS"; }
for _ in $(seq "$REPEAT"); do for c in 1 8 64; do
  load load --label "http direct" --url http://127.0.0.1:$UP_HTTP/v2/models/echo/infer --concurrency $c --pids $UP_PID
  load load --label "http router" --url http://127.0.0.1:$R_HTTP/v2/models/echo/infer --concurrency $c --pids $R_PID
  load load --label "http nginx" --url http://127.0.0.1:$NG_PORT/v2/models/echo/infer --concurrency $c --pids $NG_PID,$NG_WORKERS
done; done
# Concurrency 1 again with the router and nginx moved onto the load generator's CPU: without
# the two cross-CPU wake-ups of the pinned layout (which dominate c=1 on these VMs), the
# difference to direct is the hop's own latency.
move_proxies() { for p in $R_PID $NG_PID ${NG_WORKERS//,/ }; do taskset -apc "$1" "$p" >/dev/null; done; }
move_proxies $LOAD_CPU
load load --label "http direct, one CPU" --url http://127.0.0.1:$UP_HTTP/v2/models/echo/infer --concurrency 1 --pids $UP_PID
load load --label "http router, one CPU" --url http://127.0.0.1:$R_HTTP/v2/models/echo/infer --concurrency 1 --pids $R_PID
load load --label "http nginx, one CPU" --url http://127.0.0.1:$NG_PORT/v2/models/echo/infer --concurrency 1 --pids $NG_PID,$NG_WORKERS
move_proxies $ROUTER_CPU
for c in 1 8 64; do
  load load-grpc --label "grpc direct" --url 127.0.0.1:$UP_GRPC --model echo-grpc --concurrency $c --pids $UP_PID
  load load-grpc --label "grpc router" --url 127.0.0.1:$R_GRPC --model echo-grpc --concurrency $c --pids $R_PID
  load load-grpc --label "grpc nginx" --url 127.0.0.1:$NG_GRPC --model echo-grpc --concurrency $c --pids $NG_PID,$NG_WORKERS
done

# Peak RSS with 10,000 requests held in the activator queue (a fresh router per client kind,
# cold revision): 10,000 HTTP/1.1 connections, then 10,000 HTTP/2 streams over 10 connections.
hold() {  # hold LABEL PORT [extra hold flags]
  local label=$1 port=$2; shift 2
  taskset -c $ROUTER_CPU "$BIN" router --routes "$WORK/cold.yaml" --address 127.0.0.1 \
    --http-port $port --grpc-port $((port + 1)) & local rpid=$!; PIDS+=($rpid)
  wait_port $port
  local idle=$(awk '/VmRSS/ {print $2}' /proc/$rpid/status)
  taskset -c $LOAD_CPU "$BIN" hold --url http://127.0.0.1:$port/v2/models/cold/infer --count 10000 \
    --metrics http://127.0.0.1:$port/metrics "$@" > "$WORK/$label.out" & local hpid=$!; PIDS+=($hpid)
  for _ in $(seq 1200); do grep -q held "$WORK/$label.out" 2>/dev/null && break; sleep 0.1; done
  local held=$(grep -o '"held": [0-9.]*' "$WORK/$label.out" | awk '{print $2}')
  local hwm=$(awk '/VmHWM/ {print $2}' /proc/$rpid/status)
  echo "{\"label\": \"hold\", \"clients\": \"$label\", \"held\": ${held:-0}, \"idle_rss_kib\": $idle, \"held_peak_rss_kib\": $hwm}" | tee -a "$RESULTS"
  kill $hpid $rpid 2>/dev/null || true
}
hold http1 $HOLD_HTTP
hold http2 $((HOLD_HTTP + 2)) --http2-connections 10

python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("\n| run | concurrency | p50 (us) | p99 (us) | throughput (req/s) | CPU per request (us) | failed |")
print("|---|---:|---:|---:|---:|---:|---|")
for r in rows:
    if r["label"] == "hold":
        continue
    print(f'| {r["label"]} | {r["concurrency"]} | {r["p50_us"]} | {r["p99_us"]} | {r["rps"]:.0f} | {r["cpu_us_per_request"]} | {r["failed"]} |')
import statistics
runs = {}
for r in rows:
    if r["label"] != "hold":
        runs.setdefault((r["label"], r["concurrency"]), []).append(r)
if any(len(v) > 1 for v in runs.values()):
    print("\nMedians over rounds (CPU per request, us), router / nginx:")
    for c in (1, 8, 64):
        router = runs.get(("http router", c), [])
        nginx = runs.get(("http nginx", c), [])
        if router and nginx:
            ratios = [a["cpu_us_per_request"] / b["cpu_us_per_request"] for a, b in zip(router, nginx)]
            med = lambda rs: statistics.median(x["cpu_us_per_request"] for x in rs)
            print(f"  c={c}: {med(router):.2f} / {med(nginx):.2f}, ratio median {statistics.median(ratios):.3f}"
                  f" (min {min(ratios):.3f}, max {max(ratios):.3f}, {len(ratios)} rounds)")
for h in [r for r in rows if r["label"] == "hold"]:
    print(f'\nRSS ({h["clients"]} clients): idle {h["idle_rss_kib"]/1024:.1f} MiB; peak with {h["held"]:.0f} held requests {h["held_peak_rss_kib"]/1024:.1f} MiB')
PY
