#!/usr/bin/env python3
"""KServe's own Python clients (InferenceRESTClient with v2, InferenceGRPCClient) against a
predictor or the router.

    kserve_clients.py HTTP_PORT GRPC_PORT MODEL
"""
import asyncio
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig


async def main():
    http_port, grpc_port, model = sys.argv[1], sys.argv[2], sys.argv[3]
    x = (np.arange(784, dtype=np.float32).reshape(1, 784) % 23 - 11) / 23

    def request():
        inp = InferInput(name="input", shape=[1, 784], datatype="FP32")
        inp.set_data_from_numpy(x, binary_data=False)
        return InferRequest(model_name=model, infer_inputs=[inp], request_id="k1")

    rest = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    base = f"http://127.0.0.1:{http_port}"
    assert await rest.is_server_ready(base)
    assert await rest.is_model_ready(base, model)
    res = await rest.infer(base, request(), model_name=model)
    rest_out = res.outputs[0].as_numpy()
    assert rest_out.shape == (1, 10), rest_out.shape
    await rest.close()

    grpc = InferenceGRPCClient(f"127.0.0.1:{grpc_port}")
    assert await grpc.is_server_ready()
    res = await grpc.infer(request())
    grpc_out = res.outputs[0].as_numpy()
    np.testing.assert_allclose(grpc_out, rest_out, rtol=1e-5)
    await grpc.close()
    print("kserve clients: ok")


if __name__ == "__main__":
    asyncio.run(main())
