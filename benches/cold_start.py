#!/usr/bin/env python3
"""Cold start of `kiln up`: from the first request to a service at zero replicas to its
response, for the MLP stored in a local S3 server (moto), with a warm and a cold model cache,
split into process start, model download, model load and first inference; and a burst of 200
concurrent requests at zero replicas.

    benches/cold_start.sh            (builds, then runs this with the release binary)

Each run applies a new InferenceService (initial-scale 0, so it starts at zero replicas) and
times one request through the router. Warm runs share one storage URI (cached after the
first download); cold runs each use their own S3 key, so each downloads the model.
"""
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, ".kiln-cache")
KILN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/kiln")
RUNS = int(os.environ.get("RUNS", "10"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def body():
    row = [((i * 7 + 13) % 23 - 11) / 23 for i in range(784)]
    return json.dumps({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": row}]}).encode()


BODY = body()


def infer(port, name):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/{name}/infer", BODY, {"content-type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()
        assert r.status == 200
    return (time.perf_counter() - t0) * 1000


def apply(admin, name, uri):
    manifest = f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
  annotations:
    autoscaling.knative.dev/initial-scale: "0"
spec:
  predictor:
    minReplicas: 0
    model:
      modelFormat: {{name: onnx}}
      storageUri: {uri}
"""
    req = urllib.request.Request(f"http://127.0.0.1:{admin}/v1/apply", manifest.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


def main():
    moto_port = free_port()
    moto = subprocess.Popen([os.path.join(CACHE, "venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tempfile.mkdtemp(prefix="kiln-coldstart-")
    up = None
    try:
        wait_port(moto_port)
        import boto3
        endpoint = f"http://127.0.0.1:{moto_port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="models")
        model = os.path.join(CACHE, "fixtures/mlp/model.onnx")
        s3.upload_file(model, "models", "warm/model.onnx")
        for i in range(RUNS):
            s3.upload_file(model, "models", f"cold-{i}/model.onnx")
        config = os.path.join(state, "kiln.yaml")
        with open(config, "w") as f:
            f.write("autoscaler:\n  stable-window: 6s\n  scale-to-zero-grace-period: 6s\n"
                    "  allow-zero-initial-scale: \"true\"\n")
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true",
                   RUST_LOG="info,kiln_router=warn")
        log_path = os.path.join(state, "kiln-up.log")
        log = open(log_path, "w")
        up = subprocess.Popen([KILN, "up", "--http-port", "0", "--admin-port", "0", "--config", config,
                               "--state-dir", state], stdout=subprocess.PIPE, stderr=log, env=env, text=True)
        event = json.loads(up.stdout.readline())
        http, admin = event["http_port"], event["admin_port"]

        def starts():
            lines = [l for l in open(log_path) if "replica start pid=" in l]
            out = []
            for l in lines:
                spawn = float(re.search(r"spawn_to_ready_ms=([0-9.]+)", l).group(1))
                ready = json.loads(re.search(r"ready=(\{.*\})", l).group(1))
                out.append((spawn, ready))
            return out

        def run(name, uri):
            before = len(starts())
            apply(admin, name, uri)
            total = infer(http, name)
            deadline = time.time() + 5
            while len(starts()) == before and time.time() < deadline:
                time.sleep(0.01)
            spawn, ready = starts()[-1]
            dl, load = ready["download_ms"], ready["load_ms"]
            return {"total": total, "process": spawn - dl - load, "download": dl, "load": load,
                    "first_inference": total - spawn, "cache_hit": ready["cache_hit"]}

        run("prime", "s3://models/warm")  # first download of the warm URI
        warm = [run(f"warm-{i}", "s3://models/warm") for i in range(RUNS)]
        cold = [run(f"cold-{i}", f"s3://models/cold-{i}") for i in range(RUNS)]

        apply(admin, "burst", "s3://models/warm")
        burst_bin = os.path.join(os.path.dirname(KILN), "examples", "burst")
        out = subprocess.run([burst_bin, f"http://127.0.0.1:{http}/v2/models/burst/infer", "200"],
                             capture_output=True, text=True, check=True)
        burst = json.loads(out.stdout)

        def row(label, runs):
            med = lambda k: statistics.median(r[k] for r in runs)
            mx = max(r["total"] for r in runs)
            return (f"| {label} | {med('total'):.1f} | {mx:.1f} | {med('process'):.1f} | {med('download'):.1f} | "
                    f"{med('load'):.1f} | {med('first_inference'):.1f} | {sum(r['cache_hit'] for r in runs)}/{len(runs)} |")
        print(f"kiln: {KILN}; {RUNS} runs each; {os.cpu_count()} CPUs")
        print()
        print("| model cache | median ms | max ms | process start | download | load | first inference (+ activator, router) | cache hits |")
        print("|---|---|---|---|---|---|---|---|")
        print(row("warm", warm))
        print(row("cold (S3 download)", cold))
        warm_med = statistics.median(r["total"] for r in warm)
        print()
        print(f"Burst of 200 concurrent requests at zero replicas (Rust client, kiln/examples/burst.rs): "
              f"{burst['ok']}/200 answered 200 in {burst['wall_ms']:.0f} ms; p50 {burst['p50_ms']:.1f} ms, "
              f"p99 {burst['p99_ms']:.1f} ms, max {burst['max_ms']:.1f} ms "
              f"(goal: p99 <= warm cold start {warm_med:.1f} + 50 = {warm_med + 50:.1f} ms: "
              f"{'met' if burst['p99_ms'] <= warm_med + 50 else 'missed'})")
        cold_med = statistics.median(r["total"] for r in cold)
        print(f"Goals: warm median {warm_med:.1f} ms < 150 ms: {'met' if warm_med < 150 else 'missed'}; "
              f"cold median {cold_med:.1f} ms < 300 ms: {'met' if cold_med < 300 else 'missed'}")
    finally:
        if up:
            up.terminate()
            try:
                up.wait(20)
            except subprocess.TimeoutExpired:
                up.kill()
        moto.terminate()


if __name__ == "__main__":
    main()
