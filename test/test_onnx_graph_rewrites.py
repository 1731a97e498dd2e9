"""The graph rewrites that speed up the face models, on small synthetic graphs: each keeps the outputs
(float rounding) where it applies and leaves graphs alone where it does not. The rewrites on the real
face mesh are checked in test_landmarks_onnx."""
from __future__ import annotations

from typing import Dict, List

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from humimic_perception.onnx_branch_merge import merge_parallel_branches
from humimic_perception.onnx_cpu_rewrites import optimize_for_cpu
from humimic_perception.onnx_graph import value_shapes
from humimic_perception.onnx_image_input import uint8_bgr_input

RNG = np.random.default_rng(7)


def model(nodes: List[onnx.NodeProto], inputs: Dict[str, tuple], outputs: Dict[str, tuple],
          weights: Dict[str, np.ndarray], input_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, input_type, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
        [numpy_helper.from_array(v.astype(np.float32) if v.dtype.kind == "f" else v, n) for n, v in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(m: onnx.ModelProto, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def image_model(relu_first: bool = False) -> onnx.ModelProto:
    """NHWC RGB image -> Transpose -> strided Conv with asymmetric padding -> Relu (with ``relu_first``, a
    Relu between the Transpose and the Conv, so the input's conversion cannot go into the weights)."""
    conv_input = "relu_in" if relu_first else "nchw"
    nodes = [helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", [conv_input, "w", "b"], ["conv"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[0, 1, 1, 2]),
             helper.make_node("Relu", ["conv"], ["out"])]
    if relu_first:
        nodes.insert(1, helper.make_node("Relu", ["nchw"], ["relu_in"]))
    return model(nodes, {"image": (1, 10, 12, 3)}, {"out": (1, 8, 5, 7)},
                 {"w": RNG.normal(size=(8, 3, 3, 3)), "b": RNG.normal(size=8)})


@pytest.mark.parametrize("value_range,relu_first,front", [
    ((0.0, 1.0), False, ["Cast"]), ((-1.0, 1.0), False, ["Cast", "Add"]),
    ((-1.0, 1.0), True, ["Cast", "Mul", "Add", "Gather"])])
def test_uint8_bgr_input_matches_the_float_rgb_input(value_range: tuple, relu_first: bool, front: list) -> None:
    original = image_model(relu_first)
    baked = uint8_bgr_input(original, value_range)
    assert baked.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8
    assert [n.op_type for n in baked.graph.node][:len(front) + 1] == front + ["Transpose"]
    bgr = RNG.integers(0, 256, (1, 10, 12, 3), dtype=np.uint8)
    low, high = value_range
    rgb = bgr[..., ::-1].astype(np.float32) * np.float32((high - low) / 255) + np.float32(low)
    expected = run(original, {"image": rgb})[0]
    for candidate in (baked, optimize_for_cpu(baked)):
        assert np.abs(run(candidate, {"image": bgr})[0] - expected).max() < 1e-4


def test_uint8_bgr_input_refuses_a_non_image_input() -> None:
    m = model([helper.make_node("Relu", ["x"], ["y"])], {"x": (1, 4)}, {"y": (1, 4)}, {})
    with pytest.raises(ValueError, match="'x'"):
        uint8_bgr_input(m, (0.0, 1.0))


def test_interleaved_input_conv_replaces_the_transpose() -> None:
    original = image_model()
    rewritten = optimize_for_cpu(original)
    assert "Transpose" not in {n.op_type for n in rewritten.graph.node}
    image = RNG.normal(size=(1, 10, 12, 3)).astype(np.float32)
    assert np.abs(run(rewritten, {"image": image})[0] - run(original, {"image": image})[0]).max() < 1e-4


@pytest.mark.parametrize("masked", [False, True])
def test_grid_sample_rewrite_matches_onnxruntime_also_outside_the_map(masked: bool) -> None:
    nodes = [helper.make_node("GridSample", ["x", "grid"], ["sampled"], align_corners=1, mode="bilinear",
                              padding_mode="zeros")]
    if masked:
        nodes.append(helper.make_node("Mul", ["sampled", "mask"], ["out"]))
    inputs = {"x": (1, 8, 6, 5), "grid": (1, 4, 7, 2), **({"mask": (1, 1, 4, 7)} if masked else {})}
    original = model(nodes, inputs, {"out" if masked else "sampled": (1, 8, 4, 7)}, {})
    rewritten = optimize_for_cpu(original)
    assert "GridSample" not in {n.op_type for n in rewritten.graph.node}
    grid = RNG.uniform(-1.4, 1.4, (1, 4, 7, 2)).astype(np.float32)
    grid[0, 0, :4] = [[-1, -1], [1, 1], [-1, 1], [1.2, -1]]  # corners and an exact border
    feeds = {"x": RNG.normal(size=(1, 8, 6, 5)).astype(np.float32), "grid": grid}
    if masked:
        feeds["mask"] = RNG.integers(0, 2, (1, 1, 4, 7)).astype(np.float32)
    assert np.abs(run(rewritten, feeds)[0] - run(original, feeds)[0]).max() < 1e-5


def branch(prefix: str, root: str, channels: int, pad: bool = True) -> tuple:
    """Conv - PRelu - depthwise Conv + residual - MaxPool - channel Pad: nodes and weights."""
    p = prefix
    nodes = [helper.make_node("Conv", [root, f"{p}w1", f"{p}b1"], [f"{p}c1"], kernel_shape=[1, 1]),
             helper.make_node("PRelu", [f"{p}c1", f"{p}slope"], [f"{p}a1"]),
             helper.make_node("Conv", [f"{p}a1", f"{p}w2"], [f"{p}c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              group=channels),
             helper.make_node("Add", [f"{p}c2", root], [f"{p}s"]),
             helper.make_node("Relu", [f"{p}s"], [f"{p}r"]),
             helper.make_node("MaxPool", [f"{p}r"], [f"{p}m"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", [f"{p}m", f"{p}w3"], [f"{p}c3"], kernel_shape=[1, 1]),
             helper.make_node("Relu", [f"{p}c3"], [f"{p}c4"])]
    if pad:
        nodes.append(helper.make_node("Pad", [f"{p}c4", "pads"], [f"{p}out"]))
    else:
        nodes.append(helper.make_node("Sigmoid", [f"{p}c4"], [f"{p}out"]))
    weights = {f"{p}w1": RNG.normal(size=(channels, channels, 1, 1)), f"{p}b1": RNG.normal(size=channels),
               f"{p}slope": RNG.normal(size=(1, channels, 1, 1)), f"{p}w2": RNG.normal(size=(channels, 1, 3, 3)),
               f"{p}w3": RNG.normal(size=(channels, channels, 1, 1))}
    return nodes, weights


def two_branches(same: bool) -> onnx.ModelProto:
    left, left_weights = branch("l_", "x", 8)
    right, right_weights = branch("r_", "y", 8, pad=same)
    weights = {**left_weights, **right_weights, "pads": np.array([0, 0, 0, 0, 0, 8, 0, 0], np.int64)}
    return model(left + right, {"x": (1, 8, 6, 6), "y": (1, 8, 6, 6)},
                 {"l_out": (1, 16, 3, 3), "r_out": (1, 16 if same else 8, 3, 3), "l_c3": (1, 8, 3, 3)}, weights)


def test_identical_branches_merge_into_grouped_ops() -> None:
    original = two_branches(same=True)
    merged = merge_parallel_branches(original, value_shapes(original))
    assert merged is not None
    convs = [n for n in merged.graph.node if n.op_type == "Conv"]
    assert len(convs) == 4  # 3 Convs and the Pad, once for both branches
    assert {a.i for n in convs for a in n.attribute if a.name == "group"} >= {2, 16}
    feeds = {name: RNG.normal(size=(1, 8, 6, 6)).astype(np.float32) for name in ("x", "y")}
    for a, b in zip(run(merged, feeds), run(original, feeds)):
        assert np.abs(a - b).max() < 1e-4


def test_different_branches_stay_apart() -> None:
    original = two_branches(same=False)
    assert merge_parallel_branches(original, value_shapes(original)) is None


@pytest.mark.parametrize("channels,extra,replacement", [(6, 4, {"Conv"}), (4, 8, {"Conv", "Concat"})])
def test_channel_pad_becomes_convolutions(channels: int, extra: int, replacement: set) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Pad", ["r", "pads"], ["y"])]
    original = model(nodes, {"x": (1, channels, 5, 7)}, {"y": (1, channels + extra, 5, 7)},
                     {"pads": np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64)})
    rewritten = optimize_for_cpu(original)
    assert {n.op_type for n in rewritten.graph.node} == {"Relu"} | replacement
    x = RNG.normal(size=(1, channels, 5, 7)).astype(np.float32)
    assert np.array_equal(run(rewritten, {"x": x})[0], run(original, {"x": x})[0])
