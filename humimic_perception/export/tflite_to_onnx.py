"""Convert a float TFLite model (the MediaPipe face models) to ONNX without TensorFlow.

The flatbuffer is read with the TFLite schema that mediapipe bundles; fp16 weights behind DEQUANTIZE
ops are folded into float32 initializers. 4-D feature maps are kept NCHW inside the ONNX graph; the
graph input and outputs keep the TFLite shapes (NHWC image in), so the ONNX model is a drop-in for
the TFLite one, except that their leading axis of 1 becomes the dynamic batch axis ``N``: the ops
keep the batch axis (reshapes copy it, slices take all of it), so one call can run several inputs.
MediaPipe's custom ops are lowered by humimic_perception.export.onnx_mediapipe_ops.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import onnx
from flatbuffers import flexbuffers
from mediapipe.tasks.metadata import schema_py_generated as tfl
from onnx import helper, numpy_helper

OPSET = 17
IR_VERSION = 8
NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)
NCHW, NHWC = "nchw", "nhwc"
#: Name of the dynamic batch axis of the graph input and outputs.
BATCH = "N"

_OP_NAMES = {code: name for name, code in vars(tfl.BuiltinOperator).items() if not name.startswith("_")}
_TYPE_NAMES = {code: name for name, code in vars(tfl.TensorType).items() if not name.startswith("_")}
_DTYPES = {tfl.TensorType.FLOAT32: np.float32, tfl.TensorType.FLOAT16: np.float16,
           tfl.TensorType.INT32: np.int32, tfl.TensorType.INT64: np.int64}


class UnsupportedOperatorError(ValueError):
    """The TFLite model uses an operator (or an operator variant) this converter cannot lower."""


@dataclass(frozen=True)
class Op:
    """One TFLite operator: its name ("CONV_2D", or the custom code), version, tensor indices, options."""

    name: str
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    builtin_options: object
    custom_options: dict


class Converter:
    """Builds the ONNX graph of one TFLite subgraph; op lowerings call back into it."""

    def __init__(self, data: bytes, model_name: str) -> None:
        self.model_name = model_name
        self._model = tfl.Model.GetRootAsModel(data, 0)
        if self._model.SubgraphsLength() != 1:
            raise UnsupportedOperatorError(f"{model_name}: {self._model.SubgraphsLength()} subgraphs, expected 1")
        self._graph = self._model.Subgraphs(0)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._values: dict[tuple[int, str], str] = {}
        self._consts: dict[int, np.ndarray] = {}
        self._used_names: set[str] = set()

    # -- tensors ---------------------------------------------------------------------------------
    def shape(self, index: int) -> tuple[int, ...]:
        """Static TFLite (NHWC) shape of a tensor."""
        tensor = self._graph.Tensors(index)
        return tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()

    def tensor_name(self, index: int) -> str:
        """The TFLite name of a tensor."""
        return self._graph.Tensors(index).Name().decode()

    def const(self, index: int) -> np.ndarray | None:
        """The constant value of a tensor (weights, folded DEQUANTIZE outputs), None for activations."""
        if index in self._consts:
            return self._consts[index]
        tensor = self._graph.Tensors(index)
        raw = self._model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(raw, int) or raw.size == 0:
            return None
        value = np.frombuffer(raw.tobytes(), dtype=_DTYPES[tensor.Type()]).reshape(self.shape(index))
        self._consts[index] = value
        return value

    def set_const(self, index: int, value: np.ndarray) -> None:
        """Record a tensor as constant (a folded op output)."""
        self._consts[index] = value

    def value(self, index: int, layout: str) -> str:
        """ONNX name of tensor `index` in `layout` (NCHW/NHWC only differ for 4-D tensors)."""
        if (index, layout) in self._values:
            return self._values[(index, layout)]
        const = self.const(index)
        if const is not None:
            if layout == NCHW and const.ndim <= 4 and const.size > 1:
                const = const.reshape((1,) * (4 - const.ndim) + const.shape).transpose(NHWC_TO_NCHW)
            name = self.constant(const, f"{self.tensor_name(index)}_{layout}")
        else:
            other = NHWC if layout == NCHW else NCHW
            if (index, other) not in self._values:
                raise UnsupportedOperatorError(f"{self.model_name}: tensor {self.tensor_name(index)!r} is used "
                                               "before it is computed")
            source = self._values[(index, other)]
            if len(self.shape(index)) != 4:
                return source
            perm = NHWC_TO_NCHW if layout == NCHW else NCHW_TO_NHWC
            name = self.node("Transpose", [source], f"{self.tensor_name(index)}_{layout}", perm=list(perm))
        self._values[(index, layout)] = name
        return name

    def layout_of(self, index: int) -> str:
        """NCHW when the tensor is (also) held NCHW, else NHWC (constants, the graph input, 1-3-D tensors)."""
        return NCHW if (index, NCHW) in self._values else NHWC

    def bind(self, index: int, name: str, layout: str) -> None:
        """Record that ONNX value `name` holds TFLite tensor `index` in `layout`."""
        self._values[(index, layout)] = name

    # -- graph building ----------------------------------------------------------------------------
    def unique(self, hint: str) -> str:
        """A fresh ONNX value name derived from `hint`."""
        base = "".join(c if c.isalnum() or c in "_./:-" else "_" for c in hint) or "v"
        name, n = base, 1
        while name in self._used_names:
            n += 1
            name = f"{base}_{n}"
        self._used_names.add(name)
        return name

    def constant(self, value: np.ndarray, hint: str) -> str:
        """Add an initializer (floats as float32) and return its name."""
        array = np.asarray(value)
        if array.dtype == np.float16 or array.dtype == np.float64:
            array = array.astype(np.float32)
        name = self.unique(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op_type: str, inputs: list[str], hint: str, **attrs: object) -> str:
        """Add one ONNX node with a single output and return that output's name."""
        out = self.unique(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    # -- conversion ----------------------------------------------------------------------------------
    def operators(self) -> list[Op]:
        """The subgraph's operators in execution order."""
        ops = []
        for i in range(self._graph.OperatorsLength()):
            op = self._graph.Operators(i)
            code = self._model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = code.CustomCode().decode() if builtin == tfl.BuiltinOperator.CUSTOM else _OP_NAMES[builtin]
            custom = bytes(op.CustomOptionsAsNumpy()) if op.CustomOptionsLength() else b""
            ops.append(Op(name, code.Version(), tuple(int(t) for t in op.InputsAsNumpy()),
                          tuple(int(t) for t in op.OutputsAsNumpy()), op.BuiltinOptions(),
                          flexbuffers.Loads(custom) if custom else {}))
        return ops

    def convert(self, input_name: str | None, output_names: Mapping[str, str]) -> onnx.ModelProto:
        """The checked ONNX model; raises UnsupportedOperatorError naming every op it cannot lower."""
        from humimic_perception.export.onnx_mediapipe_ops import CUSTOM_OPS  # that module builds on this one

        lowerings: dict[str, Callable[[Converter, Op], None]] = {**BUILTIN_OPS, **CUSTOM_OPS}
        ops = self.operators()
        unknown = sorted({op.name for op in ops if op.name not in lowerings})
        if unknown:
            raise UnsupportedOperatorError(f"{self.model_name}: unsupported TFLite operators: {', '.join(unknown)}")
        for i in range(self._graph.TensorsLength()):
            if self._graph.Tensors(i).Type() not in _DTYPES:
                raise UnsupportedOperatorError(
                    f"{self.model_name}: tensor {self.tensor_name(i)!r} has type "
                    f"{_TYPE_NAMES.get(self._graph.Tensors(i).Type())} (only float models are supported)")
        out_indices = [self._graph.Outputs(j) for j in range(self._graph.OutputsLength())]
        out_names = [self.unique(output_names.get(self.tensor_name(i), self.tensor_name(i))) for i in out_indices]
        inputs = []
        for j in range(self._graph.InputsLength()):
            index = self._graph.Inputs(j)
            name = self.unique(input_name if input_name and self._graph.InputsLength() == 1
                               else self.tensor_name(index))
            self.bind(index, name, NHWC)
            inputs.append(self._value_info(name, index))
        for op in ops:
            lowerings[op.name](self, op)
        outputs = []
        for index, name in zip(out_indices, out_names):
            self.nodes.append(helper.make_node("Identity", [self.value(index, NHWC)], [name], name=name))
            outputs.append(self._value_info(name, index))
        graph = helper.make_graph(self.nodes, Path(self.model_name).stem, inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="humimic.tflite_to_onnx", ir_version=IR_VERSION)
        onnx.checker.check_model(model)
        return model

    def _value_info(self, name: str, index: int) -> onnx.ValueInfoProto:
        dtype = _DTYPES[self._graph.Tensors(index).Type()]
        shape: list = list(self.shape(index))
        if shape and shape[0] == 1:
            shape[0] = BATCH
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape)

    def unsupported(self, op: Op, what: str) -> UnsupportedOperatorError:
        """The error for an operator variant (options, version, shapes) that cannot be lowered."""
        return UnsupportedOperatorError(f"{self.model_name}: {op.name} (v{op.version}) {what} is not supported")


def convert_tflite(path: Path, input_name: str | None = None,
                   output_names: Mapping[str, str] | None = None) -> onnx.ModelProto:
    """ONNX model equivalent to the TFLite model at `path`; optional renames of its input and outputs."""
    path = Path(path)
    return Converter(path.read_bytes(), path.name).convert(input_name, output_names or {})


# -- builtin operators --------------------------------------------------------------------------------
def _options(op: Op, cls: type) -> object | None:
    """The op's builtin options table read as `cls` (None when the op has none)."""
    if op.builtin_options is None:
        return None
    options = cls()
    options.Init(op.builtin_options.Bytes, op.builtin_options.Pos)
    return options


def _no_fused_activation(cv: Converter, op: Op, options: object | None) -> None:
    """The MediaPipe face models apply activations as separate ops; a fused one is refused."""
    if options is not None and options.FusedActivationFunction() != tfl.ActivationFunctionType.NONE:
        raise cv.unsupported(op, f"with fused activation {options.FusedActivationFunction()}")


def _spatial_pads(cv: Converter, op: Op, kernel: tuple[int, int], strides: tuple[int, int],
                  dilations: tuple[int, int], padding: int) -> list[int]:
    """Explicit ONNX pads [top, left, bottom, right] for TFLite SAME/VALID padding."""
    if padding == tfl.Padding.VALID:
        return [0, 0, 0, 0]
    if padding != tfl.Padding.SAME:
        raise cv.unsupported(op, f"padding {padding}")
    _, height, width, _ = cv.shape(op.inputs[0])
    begins, ends = [], []
    for size, k, s, d in zip((height, width), kernel, strides, dilations):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins + ends


def _conv(cv: Converter, op: Op) -> None:
    depthwise = op.name == "DEPTHWISE_CONV_2D"
    opts = _options(op, tfl.DepthwiseConv2DOptions if depthwise else tfl.Conv2DOptions)
    _no_fused_activation(cv, op, opts)
    weights = cv.const(op.inputs[1])
    if weights is None:
        raise cv.unsupported(op, "with non-constant weights")
    weights = weights.astype(np.float32)
    kernel = (weights.shape[1], weights.shape[2])
    if depthwise:
        group = cv.shape(op.inputs[0])[3]
        weights = weights.transpose(3, 0, 1, 2)  # [1, kh, kw, C*M] -> [C*M, 1, kh, kw]
    else:
        group = 1
        weights = weights.transpose(0, 3, 1, 2)  # OHWI -> OIHW
    strides = (opts.StrideH(), opts.StrideW())
    dilations = (opts.DilationHFactor(), opts.DilationWFactor())
    hint = cv.tensor_name(op.outputs[0])
    inputs = [cv.value(op.inputs[0], NCHW), cv.constant(weights, hint + "_w")]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        inputs.append(cv.constant(cv.const(op.inputs[2]), hint + "_b"))
    out = cv.node("Conv", inputs, hint, kernel_shape=list(kernel), strides=list(strides),
                  dilations=list(dilations), group=group,
                  pads=_spatial_pads(cv, op, kernel, strides, dilations, opts.Padding()))
    cv.bind(op.outputs[0], out, NCHW)


def _max_pool(cv: Converter, op: Op) -> None:
    opts = _options(op, tfl.Pool2DOptions)
    _no_fused_activation(cv, op, opts)
    kernel = (opts.FilterHeight(), opts.FilterWidth())
    strides = (opts.StrideH(), opts.StrideW())
    out = cv.node("MaxPool", [cv.value(op.inputs[0], NCHW)], cv.tensor_name(op.outputs[0]),
                  kernel_shape=list(kernel), strides=list(strides),
                  pads=_spatial_pads(cv, op, kernel, strides, (1, 1), opts.Padding()))
    cv.bind(op.outputs[0], out, NCHW)


def _common_layout(cv: Converter, indices: tuple[int, ...]) -> str:
    """NCHW when every computed operand is 4-D and one already is NCHW, else NHWC."""
    computed = [index for index in indices if cv.const(index) is None]
    if all(len(cv.shape(index)) == 4 for index in computed) and any(
            cv.layout_of(index) == NCHW for index in computed):
        return NCHW
    return NHWC


def _elementwise(onnx_op: str, options_cls: type | None) -> Callable[[Converter, Op], None]:
    def lower(cv: Converter, op: Op) -> None:
        if options_cls is not None:
            _no_fused_activation(cv, op, _options(op, options_cls))
        layout = _common_layout(cv, op.inputs)
        cv.bind(op.outputs[0], cv.node(onnx_op, [cv.value(i, layout) for i in op.inputs],
                                       cv.tensor_name(op.outputs[0])), layout)
    return lower


def _dequantize(cv: Converter, op: Op) -> None:
    value = cv.const(op.inputs[0])
    if value is None or value.dtype != np.float16:
        raise cv.unsupported(op, "of a non-constant or integer-quantized tensor")
    cv.set_const(op.outputs[0], value.astype(np.float32))


def _pad(cv: Converter, op: Op) -> None:
    pads = cv.const(op.inputs[1])
    if pads is None:
        raise cv.unsupported(op, "with non-constant paddings")
    layout = _common_layout(cv, op.inputs[:1])
    if layout == NCHW:
        pads = pads[list(NHWC_TO_NCHW)]
    onnx_pads = np.concatenate([pads[:, 0], pads[:, 1]]).astype(np.int64)
    hint = cv.tensor_name(op.outputs[0])
    out = cv.node("Pad", [cv.value(op.inputs[0], layout), cv.constant(onnx_pads, hint + "_pads")], hint)
    cv.bind(op.outputs[0], out, layout)


def _reshape(cv: Converter, op: Op) -> None:
    hint = cv.tensor_name(op.outputs[0])
    dims = list(cv.shape(op.outputs[0]))
    if dims and dims[0] == 1 and cv.shape(op.inputs[0])[:1] == (1,):
        dims[0] = 0  # copy the batch axis
    shape = cv.constant(np.array(dims, dtype=np.int64), hint + "_shape")
    cv.bind(op.outputs[0], cv.node("Reshape", [cv.value(op.inputs[0], NHWC), shape], hint), NHWC)


def _concatenation(cv: Converter, op: Op) -> None:
    opts = _options(op, tfl.ConcatenationOptions)
    _no_fused_activation(cv, op, opts)
    rank = len(cv.shape(op.outputs[0]))
    axis = opts.Axis() % rank
    layout = _common_layout(cv, op.inputs)
    if layout == NCHW:
        axis = NHWC_TO_NCHW.index(axis)
    out = cv.node("Concat", [cv.value(i, layout) for i in op.inputs], cv.tensor_name(op.outputs[0]), axis=axis)
    cv.bind(op.outputs[0], out, layout)


def _strided_slice(cv: Converter, op: Op) -> None:
    opts = _options(op, tfl.StridedSliceOptions)
    if opts.EllipsisMask() or opts.NewAxisMask() or opts.ShrinkAxisMask():
        raise cv.unsupported(op, "with ellipsis, new-axis or shrink-axis masks")
    begin, end, strides = (cv.const(i) for i in op.inputs[1:4])
    if begin is None or end is None or strides is None:
        raise cv.unsupported(op, "with non-constant begin/end/strides")
    big = np.iinfo(np.int64).max
    starts = [0 if opts.BeginMask() >> i & 1 else int(b) for i, b in enumerate(begin)]
    ends = [(big if s > 0 else -big) if opts.EndMask() >> i & 1 else int(e)
            for i, (e, s) in enumerate(zip(end, strides))]
    if cv.shape(op.inputs[0])[:1] == (1,) and (starts[0], min(ends[0], 1), int(strides[0])) == (0, 1, 1):
        ends[0] = big  # the whole batch axis
    hint = cv.tensor_name(op.outputs[0])
    args = [cv.constant(np.array(v, dtype=np.int64), f"{hint}_{k}")
            for k, v in (("starts", starts), ("ends", ends), ("axes", range(len(starts))), ("steps", strides))]
    cv.bind(op.outputs[0], cv.node("Slice", [cv.value(op.inputs[0], NHWC), *args], hint), NHWC)


BUILTIN_OPS: dict[str, Callable[[Converter, Op], None]] = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _conv,
    "MAX_POOL_2D": _max_pool,
    "ADD": _elementwise("Add", tfl.AddOptions),
    "MUL": _elementwise("Mul", tfl.MulOptions),
    "PRELU": _elementwise("PRelu", None),
    "RELU": _elementwise("Relu", None),
    "DEQUANTIZE": _dequantize,
    "PAD": _pad,
    "RESHAPE": _reshape,
    "CONCATENATION": _concatenation,
    "STRIDED_SLICE": _strided_slice,
}
