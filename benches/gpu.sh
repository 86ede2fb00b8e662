#!/usr/bin/env bash
# GPU check of `kiln predictor --device cuda` on a CUDA machine whose Python has PyTorch 2.11
# (CUDA 13) and the CPU build of ONNX Runtime. Builds nothing: it runs binaries built here
# by `benches/gpu-prepare.sh` (kiln, kiln-predictor-torch-cuda) and the fixtures, carried in
# target/gpu-carry/.
#
#   benches/gpu.sh [CARRY_DIR]       prints a report; also writes it to $OUT/gpu-report.md
#
# Checks: the TorchScript MLP served on cuda:0 gives the same outputs as on the CPU;
# throughput of batch-32 requests on GPU and CPU; the ONNX CUDA path fails clearly with a
# CPU-only ONNX Runtime (the only ONNX Runtime there).
set -uo pipefail
CARRY="${1:-target/gpu-carry}"
OUT="${OUT:-/tmp}"
REPORT="$OUT/gpu-report.md"
: > "$REPORT"
say() { echo "$*" | tee -a "$REPORT"; }

TORCH_DIR="$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')"
export LD_LIBRARY_PATH="$TORCH_DIR/lib:${LD_LIBRARY_PATH:-}"
# ONNX Runtime: the CPU build of the same version Kiln is built for (ort needs >= 1.31),
# carried compressed; the machine's own Python build is older.
gunzip -c "$CARRY/libonnxruntime.so.1.32.0.gz" > "$OUT/libonnxruntime.so.1.32.0"
export ORT_DYLIB_PATH="$OUT/libonnxruntime.so.1.32.0"
say "## GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
say '```'
say "$(nvidia-smi -L 2>&1 | head -4)"
say "$(python3 -c 'import torch; print("torch", torch.__version__, "cuda available:", torch.cuda.is_available())')"
say '```'

start() { # start DEVICE PORT -> pid in $PID; waits for the ready line
  local log="$OUT/predictor-${1%%:*}-$2.log"
  # cuda goes through `kiln predictor` (which hands off to kiln-predictor-torch-cuda); the CPU
  # reference runs the same torch binary directly with --device cpu.
  local cmd=("$CARRY/kiln" predictor)
  [ "$1" = cpu ] && cmd=("$CARRY/kiln-predictor-torch-cuda")
  "${cmd[@]}" --model-name mlp-torch --storage-uri "$CARRY/fixtures/mlp-torch" \
    --device "$1" --bind 127.0.0.1 --http-port "$2" --grpc-port 0 --model-cache-dir "$OUT/cache" \
    --max-batch-size 64 --max-batch-delay-ms 1 > "$log.out" 2> "$log" &
  PID=$!
  for _ in $(seq 1 600); do
    grep -q '"event":"ready"' "$log.out" 2>/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || { say "predictor on $1 exited:"; say "$(tail -5 "$log")"; return 1; }
    sleep 0.1
  done
  say "predictor on $1 not ready in 60 s"; return 1
}

start cuda:0 18080 && GPU_PID=$PID || GPU_PID=
start cpu 18090 && CPU_PID=$PID || CPU_PID=
say "ready lines: gpu $(cat "$OUT"/predictor-cuda-18080.log.out 2>/dev/null | tail -1)"
say "             cpu $(cat "$OUT"/predictor-cpu-18090.log.out 2>/dev/null | tail -1)"
say "gpu replica's libraries: $(grep -o 'libtorch_cuda[^ ]*' /proc/$GPU_PID/maps 2>/dev/null | sort -u | head -1)"

python3 - <<'PY' 2>&1 | tee -a "$REPORT"
import json, time, threading, urllib.request
def infer(port, rows, seed=0):
    data = [[((i * 7 + (r + seed) * 13) % 23 - 11) / 23 for i in range(784)] for r in range(rows)]
    body = json.dumps({"inputs": [{"name": "INPUT__0", "shape": [rows, 784], "datatype": "FP32", "data": data}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/mlp-torch/infer", body, {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["outputs"][0]["data"]
try:
    g, c = infer(18080, 4), infer(18090, 4)
    diff = max(abs(a - b) for a, b in zip(g, c))
    print(f"outputs cuda:0 vs cpu, 4 rows: max abs difference {diff:.2e} ({'same' if diff < 1e-3 else 'DIFFERENT'})")
except Exception as e:
    print("inference failed:", e)
def rate(port, seconds=5.0, threads=8, rows=32):
    done = [0]; stop = time.time() + seconds
    def worker(k):
        while time.time() < stop:
            try:
                infer(port, rows, k); done[0] += 1
            except Exception:
                return
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    [t.start() for t in ts]; [t.join() for t in ts]
    return done[0] * rows / seconds
for name, port in (("cuda:0", 18080), ("cpu", 18090)):
    try:
        print(f"{name}: {rate(port):.0f} rows/s (8 Python threads, JSON requests of 32 rows, batching up to 64; client-bound)")
    except Exception as e:
        print(name, "rate failed:", e)
PY
[ -n "$GPU_PID" ] && kill "$GPU_PID"; [ -n "$CPU_PID" ] && kill "$CPU_PID"

say "ONNX on cuda with a CPU-only ONNX Runtime (expected: a clear error, non-zero exit):"
"$CARRY/kiln" predictor --model-name mlp --storage-uri "$CARRY/fixtures/mlp" --device cuda \
  --bind 127.0.0.1 --http-port 0 --grpc-port 0 --model-cache-dir "$OUT/cache" > /dev/null 2> "$OUT/onnx-cuda.log"
say "exit $?: $(tail -1 "$OUT/onnx-cuda.log")"
wait 2>/dev/null
