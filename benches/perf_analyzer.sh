#!/usr/bin/env bash
# Triton's perf_analyzer (PyPI `perf-analyzer`, built for glibc 2.38+: Debian 12 here is too
# old to run it, so this runs where glibc is newer, e.g. the lent GPU machine) against
# `kiln predictor` serving the fixture MLP, over gRPC and HTTP: it must work unchanged
# (it asks for the model's metadata and Triton configuration first).
#
#   benches/perf_analyzer.sh [CARRY_DIR]   CARRY_DIR holds kiln, perf_analyzer.gz,
#                                          libonnxruntime.so.1.32.0.gz and fixtures/mlp
set -uo pipefail
CARRY="${1:-target/pa-carry}"
OUT="${OUT:-/tmp}"
gunzip -c "$CARRY/perf_analyzer.gz" > "$OUT/perf_analyzer" && chmod +x "$OUT/perf_analyzer"
gunzip -c "$CARRY/libonnxruntime.so.1.32.0.gz" > "$OUT/libonnxruntime.so.1.32.0"
export ORT_DYLIB_PATH="$OUT/libonnxruntime.so.1.32.0"
"$CARRY/kiln" predictor --model-name mlp --storage-uri "$CARRY/fixtures/mlp" --bind 127.0.0.1 \
  --http-port 18000 --grpc-port 18001 --model-cache-dir "$OUT/cache" --max-batch-size 32 \
  --max-batch-delay-ms 1 > "$OUT/predictor.out" 2> "$OUT/predictor.log" &
PID=$!
for _ in $(seq 1 100); do grep -q ready "$OUT/predictor.out" && break; sleep 0.1; done
for protocol in grpc http; do
  port=18001; [ "$protocol" = http ] && port=18000
  echo "### perf_analyzer -i $protocol"
  "$OUT/perf_analyzer" -m mlp -u "127.0.0.1:$port" -i "$protocol" -b 1 \
    --concurrency-range 1:8:7 --measurement-interval 2000 2>&1 | tail -8
done
kill "$PID"
