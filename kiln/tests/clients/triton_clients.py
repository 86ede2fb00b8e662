#!/usr/bin/env python3
"""Triton's own Python clients (HTTP with binary tensors, and gRPC) against a predictor.

    triton_clients.py HTTP_PORT GRPC_PORT MODEL

Exits non-zero with a message on any mismatch. The expected output is recomputed here
with numpy from the fixture formula (see scripts/make_fixtures.py).
"""
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

LAYERS = [(784, 512), (512, 512), (512, 10)]


def reference(x):
    h = x.astype(np.float64)
    for n, (n_in, n_out) in enumerate(LAYERS, start=1):
        i = np.arange(n_in)[:, None]
        j = np.arange(n_out)[None, :]
        w = (((i * 31 + j * 17 + n * 7) % 97 - 48).astype(np.float32) / np.float32(970)).astype(np.float64)
        b = (((np.arange(n_out) * 13 + n) % 11 - 5).astype(np.float32) / np.float32(100)).astype(np.float64)
        h = h @ w + b
        if n < len(LAYERS):
            h = np.maximum(h, 0)
    return h


def main():
    http_port, grpc_port, model = sys.argv[1], sys.argv[2], sys.argv[3]
    x = (np.arange(2 * 784, dtype=np.float32).reshape(2, 784) % 23 - 11) / 23
    want = reference(x)

    http = httpclient.InferenceServerClient(f"127.0.0.1:{http_port}")
    assert http.is_server_live() and http.is_server_ready() and http.is_model_ready(model)
    meta = http.get_model_metadata(model)
    config = http.get_model_config(model)
    assert config["max_batch_size"] > 0, config
    in_name, out_name = meta["inputs"][0]["name"], meta["outputs"][0]["name"]
    for binary in (True, False):
        inp = httpclient.InferInput(in_name, [2, 784], "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        out = httpclient.InferRequestedOutput(out_name, binary_data=binary)
        got = http.infer(model, [inp], outputs=[out], request_id="r1").as_numpy(out_name)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)

    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    assert grpc.is_server_live() and grpc.is_server_ready() and grpc.is_model_ready(model)
    gconfig = grpc.get_model_config(model).config
    assert gconfig.max_batch_size > 0 and list(gconfig.input[0].dims) == [784], gconfig
    inp = grpcclient.InferInput(in_name, [2, 784], "FP32")
    inp.set_data_from_numpy(x)
    got = grpc.infer(model, [inp], outputs=[grpcclient.InferRequestedOutput(out_name)]).as_numpy(out_name)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    print("triton clients: ok")


if __name__ == "__main__":
    main()
