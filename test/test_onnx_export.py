"""The ONNX exports of MediaPipe's face models against the original TFLite models on real face frames.

The original .tflite files run in MediaPipe's bundled TFLite runtime (InferenceCalculator with the
MediaPipe custom-op resolver, XNNPACK); the ONNX exports run in onnxruntime; both get the same
uint8 images scaled the same way. Both compute in float32 from the same fp16-stored weights, so they
differ only by summation order: about 3e-4 px at most on these frames. The tolerances below are
~30x that, yet far below what a wrong layout, padding or custom op gives (pixels to tens of pixels).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import flatbuffers
import mediapipe as mp
import numpy as np
import onnxruntime as ort
import pytest
from flatbuffers import flexbuffers
from mediapipe.tasks.metadata import schema_py_generated as tfl

from humimic_perception.export.onnx_export import export_models, mediapipe_dir
from humimic_perception.onnx_models import FACE_DETECTOR, FACE_LANDMARKS, ModelSpec
from humimic_perception.export.tflite_to_onnx import UnsupportedOperatorError, convert_tflite

LANDMARK_TOL_PX = 0.01  # max abs diff of landmark outputs, pixels of the 192x192 model input
DETECTOR_TOL = 0.01  # max abs diff of regressors (pixels of the 128x128 input) and of score logits
FLAG_TOL = 0.01  # max abs diff of the face-presence logit
FRAMES_PER_CLIP = 3
ROLLS_DEG = (0.0, 25.0)  # upright and rolled crops: the attention model's crop transforms rotate
CLIPS = {"sample_media": ("single_face.mp4", "WolfgangLanger_Pexels.mp4"),  # conftest fixture -> clips
         "shared_media": ("pucker_then_mouth_open.mp4", "blink_frown_surprise.mp4", "slow_smile_glasses.mp4")}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with both models exported by the project's exporter."""
    out = tmp_path_factory.mktemp("models")
    export_models(out)
    return out


@pytest.fixture(scope="module", params=sorted(CLIPS))
def frames(request: pytest.FixtureRequest) -> list[np.ndarray]:
    """RGB frames spread over each clip of one media folder (sample media, or ../shared/media: skips if absent)."""
    folder = request.getfixturevalue(request.param)
    rgb = []
    for name in CLIPS[request.param]:
        capture = cv2.VideoCapture(str(folder / name))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        assert count > 0, f"cannot read {folder / name}"
        for index in np.linspace(0, count - 1, FRAMES_PER_CLIP + 2)[1:-1].astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, bgr = capture.read()
            assert ok, f"{name}: frame {index} unreadable"
            rgb.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        capture.release()
    return rgb


def face_crops(frames: list[np.ndarray], size: int = 192) -> list[np.ndarray]:
    """Square crops (1.5x the detected face box), upright and rolled, around faces MediaPipe detects."""
    crops = []
    with mp.solutions.face_detection.FaceDetection(model_selection=0) as detector:
        for frame in frames:
            result = detector.process(frame)
            assert result.detections, "no face detected in a sample frame"
            box = result.detections[0].location_data.relative_bounding_box
            height, width = frame.shape[:2]
            cx, cy = (box.xmin + box.width / 2) * width, (box.ymin + box.height / 2) * height
            side = 1.5 * max(box.width * width, box.height * height)
            for roll in ROLLS_DEG:
                affine = cv2.getRotationMatrix2D((cx, cy), roll, size / side)
                affine[:, 2] += (size / 2 - cx, size / 2 - cy)
                crops.append(cv2.warpAffine(frame, affine, (size, size)))
    return crops


def reference_outputs(model: Path, images: list[np.ndarray], value_range: tuple[float, float],
                      outputs: int) -> list[np.ndarray]:
    """Each output of the TFLite model (flattened, one row per image) from MediaPipe's TFLite runtime."""
    low, high = value_range
    streams = "".join(f'output_stream: "t{i}" ' for i in range(outputs))
    ranges = "".join(f"ranges {{ begin: {i} end: {i + 1} }} " for i in range(outputs))
    config = f"""
input_stream: "image"
node {{ calculator: "TfLiteCustomOpResolverCalculator" output_side_packet: "OP_RESOLVER:op_resolver" }}
node {{ calculator: "TensorConverterCalculator" input_stream: "IMAGE:image" output_stream: "TENSORS:input"
  options {{ [mediapipe.TensorConverterCalculatorOptions.ext] {{
    output_tensor_float_range {{ min: {low} max: {high} }} }} }} }}
node {{ calculator: "InferenceCalculator" input_side_packet: "OP_RESOLVER:op_resolver"
  input_stream: "TENSORS:input" output_stream: "TENSORS:output"
  options {{ [mediapipe.InferenceCalculatorOptions.ext] {{ model_path: "{model}" delegate {{ xnnpack {{}} }} }} }} }}
node {{ calculator: "SplitTensorVectorCalculator" input_stream: "output" {streams}
  options {{ [mediapipe.SplitVectorCalculatorOptions.ext] {{ {ranges} }} }} }}
""" + "".join(f'node {{ calculator: "TensorsToFloatsCalculator" input_stream: "TENSORS:t{i}" '
              f'output_stream: "FLOATS:f{i}" }}\noutput_stream: "f{i}"\n' for i in range(outputs))
    graph = mp.CalculatorGraph(graph_config=config)
    rows: list[list[np.ndarray]] = [[] for _ in range(outputs)]
    for i in range(outputs):
        graph.observe_output_stream(
            f"f{i}", lambda _, packet, i=i: rows[i].append(np.array(mp.packet_getter.get_float_list(packet))))
    graph.start_run()
    for t, image in enumerate(images):
        packet = mp.packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB,
                                                      data=np.ascontiguousarray(image))
        graph.add_packet_to_input_stream("image", packet.at(t))
    graph.close()
    return [np.stack(r) for r in rows]


def onnx_outputs(model: Path, images: list[np.ndarray], value_range: tuple[float, float]) -> list[np.ndarray]:
    """Each output of the ONNX model (flattened, one row per image), input scaled as MediaPipe does."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    low, high = value_range
    name = session.get_inputs()[0].name
    runs = [session.run(None, {name: (image.astype(np.float32) * np.float32((high - low) / 255) +
                                      np.float32(low))[None]}) for image in images]
    return [np.stack([run[i].ravel() for run in runs]) for i in range(len(runs[0]))]


def compare(exported: Path, spec: ModelSpec, images: list[np.ndarray]) -> dict[str, float]:
    """Max abs difference ONNX vs TFLite for each ONNX output name."""
    ours = onnx_outputs(exported / spec.onnx_name, images, spec.input_range)
    theirs = reference_outputs(mediapipe_dir() / spec.source, images, spec.input_range, len(ours))
    names = [onnx_name for onnx_name, _ in spec.outputs.values()]
    for name, a, b in zip(names, ours, theirs):
        assert a.shape == b.shape, f"{name}: ONNX {a.shape} vs TFLite {b.shape}"
    return {name: float(np.abs(a - b).max()) for name, a, b in zip(names, ours, theirs)}


def test_face_detector_matches_tflite(exported: Path, frames: list[np.ndarray]) -> None:
    images = [cv2.resize(frame, (128, 128), interpolation=cv2.INTER_AREA) for frame in frames]
    diffs = compare(exported, FACE_DETECTOR, images)
    assert diffs["regressors"] < DETECTOR_TOL, diffs
    assert diffs["classificators"] < DETECTOR_TOL, diffs
    scores = onnx_outputs(exported / FACE_DETECTOR.onnx_name, images, FACE_DETECTOR.input_range)[1]
    assert (scores.max(axis=1) > 0).all(), "the ONNX detector misses a face MediaPipe found"


def test_face_landmarks_match_tflite(exported: Path, frames: list[np.ndarray]) -> None:
    crops = face_crops(frames)
    diffs = compare(exported, FACE_LANDMARKS, crops)
    flag = diffs.pop("face_flag")
    assert flag < FLAG_TOL, flag
    assert max(diffs.values()) < LANDMARK_TOL_PX, diffs
    flags = onnx_outputs(exported / FACE_LANDMARKS.onnx_name, crops, FACE_LANDMARKS.input_range)[-1]
    assert (flags > 0).all(), "face-presence logit negative on a real face crop"


def flex_options(options: dict) -> bytes:
    """Custom options as MediaPipe's models store them: a flexbuffer map, int lists as typed vectors."""
    builder = flexbuffers.Builder()
    with builder.Map():
        for key, value in options.items():
            if isinstance(value, list):
                builder.TypedVectorFromElements(key, value)
            elif isinstance(value, float):
                builder.Float(key, value)
            else:
                builder.Int(key, value)
    return bytes(builder.Finish())


def tiny_tflite(path: Path, tensors: list[tuple[str, list[int], np.ndarray | None]],
                ops: list[tuple[str, int, list[int], list[int], object]], outputs: list[int]) -> Path:
    """A TFLite flatbuffer with tensor 0 (float32 NHWC image) as input; ops are (builtin name or custom
    code, version, inputs, outputs, builtin options object or custom options dict)."""
    model = tfl.ModelT()
    model.version = 3
    model.buffers = [tfl.BufferT()]
    graph = tfl.SubGraphT()
    graph.inputs, graph.outputs, graph.tensors, graph.operators = [0], outputs, [], []
    for name, shape, data in tensors:
        tensor = tfl.TensorT()
        tensor.name, tensor.shape = name.encode(), shape
        tensor.type = tfl.TensorType.INT32 if data is not None and data.dtype == np.int32 else tfl.TensorType.FLOAT32
        tensor.buffer = 0
        if data is not None:
            buffer = tfl.BufferT()
            buffer.data = np.frombuffer(data.tobytes(), np.uint8)
            tensor.buffer = len(model.buffers)
            model.buffers.append(buffer)
        graph.tensors.append(tensor)
    model.operatorCodes = []
    for name, version, inputs, outs, options in ops:
        code = tfl.OperatorCodeT()
        code.version = version
        code.builtinCode = getattr(tfl.BuiltinOperator, name, tfl.BuiltinOperator.CUSTOM)
        code.deprecatedBuiltinCode = min(code.builtinCode, 127)
        op = tfl.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = len(model.operatorCodes), inputs, outs
        if code.builtinCode == tfl.BuiltinOperator.CUSTOM:
            code.customCode = name.encode()
            op.customOptions = np.frombuffer(flex_options(options), np.uint8)
        elif options is not None:
            op.builtinOptionsType = getattr(tfl.BuiltinOptions, type(options).__name__[:-1])
            op.builtinOptions = options
        model.operatorCodes.append(code)
        graph.operators.append(op)
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())
    return path


def compare_tiny(model: Path, images: list[np.ndarray], outputs: int) -> list[float]:
    """Max abs difference ONNX (converted here) vs MediaPipe's TFLite runtime per output, input range 0..1."""
    onnx_path = model.with_suffix(".onnx")
    onnx_path.write_bytes(convert_tflite(model).SerializeToString())
    ours = onnx_outputs(onnx_path, images, (0.0, 1.0))
    theirs = reference_outputs(model, images, (0.0, 1.0), outputs)
    return [float(np.abs(a - b).max()) for a, b in zip(ours, theirs)]


def test_bilinear_transform_is_zero_outside_the_map_like_tflite(tmp_path: Path) -> None:
    # Output pixels whose source lies within one pixel outside the map are 0 in MediaPipe's kernel,
    # where a plain bilinear GridSample with zero padding would blend in the border pixel.
    matrix = np.array([[[1.3, 0.2, 0, -0.8], [-0.1, 1.4, 0, -0.3], [0, 0, 1, 0], [0, 0, 0, 1]]], np.float32)
    model = tiny_tflite(tmp_path / "bilinear.tflite",
                        [("image", [1, 8, 8, 3], None), ("matrix", [1, 4, 4], matrix), ("out", [1, 6, 6, 3], None)],
                        [("TransformTensorBilinear", 2, [0, 1], [2], {"output_height": 6, "output_width": 6})], [2])
    images = list(np.random.default_rng(1).integers(1, 256, (3, 8, 8, 3), dtype=np.uint8))
    assert compare_tiny(model, images, 1)[0] < 1e-5


def test_transform_matrix_of_coinciding_rotation_landmarks_like_tflite(tmp_path: Path) -> None:
    # Landmarks are the image's 4 pixels (x, y, z = R, G, B); rotation landmarks 0 and 1 coincide in the
    # first image (atan2(0, 0) = 0 in MediaPipe's kernel) and differ in the second.
    options = {"left_rotation_idx": 0, "right_rotation_idx": 1, "output_height": 4, "output_width": 5,
               "scale_x": 1.5, "scale_y": 1.2, "subset_idxs": [0, 1, 2, 3], "target_rotation_radians": 0.3}
    model = tiny_tflite(tmp_path / "matrix.tflite",
                        [("image", [1, 2, 2, 3], None), ("shape", [3], np.array([1, 4, 3], np.int32)),
                         ("landmarks", [1, 4, 3], None), ("matrix", [1, 4, 4], None)],
                        [("RESHAPE", 1, [0, 1], [2], None),
                         ("Landmarks2TransformMatrix", 2, [2], [3], options)], [3])
    same = np.array([[[10, 20, 0], [10, 20, 0]], [[200, 40, 0], [90, 250, 0]]], np.uint8)
    apart = np.array([[[10, 20, 0], [180, 90, 0]], [[200, 40, 0], [90, 250, 0]]], np.uint8)
    assert compare_tiny(model, [same, apart], 1)[0] < 1e-5


def test_unsupported_operator_variant_names_op_and_model(tmp_path: Path) -> None:
    relu_add = tfl.AddOptionsT()
    relu_add.fusedActivationFunction = tfl.ActivationFunctionType.RELU
    model = tiny_tflite(tmp_path / "fused.tflite", [("image", [1, 2, 2, 3], None), ("sum", [1, 2, 2, 3], None)],
                        [("ADD", 1, [0, 0], [1], relu_add)], [1])
    with pytest.raises(UnsupportedOperatorError, match=r"fused\.tflite: ADD \(v1\) with fused activation"):
        convert_tflite(model)


def test_unsupported_operator_names_op_and_model() -> None:
    sparse = mediapipe_dir() / "modules/face_detection/face_detection_full_range_sparse.tflite"
    with pytest.raises(UnsupportedOperatorError) as error:
        convert_tflite(sparse)
    message = str(error.value)
    assert sparse.name in message
    for op in ("DENSIFY", "DEPTH_TO_SPACE", "RESIZE_BILINEAR"):
        assert op in message


def test_export_is_idempotent_with_matching_contract(tmp_path: Path) -> None:
    first = export_models(tmp_path)
    assert all(r.exported for r in first)
    stamps = [r.path.stat().st_mtime_ns for r in first]
    second = export_models(tmp_path)
    assert not any(r.exported for r in second)
    assert [r.path.stat().st_mtime_ns for r in second] == stamps

    for spec, result in zip((FACE_DETECTOR, FACE_LANDMARKS), first):
        contract = json.loads((tmp_path / spec.sidecar_name).read_text())
        session = ort.InferenceSession(str(tmp_path / spec.onnx_name), providers=["CPUExecutionProvider"])
        assert [(i["name"], i["shape"]) for i in contract["inputs"]] == [
            (i.name, i.shape) for i in session.get_inputs()]
        assert [(o["name"], o["shape"]) for o in contract["outputs"]] == [
            (o.name, o.shape) for o in session.get_outputs()]
        assert contract["source_sha256"] == result.source_sha256

    sidecar = tmp_path / FACE_LANDMARKS.sidecar_name
    sidecar.write_text(sidecar.read_text().replace(first[1].source_sha256, "0" * 64))
    assert [r.exported for r in export_models(tmp_path)] == [False, True]
    detector = tmp_path / FACE_DETECTOR.onnx_name
    detector.write_bytes(detector.read_bytes()[:1000])
    assert [r.exported for r in export_models(tmp_path)] == [True, False]
    ort.InferenceSession(str(detector), providers=["CPUExecutionProvider"])
