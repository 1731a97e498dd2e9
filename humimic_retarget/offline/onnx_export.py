"""A fitted Network as an ONNX model that learned_mapping.LearnedMapping loads.

Graph: input ``channels`` float32 [N, C] -> (MatMul, Add, Relu)* -> MatMul, Add (+ MatMul of the
input with the skip weights, Add) -> output ``joints`` float32 [N, J]. metadata_props carry the channel and joint order (JSON lists) and any extra
text given (fit kind, held-out errors, robot name).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from humimic_retarget.offline.fitting import Network
from humimic_retarget.learned_mapping import CHANNELS_KEY, JOINTS_KEY

INPUT_NAME = "channels"
OUTPUT_NAME = "joints"
OPSET = 13
#: IR version 8 loads in every ONNX Runtime since 1.10.
IR_VERSION = 8


def network_to_onnx(network: Network, channels: Sequence[str], joints: Sequence[str],
                    metadata: Mapping[str, str] = {}) -> onnx.ModelProto:
    if network.layers[0][0].shape[0] != len(channels) or network.layers[-1][0].shape[1] != len(joints):
        raise ValueError(f"network maps {network.layers[0][0].shape[0]} -> {network.layers[-1][0].shape[1]}, "
                         f"not {len(channels)} channels -> {len(joints)} joints")
    nodes, inits = [], []
    current = INPUT_NAME
    for i, (w, b) in enumerate(network.layers):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"W{i}"),
                  numpy_helper.from_array(b.astype(np.float32), f"B{i}")]
        nodes.append(helper.make_node("MatMul", [current, f"W{i}"], [f"matmul{i}"]))
        nodes.append(helper.make_node("Add", [f"matmul{i}", f"B{i}"], [f"add{i}"]))
        current = f"add{i}"
        if i < len(network.layers) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"relu{i}"]))
            current = f"relu{i}"
    if network.skip is not None:
        inits.append(numpy_helper.from_array(network.skip.astype(np.float32), "W_skip"))
        nodes.append(helper.make_node("MatMul", [INPUT_NAME, "W_skip"], ["skip"]))
        nodes.append(helper.make_node("Add", [current, "skip"], ["with_skip"]))
    nodes[-1].output[0] = OUTPUT_NAME
    graph = helper.make_graph(
        nodes, f"humimic_{network.kind}_mapping",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", len(channels)])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", len(joints)])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="humimic-fit", ir_version=IR_VERSION)
    props = {CHANNELS_KEY: json.dumps(list(channels)), JOINTS_KEY: json.dumps(list(joints)),
             "humimic.kind": network.kind, **metadata}
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model


def export_onnx(network: Network, channels: Sequence[str], joints: Sequence[str], path: str | Path,
                metadata: Mapping[str, str] = {}) -> Path:
    """Write the model file; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(network_to_onnx(network, channels, joints, metadata), str(path))
    return path
