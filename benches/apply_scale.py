#!/usr/bin/env python3
"""Apply, restart and read at scale: `kiln up` with N InferenceServices at zero replicas.

For each N: start `kiln up` on a fresh state dir, apply N services in one manifest through the
admin API while a reader polls `GET` of one service every 10 ms (its slowest answer is what a
user sees while an apply runs), then SIGTERM it and start it again on the same state dir and
time until the admin API lists all N. Services are at zero (`minReplicas: 0`,
`autoscaling.knative.dev/initial-scale: "0"`, `allow-zero-initial-scale: true`), so no replica
process starts: what is measured is the controller, the router's table and the store.

    benches/apply_scale.py [--kiln target/release/kiln] [--counts 1000,10000] [--json]

Prints one markdown row per N (apply s, per service us, slowest get ms, restart s).
"""

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

CONFIG = 'domain: example.com\nautoscaler:\n  allow-zero-initial-scale: "true"\n'


def manifest(count):
    docs = []
    for i in range(count):
        docs.append(
            "apiVersion: serving.kserve.io/v1beta1\n"
            "kind: InferenceService\n"
            "metadata:\n"
            f"  name: svc-{i}\n"
            "  annotations:\n"
            '    autoscaling.knative.dev/initial-scale: "0"\n'
            "spec:\n"
            "  predictor:\n"
            "    minReplicas: 0\n"
            "    model:\n"
            "      modelFormat: {name: onnx}\n"
            f"      storageUri: file:///models/m{i}\n"
        )
    return "---\n".join(docs)


class Up:
    """One `kiln up` process on free ports."""

    def __init__(self, kiln, state_dir, config):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [kiln, "up", "--state-dir", state_dir, "--config", config,
             "--http-port", "0", "--admin-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:
            event = json.loads(line)
            if event.get("event") == "up":
                self.admin_port = event["admin_port"]
                break
        else:
            raise SystemExit("kiln up exited before it was up")
        self.up_after = time.monotonic() - self.started

    def request(self, method, path, body=None, timeout=600):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        conn.request(method, path, body=body)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)


def slowest_get_during(up, work):
    """Runs `work()` while polling GET every 10 ms; returns (work's result, slowest get s)."""
    done = threading.Event()
    slowest = [0.0]

    def poll():
        conn = http.client.HTTPConnection("127.0.0.1", up.admin_port, timeout=600)
        while not done.is_set():
            started = time.monotonic()
            conn.request("GET", "/v1/namespaces/default/inferenceservices/svc-0")
            conn.getresponse().read()
            slowest[0] = max(slowest[0], time.monotonic() - started)
            time.sleep(0.01)
        conn.close()

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        result = work()
    finally:
        done.set()
        reader.join()
    return result, slowest[0]


def run(kiln, count):
    with tempfile.TemporaryDirectory() as state:
        config = os.path.join(state, "kiln.yaml")
        with open(config, "w") as f:
            f.write(CONFIG)
        text = manifest(count).encode()
        state_dir = os.path.join(state, "state")
        up = Up(kiln, state_dir, config)
        try:
            time.sleep(0.2)

            def apply():
                started = time.monotonic()
                status, body = up.request("POST", "/v1/apply", text)
                if status != 200:
                    raise SystemExit(f"apply answered {status}: {body[:300]!r}")
                return time.monotonic() - started

            apply_s, slowest_get_s = slowest_get_during(up, apply)
            status, body = up.request("GET", "/v1/inferenceservices?namespace=default")
            listed = len(json.loads(body)["items"])
            if listed != count:
                raise SystemExit(f"listed {listed} services, applied {count}")
        finally:
            up.stop()  # also when a step failed: no kiln up is left behind

        started = time.monotonic()
        up = Up(kiln, state_dir, config)
        try:
            while True:
                status, body = up.request("GET", "/v1/inferenceservices?namespace=default")
                if status == 200 and len(json.loads(body)["items"]) == count:
                    break
                time.sleep(0.01)
            restart_s = time.monotonic() - started
        finally:
            up.stop()
        return {
            "services": count,
            "apply_s": apply_s,
            "apply_us_per_service": apply_s / count * 1e6,
            "slowest_get_during_apply_ms": slowest_get_s * 1e3,
            "restart_s": restart_s,
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiln", default="target/release/kiln")
    parser.add_argument("--counts", default="1000,10000")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [run(args.kiln, int(n)) for n in args.counts.split(",")]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| services | apply s | per service us | slowest get during apply ms | restart s |")
    print("|--:|--:|--:|--:|--:|")
    for r in rows:
        print(f"| {r['services']:,} | {r['apply_s']:.2f} | {r['apply_us_per_service']:.0f} | "
              f"{r['slowest_get_during_apply_ms']:.1f} | {r['restart_s']:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
