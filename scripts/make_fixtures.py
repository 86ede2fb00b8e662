#!/usr/bin/env python3
"""Writes the ONNX test and example models, with known weights, into a folder.

    mlp/model.onnx      784 -> 512 -> 512 -> 10 MLP (ReLU), FP32, dynamic batch dimension
    types/model.onnx    one input per datatype; outputs echo them (Add for FP64/INT64/INT32)

The weights follow a formula that the Rust tests recompute in f32, so outputs are checked
numerically:  w_l[i, j] = ((i*31 + j*17 + l*7) % 97 - 48) / 970,
              b_l[j]    = ((j*13 + l) % 11 - 5) / 100,   l = layer (1, 2, 3),
              y = W3^T relu(W2^T relu(W1^T x + b1) + b2) + b3  with W_l of shape [in, out].
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LAYERS = [(784, 512), (512, 512), (512, 10)]


def weight(layer, n_in, n_out):
    i = np.arange(n_in, dtype=np.int64)[:, None]
    j = np.arange(n_out, dtype=np.int64)[None, :]
    k = (i * 31 + j * 17 + layer * 7) % 97 - 48
    return k.astype(np.float32) / np.float32(970)


def bias(layer, n_out):
    j = np.arange(n_out, dtype=np.int64)
    k = (j * 13 + layer) % 11 - 5
    return k.astype(np.float32) / np.float32(100)


def mlp():
    nodes, inits = [], []
    prev = "input"
    for n, (n_in, n_out) in enumerate(LAYERS, start=1):
        inits.append(numpy_helper.from_array(weight(n, n_in, n_out), f"w{n}"))
        inits.append(numpy_helper.from_array(bias(n, n_out), f"b{n}"))
        out = "output" if n == len(LAYERS) else f"h{n}"
        mm = f"mm{n}"
        nodes.append(helper.make_node("MatMul", [prev, f"w{n}"], [mm]))
        if n == len(LAYERS):
            nodes.append(helper.make_node("Add", [mm, f"b{n}"], [out]))
        else:
            nodes.append(helper.make_node("Add", [mm, f"b{n}"], [f"a{n}"]))
            nodes.append(helper.make_node("Relu", [f"a{n}"], [out]))
        prev = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


TYPES = [
    ("fp64", TensorProto.DOUBLE, "Add"),
    ("int64", TensorProto.INT64, "Add"),
    ("int32", TensorProto.INT32, "Add"),
    ("fp32", TensorProto.FLOAT, "Identity"),
    ("fp16", TensorProto.FLOAT16, "Identity"),
    ("int8", TensorProto.INT8, "Identity"),
    ("int16", TensorProto.INT16, "Identity"),
    ("uint8", TensorProto.UINT8, "Identity"),
    ("bool", TensorProto.BOOL, "Identity"),
]


def types():
    nodes, inputs, outputs = [], [], []
    for name, elem, op in TYPES:
        inputs.append(helper.make_tensor_value_info(f"in_{name}", elem, ["batch", 3]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", elem, ["batch", 3]))
        args = [f"in_{name}", f"in_{name}"] if op == "Add" else [f"in_{name}"]
        nodes.append(helper.make_node(op, args, [f"out_{name}"]))
    graph = helper.make_graph(nodes, "types", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "fixtures"
    for name, model in [("mlp", mlp()), ("types", types())]:
        onnx.checker.check_model(model)
        os.makedirs(os.path.join(out, name), exist_ok=True)
        onnx.save(model, os.path.join(out, name, "model.onnx"))
    print(f"wrote ONNX fixtures to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
