"""Small lookups over ONNX graphs shared by the graph rewrites (onnx_cpu_rewrites, onnx_branch_merge)."""
from __future__ import annotations

from typing import Dict, List

import numpy as np
import onnx
from onnx import helper, shape_inference


def attributes(node: onnx.NodeProto) -> Dict[str, object]:
    """The node's attributes by name, as Python values."""
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def value_shapes(model: onnx.ModelProto) -> Dict[str, List[int]]:
    """Inferred shape of every value (0 for unknown dimensions)."""
    inferred = shape_inference.infer_shapes(model)
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}


def consumers(graph: onnx.GraphProto) -> Dict[str, List[onnx.NodeProto]]:
    """The nodes reading each value."""
    found: Dict[str, List[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found


def appended_channels(node: onnx.NodeProto, constants: Dict[str, np.ndarray]) -> int:
    """The number of zero channels a Pad appends after the channels of an NCHW map when that is all
    it does, else 0."""
    pads = constants.get(node.input[1]) if len(node.input) > 1 else None
    fill = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(1)
    if (node.op_type != "Pad" or attributes(node).get("mode", b"constant") != b"constant" or len(node.input) > 3
            or pads is None or pads.size != 8 or fill is None or fill.size != 1 or fill.reshape(-1)[0] != 0):
        return 0
    pads = pads.reshape(-1)
    return int(pads[5]) if pads[5] > 0 and np.count_nonzero(pads) == 1 else 0
