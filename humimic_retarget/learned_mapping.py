"""A learned expression-to-joint mapping: an ONNX model run with ONNX Runtime.

The model takes one float32 input [N, channels] and gives joint angles (rad) [N, joints], and,
where it is a self-model with a second output VARIANCE_OUTPUT, each joint's predicted variance
(rad^2) [N, joints] (humimic_retarget/offline/self_model.py). Its
metadata_props name them in order (JSON lists under CHANNELS_KEY and JOINTS_KEY); a model whose
channels are not known channels, or whose joints are not servos of the robot, is refused.
CUDA runs it when ONNX Runtime has the CUDA provider, else the CPU on one thread (a mapping is
a few small matrix products per frame: a thread pool would only add wake-up latency).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import onnxruntime as ort

from humimic_core.channels import is_channel

CHANNELS_KEY = "humimic.channels"
JOINTS_KEY = "humimic.joints"
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
#: name of a self-model's second output: each joint's predicted variance (rad^2)
VARIANCE_OUTPUT = "joint_variance"


class LearnedModelError(ValueError):
    """A model file that does not fit the robot; the message names the file and the mismatch."""


def _names(meta: dict, key: str, path: Path) -> List[str]:
    if key not in meta:
        raise LearnedModelError(f"{path}: metadata_props lacks {key} (export models with humimic-fit)")
    try:
        names = json.loads(meta[key])
    except ValueError:
        names = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise LearnedModelError(f"{path}: metadata {key} must be a JSON list of names, got {meta[key]!r}")
    if len(set(names)) != len(names):
        raise LearnedModelError(f"{path}: metadata {key} lists a name twice: {names}")
    return names


class LearnedMapping:
    """Runs the model on one channel vector (in ``channels`` order) at a time."""

    def __init__(self, path: str | Path, robot_joints: Sequence[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise LearnedModelError(f"learned mapping model {self.path} does not exist")
        available = ort.get_available_providers()
        providers = [p for p in PREFERRED_PROVIDERS if p in available]
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise LearnedModelError(f"{self.path}: not a loadable ONNX model: {exc}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.channels = _names(meta, CHANNELS_KEY, self.path)
        self.joints = _names(meta, JOINTS_KEY, self.path)
        unknown = [c for c in self.channels if not is_channel(c)]
        if unknown:
            raise LearnedModelError(f"{self.path}: input channels {unknown} are not channels the retargeting knows")
        foreign = [j for j in self.joints if j not in robot_joints]
        if foreign:
            raise LearnedModelError(f"{self.path}: output joints {foreign} are not servos of the robot config "
                                    f"(its joints: {', '.join(robot_joints)})")
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise LearnedModelError(f"{self.path}: expected one input, the model has {len(inputs)}")
        self._input = inputs[0].name
        self._output = outputs[0].name
        try:
            out = self.session.run([self._output], {self._input: np.zeros((1, len(self.channels)), np.float32)})[0]
        except Exception as exc:  # shape errors come as onnxruntime exceptions
            raise LearnedModelError(f"{self.path}: does not take its {len(self.channels)} metadata channels "
                                    f"as input [1, {len(self.channels)}]: {exc}") from None
        if out.shape != (1, len(self.joints)):
            raise LearnedModelError(f"{self.path}: output shape {out.shape} does not match its "
                                    f"{len(self.joints)} joints in metadata")
        self.providers = self.session.get_providers()
        #: the model also predicts each joint's variance
        self.has_variance = any(o.name == VARIANCE_OUTPUT for o in outputs[1:])

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Joint angles (rad, in ``joints`` order) for a channel vector (``channels`` order)."""
        return self.predict(values)[0]

    def predict(self, values: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """(joint angles, their predicted variances or None) for a channel vector."""
        x = np.asarray(values, dtype=np.float32).reshape(1, -1)
        names = [self._output, VARIANCE_OUTPUT] if self.has_variance else [self._output]
        out = self.session.run(names, {self._input: x})
        return out[0][0].astype(float), (out[1][0].astype(float) if self.has_variance else None)
