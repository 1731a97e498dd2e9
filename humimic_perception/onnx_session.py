"""onnxruntime sessions for the face models: execution provider choice, threads, CPU graph rewrites."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Tuple

import onnx
import onnxruntime as ort

from humimic_perception.onnx_cpu_rewrites import optimize_for_cpu
from humimic_perception.onnx_image_input import uint8_bgr_input

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
#: Values of the device option.
DEVICES = ("auto", "cpu", "cuda")


def providers_for(device: str) -> List[str]:
    """Execution providers for ``device``: "cuda" (fails without onnxruntime-gpu), "cpu", or "auto"
    (CUDA when onnxruntime offers it, else CPU)."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r} (known: {', '.join(DEVICES)})")
    available = ort.get_available_providers()
    if device == "cuda" and CUDA not in available:
        raise ValueError(f"device 'cuda' requested but onnxruntime offers only {available} "
                         "(install onnxruntime-gpu with a matching CUDA)")
    if device == "cpu" or CUDA not in available:
        return [CPU]
    return [CUDA, CPU]


def session_options(threads: int) -> ort.SessionOptions:
    """Full graph optimisation, sequential execution, ``threads`` intra-op threads (0: one per core).
    Several threads do not spin while waiting for work: the pipeline's other processes share the
    cores, and spinning threads took their time (landmark model, 2 threads on 2 busy cores:
    11.9 ms spinning, 4.6 ms not, 3.4 ms on one thread; docs/perception.md)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if threads != 1:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def create_session(path: Path, device: str = "auto", threads: int = 0,
                   image_range: Optional[Tuple[float, float]] = None) -> ort.InferenceSession:
    """A session on ``path``: full graph optimisation, sequential execution, ``threads`` intra-op threads
    (0: onnxruntime's default, one per physical core). With ``image_range`` (the value range of the
    model's NHWC float RGB image input) the session takes the uint8 BGR image instead (onnx_image_input).
    On the CPU provider the model also gets the exact rewrites of onnx_cpu_rewrites (also when "auto"
    found CUDA listed but could not start it)."""
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {path} not found")
    providers = providers_for(device)
    options = session_options(threads)
    model = onnx.load(str(path))
    if image_range is not None:
        model = uint8_bgr_input(model, image_range)
    if providers[0] == CUDA:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=providers)
        if session.get_providers()[0] == CUDA:
            return session
        if device == "cuda":
            raise ValueError(f"{path.name}: onnxruntime could not start the CUDA provider (see its log above)")
    return ort.InferenceSession(optimize_for_cpu(model).SerializeToString(), options, providers=[CPU])


def input_contract(path: Path, default_range: Tuple[float, float]) -> Tuple[float, float]:
    """The input value range from the model's JSON sidecar (``<model>.json``, see onnx_export), else the default."""
    sidecar = Path(path).with_suffix(".json")
    if not sidecar.is_file():
        return default_range
    try:
        low, high = json.loads(sidecar.read_text())["inputs"][0]["range"]
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"{sidecar}: no readable inputs[0].range ({exc})") from None
    return float(low), float(high)
