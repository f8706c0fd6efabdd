#!/usr/bin/env python3
"""Generates tiny.onnx, the small model the fast tests run, and reference.json,
its expected outputs computed independently here with numpy.

The model: probs = softmax(relu(x @ W1 + b1) @ W2 + b2), label = argmax(probs)
x: f32 [batch, 4] (batch dynamic); probs: f32 [batch, 3]; label: i64 [batch].
Weights come from a seeded generator, so running this again gives the same files.

Needs `onnx` and `numpy` (pip install onnx==1.17.0 numpy); the tests need
neither, since both outputs are committed.
"""
import json
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

here = pathlib.Path(__file__).resolve().parent
rng = np.random.default_rng(20261123)
w1 = rng.normal(0, 0.8, (4, 8)).astype(np.float32)
b1 = rng.normal(0, 0.1, (8,)).astype(np.float32)
w2 = rng.normal(0, 0.8, (8, 3)).astype(np.float32)
b2 = rng.normal(0, 0.1, (3,)).astype(np.float32)

nodes = [
    helper.make_node("MatMul", ["x", "w1"], ["h0"]),
    helper.make_node("Add", ["h0", "b1"], ["h1"]),
    helper.make_node("Relu", ["h1"], ["h2"]),
    helper.make_node("MatMul", ["h2", "w2"], ["z0"]),
    helper.make_node("Add", ["z0", "b2"], ["z1"]),
    helper.make_node("Softmax", ["z1"], ["probs"], axis=1),
    helper.make_node("ArgMax", ["probs"], ["label"], axis=1, keepdims=0),
]
graph = helper.make_graph(
    nodes,
    "accelpool_tiny",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
    [
        helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3]),
        helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
    ],
    initializer=[
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(b2, "b2"),
    ],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="accelpool")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, here / "tiny.onnx")


def reference(x):
    h = np.maximum(x @ w1 + b1, 0.0)
    z = h @ w2 + b2
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    return p, p.argmax(axis=1)


cases = []
for batch in (1, 3, 5):
    x = rng.normal(0, 1.5, (batch, 4)).astype(np.float32)
    p, label = reference(x.astype(np.float64))
    cases.append({
        "x": x.flatten().tolist(),
        "batch": batch,
        "probs": p.flatten().tolist(),
        "label": label.tolist(),
    })
(here / "reference.json").write_text(json.dumps({"cases": cases}, indent=1) + "\n")
print("wrote", here / "tiny.onnx", "and", here / "reference.json")
