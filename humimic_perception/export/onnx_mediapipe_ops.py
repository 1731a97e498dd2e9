"""MediaPipe's TFLite custom ops (attention face mesh) lowered to standard ONNX ops.

Semantics follow MediaPipe's reference kernels (version 2 of each op). The TFLite model is batch 1;
the lowerings work on a batch of N (the leading axis of every input), so that the exported model
takes several crops per call:
  Landmarks2TransformMatrix: 4x4 matrix mapping a crop of `output_width x output_height` around a rotated
    landmark subset back to input coordinates;
  TransformTensorBilinear: bilinear resampling of a feature map through that matrix (pixel centres,
    zero outside the map);
  TransformLandmarks: the matrix applied to 2-D landmarks.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from humimic_perception.export.tflite_to_onnx import NCHW, NHWC, Converter, Op

F32 = np.float32


def _i64(values: object) -> np.ndarray:
    """Values as an int64 array (ONNX shapes and indices)."""
    return np.asarray(values, dtype=np.int64)


def _constants(cv: Converter, hint: str) -> Callable[[object, str], str]:
    """A function adding constant `value` as initializer `<hint>_<name>`."""
    return lambda value, name: cv.constant(np.asarray(value), f"{hint}_{name}")


def _require(cv: Converter, op: Op, rank_by_input: tuple[int, ...]) -> None:
    """Refuse op versions and input shapes other than those the lowerings implement."""
    if op.version != 2:
        raise cv.unsupported(op, "other than version 2")
    for index, rank in zip(op.inputs, rank_by_input):
        shape = cv.shape(index)
        if len(shape) != rank or shape[0] != 1:
            raise cv.unsupported(op, f"on input shape {shape} (expected rank {rank}, batch 1)")


def _slice(cv: Converter, value: str, start: int, end: int, axis: int, hint: str) -> str:
    """value[start:end] along `axis`."""
    bounds = [cv.constant(_i64([v]), f"{hint}_{k}") for k, v in (("start", start), ("end", end), ("axis", axis))]
    return cv.node("Slice", [value, *bounds], hint)


def _matrix_2x4(cv: Converter, index: int, hint: str) -> str:
    """The first two rows of a [N, 4, 4] transform matrix, as [N, 2, 4]."""
    matrix = cv.node("Reshape", [cv.value(index, NHWC), cv.constant(_i64([-1, 4, 4]), hint + "_44")], hint + "_m")
    return _slice(cv, matrix, 0, 2, 1, hint + "_m24")


def _transposed(cv: Converter, value: str, hint: str) -> str:
    """A batch of matrices [N, R, C] transposed to [N, C, R]."""
    return cv.node("Transpose", [value], hint, perm=[0, 2, 1])


def landmarks_to_transform_matrix(cv: Converter, op: Op) -> None:
    """Crop transform from landmarks: rotation from two landmarks, centre and size from a subset."""
    _require(cv, op, (3,))
    o = op.custom_options
    hint = cv.tensor_name(op.outputs[0])
    count = cv.shape(op.inputs[0])[1]
    c = _constants(cv, hint)
    flat = cv.node("Reshape", [cv.value(op.inputs[0], NHWC), c(_i64([0, count, -1]), "flat")], hint + "_flat")
    xy = _slice(cv, flat, 0, 2, 2, hint + "_xy")  # [N, count, 2]
    left = cv.node("Gather", [xy, c(_i64([o["left_rotation_idx"]]), "left")], hint + "_left", axis=1)
    right = cv.node("Gather", [xy, c(_i64([o["right_rotation_idx"]]), "right")], hint + "_right", axis=1)
    delta = cv.node("Sub", [right, left], hint + "_delta")  # [N, 1, 2]
    norm = cv.node("ReduceL2", [delta], hint + "_norm", axes=[2], keepdims=1)
    valid = cv.node("Greater", [norm, c(F32(0), "zero")], hint + "_valid")
    safe = cv.node("Where", [valid, norm, c(F32(1), "one")], hint + "_safe")
    unit = cv.node("Div", [delta, safe], hint + "_unit")
    # (cos a, sin a) of the eye/mouth-corner line; a = 0 when both landmarks coincide (atan2(0, 0)).
    unit = cv.node("Where", [valid, unit, c(np.array([[1, 0]], F32), "x_axis")], hint + "_dir")
    # Rotation r = target - a: (cos r, sin r) = (cos a, sin a) @ [[cos t, sin t], [sin t, -cos t]].
    t = float(o.get("target_rotation_radians", 0.0))
    cos_sin = cv.node("MatMul", [unit, c(np.array([[np.cos(t), np.sin(t)], [np.sin(t), -np.cos(t)]], F32),
                                         "target")], hint + "_cs")
    row1 = cv.node("MatMul", [cos_sin, c(np.array([[0, 1], [-1, 0]], F32), "perp")], hint + "_row1")
    # rot_t = R(r)^T = R(-r) = [[cos r, sin r], [-sin r, cos r]]; rows p @ rot_t rotate points by r.
    rot_t = cv.node("Concat", [cos_sin, row1], hint + "_rot_t", axis=1)  # [N, 2, 2]
    subset = cv.node("Gather", [xy, c(_i64(o["subset_idxs"]), "subset")], hint + "_subset", axis=1)
    rotated = cv.node("MatMul", [subset, rot_t], hint + "_rotated")
    hi = cv.node("ReduceMax", [rotated], hint + "_hi", axes=[1], keepdims=1)
    lo = cv.node("ReduceMin", [rotated], hint + "_lo", axes=[1], keepdims=1)
    size = cv.node("Sub", [hi, lo], hint + "_size")
    middle = cv.node("Mul", [cv.node("Add", [hi, lo], hint + "_sum"), c(F32(0.5), "half")], hint + "_mid")
    centre = cv.node("MatMul", [rot_t, _transposed(cv, middle, hint + "_mid_col")],
                     hint + "_centre")  # [N, 2, 1], back in input coordinates
    out_w, out_h = float(o["output_width"]), float(o["output_height"])
    per_pixel = np.array([[o["scale_x"] / out_w, o["scale_y"] / out_h]], F32)
    linear = cv.node("Mul", [rot_t, cv.node("Mul", [size, c(per_pixel, "scale")], hint + "_scale")],
                     hint + "_linear")  # R(-r) @ diag(scale)
    offset = cv.node("MatMul", [linear, c(np.array([[out_w / 2], [out_h / 2]], F32), "out_half")], hint + "_off")
    shift = cv.node("Sub", [centre, offset], hint + "_shift")
    # [linear | 0 | shift] over the rows (0, 0, 1, 0), (0, 0, 0, 1), placed by products with 0/1
    # matrices (exact) as they broadcast over the batch.
    top = cv.node("Add", [cv.node("MatMul", [linear, c(np.eye(2, 4, dtype=F32), "to_lin")], hint + "_lin4"),
                          cv.node("MatMul", [shift, c(np.eye(1, 4, 3, dtype=F32), "to_shift")], hint + "_t4")],
                  hint + "_top")
    full = cv.node("MatMul", [c(np.eye(4, 2, dtype=F32), "to_top"), top], hint + "_top44")
    out = cv.node("Add", [full, c(np.diag(F32([0, 0, 1, 1])), "bottom")], hint)
    cv.bind(op.outputs[0], out, NHWC)


def transform_tensor_bilinear(cv: Converter, op: Op) -> None:
    """Sample a feature map at matrix-mapped pixel centres (GridSample, zero outside the map)."""
    _require(cv, op, (4, 3))
    hint = cv.tensor_name(op.outputs[0])
    _, height, width, _ = cv.shape(op.inputs[0])
    _, out_h, out_w, _ = cv.shape(op.outputs[0])
    if height < 2 or width < 2:
        raise cv.unsupported(op, f"on a {height}x{width} feature map")
    c = _constants(cv, hint)
    ys, xs = np.mgrid[0:out_h, 0:out_w].astype(F32)
    centres = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5, np.zeros(xs.size, F32), np.ones(xs.size, F32)], 1)
    m42 = _transposed(cv, _matrix_2x4(cv, op.inputs[1], hint), hint + "_m42")
    pixels = cv.node("Add", [cv.node("MatMul", [c(centres, "centres"), m42], hint + "_mm"), c(F32(-0.5), "m05")],
                     hint + "_px")  # [N, out_h * out_w, 2] source (x, y) of each output pixel
    grid = cv.node("Sub", [cv.node("Mul", [pixels, c(np.array([2 / (width - 1), 2 / (height - 1)], F32), "norm")],
                                   hint + "_scaled"), c(F32(1), "one")], hint + "_grid_flat")
    grid = cv.node("Reshape", [grid, c(_i64([-1, out_h, out_w, 2]), "grid_shape")], hint + "_grid")
    sampled = cv.node("GridSample", [cv.value(op.inputs[0], NCHW), grid], hint + "_sampled",
                      align_corners=1, mode="bilinear", padding_mode="zeros")
    inside = cv.node("And", [cv.node("GreaterOrEqual", [pixels, c(F32(0), "zero")], hint + "_ge"),
                             cv.node("LessOrEqual", [pixels, c(np.array([width - 1, height - 1], F32), "max")],
                                     hint + "_le")], hint + "_in")
    mask = cv.node("ReduceMin", [cv.node("Cast", [inside], hint + "_inf", to=1)], hint + "_mask1",
                   axes=[2], keepdims=0)
    mask = cv.node("Reshape", [mask, c(_i64([-1, 1, out_h, out_w]), "mask_shape")], hint + "_mask")
    cv.bind(op.outputs[0], cv.node("Mul", [sampled, mask], hint), NCHW)


def transform_landmarks(cv: Converter, op: Op) -> None:
    """2-D landmarks through the matrix: x' = m00 x + m01 y + m03, y' = m10 x + m11 y + m13."""
    _require(cv, op, (3, 3))
    hint = cv.tensor_name(op.outputs[0])
    if cv.shape(op.inputs[0])[2] != 2:
        raise cv.unsupported(op, f"on landmarks of shape {cv.shape(op.inputs[0])} (2-D points expected)")
    m24 = _matrix_2x4(cv, op.inputs[1], hint)
    linear_t = _transposed(cv, _slice(cv, m24, 0, 2, 2, hint + "_lin"), hint + "_lin_t")
    shift = _transposed(cv, _slice(cv, m24, 3, 4, 2, hint + "_t"), hint + "_t_row")
    moved = cv.node("MatMul", [cv.value(op.inputs[0], NHWC), linear_t], hint + "_moved")
    cv.bind(op.outputs[0], cv.node("Add", [moved, shift], hint), NHWC)


CUSTOM_OPS: dict[str, Callable[[Converter, Op], None]] = {
    "Landmarks2TransformMatrix": landmarks_to_transform_matrix,
    "TransformTensorBilinear": transform_tensor_bilinear,
    "TransformLandmarks": transform_landmarks,
}
