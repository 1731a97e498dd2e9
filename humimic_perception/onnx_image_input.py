"""Image models that take the camera's uint8 BGR pixels: the input normalisation moved into the graph.

A model whose first input is an NHWC float32 RGB image with values in ``[low, high]`` (uint8 0..255
mapped linearly onto that range) becomes one whose first input is the uint8 BGR image itself, so the
caller feeds the crop as OpenCV makes it (no colour conversion, no float conversion in numpy).

Where the input feeds only ``Transpose`` (NHWC -> NCHW) -> ``Conv`` with constant weights, the scale
and the channel order go into the convolution weights: ``conv(x * s + low; w) = conv(x + low / s; w * s)``,
exact up to float rounding, also at the zero padding (zero is the same value on both sides); a range
that starts below 0 leaves one Add of ``low / s`` after the Cast. Otherwise Cast, Mul, Add and a
Gather reversing the channels do the conversion at the start of the graph. That Gather on the
last axis is slow in onnxruntime (0.17-0.3 ms of a 128x128 image on one thread, up to a sixth of
the face detector), so the folding matters for models whose range starts below 0 too.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

from humimic_perception.onnx_graph import attributes, consumers

NCHW_FROM_NHWC = [0, 3, 1, 2]


def _input_convs(graph: onnx.GraphProto, name: str) -> Optional[List[onnx.NodeProto]]:
    """The Convs that the input reaches through Transpose(NHWC -> NCHW) nodes, when that is all it
    feeds and every such Conv has constant, unshared weights; else None."""
    weights = {i.name for i in graph.initializer}
    uses = consumers(graph)
    convs = []
    for transpose in uses.get(name, []):
        if transpose.op_type != "Transpose" or attributes(transpose).get("perm") != NCHW_FROM_NHWC:
            return None
        for conv in uses.get(transpose.output[0], []):
            if (conv.op_type != "Conv" or conv.input[0] != transpose.output[0] or conv.input[1] not in weights
                    or len(uses[conv.input[1]]) != 1):
                return None
            convs.append(conv)
    return convs or None


def uint8_bgr_input(model: onnx.ModelProto, value_range: Tuple[float, float]) -> onnx.ModelProto:
    """A copy of ``model`` whose first input (NHWC float32 RGB in ``value_range``) takes uint8 BGR."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    image = graph.input[0]
    dims = image.type.tensor_type.shape.dim
    if image.type.tensor_type.elem_type != onnx.TensorProto.FLOAT or len(dims) != 4 or dims[3].dim_value != 3:
        raise ValueError(f"model input {image.name!r} is not an NHWC float32 image of 3 channels")
    low, high = (float(v) for v in value_range)
    scale = np.float32((high - low) / 255.0)
    name = image.name
    image.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    real = name + "/float"
    front = [helper.make_node("Cast", [name], [real], name=real, to=onnx.TensorProto.FLOAT)]

    def step(op: str, value: np.ndarray, what: str, **attrs: object) -> str:
        graph.initializer.append(numpy_helper.from_array(value, f"{name}/{what}"))
        front.append(helper.make_node(op, [front[-1].output[0], f"{name}/{what}"], [f"{name}/{op.lower()}"],
                                      name=f"{name}/{op}", **attrs))
        return f"{name}/{op.lower()}"

    convs = _input_convs(graph, name)
    if convs:
        initializers = {i.name: i for i in graph.initializer}
        for conv in convs:
            weights = initializers[conv.input[1]]
            folded = numpy_helper.to_array(weights)[:, ::-1] * scale  # RGB -> BGR input channels
            weights.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(folded, np.float32), weights.name))
        if low:
            real = step("Add", np.float32(low / scale), "offset")
    else:
        if scale != 1:
            real = step("Mul", scale, "scale")
        if low:
            real = step("Add", np.float32(low), "low")
        real = step("Gather", np.array([2, 1, 0], np.int64), "rgb", axis=3)
    for node in graph.node:
        node.input[:] = [real if value == name else value for value in node.input]
    nodes = front + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(out)
    return out
