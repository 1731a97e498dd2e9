"""An inverse self-model with a per-joint predicted variance: face channels -> joint positions, and
how far to trust each (fitted on a babbling session, humimic_experiments.babble).

    python -m humimic_retarget.offline.self_model DIR/babble.jsonl --out self_model.onnx [--inputs kind]

Inputs (each joint's, from its entry in the robot config's mapping; a joint whose entry reads none
of the data's channels reads all of them):
  kind     (default) every channel of the kinds its entry reads: action units for the face, head
           angles for the neck, gaze for the eyes. The neck turns the whole face, so on the robot's
           face every AU moves with it (perception reads part of a pitch as an expression): a neck
           that reads AUs, or a face joint that reads head angles, learns that artefact, and on a
           person it moves the neck with the expression (docs/twin.md, section 5).
  mapping  only its entry's channels (the babbling learns their weights, not other AUs).
  all      every channel.

The mean is the ridge fit of humimic_retarget.offline.fitting per joint (alpha chosen on a block
split). The variance is a second linear model, of each joint's log-variance on the same inputs,
trained by Gaussian negative log-likelihood on the mean's cross-fitted residuals (each block's
residual from a mean fitted without that block, so the variance is not the optimistic in-sample
one). The NLL is convex in the log-variance weights; full-batch Adam, with the L2 penalty of least
NLL on a block split (a large one, where the inputs say little about the error, leaves a constant
variance per joint). The ONNX model has two outputs: ``joints`` (rad; what the retarget node's
learned mapping reads, as from humimic-fit) and ``joint_variance`` (rad^2), with the channel and
joint order, the units and the suggested ``max_std`` in its metadata: the 95th percentile of the
predicted standard deviation on the held-out samples, so that a joint falls back to its linear
mapping where the model is less sure than on nearly all babbled faces it was not fitted on.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from humimic_core.channels import GAZE_CHANNELS, HEAD_CHANNELS
from humimic_core.paths import config_file
from humimic_core.robot_config import RobotConfig, load_robot_config
from humimic_retarget.learned_mapping import CHANNELS_KEY, JOINTS_KEY, VARIANCE_OUTPUT
from humimic_retarget.offline.fitting import _scale, block_split, choose_ridge, rmse
from humimic_retarget.offline.onnx_export import INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME

VARIANCE_NAME = VARIANCE_OUTPUT
#: blocks of the cross-fit that gives the residuals the variance learns from
FOLDS = 5
#: quantile of the held-out predicted standard deviation suggested as mapping.model.max_std
MAX_STD_QUANTILE = 0.95
INPUTS = ("kind", "mapping", "all")


@dataclass
class SelfModel:
    """joints = x @ w + b; log variance = x @ v + c (raw channel units in, rad and rad^2 out)."""

    w: np.ndarray
    b: np.ndarray
    v: np.ndarray
    c: np.ndarray

    def predict(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, float)
        return x @ self.w + self.b, np.exp(x @ self.v + self.c)


def nll(y: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> float:
    """Mean Gaussian negative log-likelihood per value (without the constant)."""
    return float(np.mean(0.5 * (np.log(variance) + (y - mean) ** 2 / variance)))


def _kind(channel: str) -> str:
    return "head" if channel in HEAD_CHANNELS else "gaze" if channel in GAZE_CHANNELS else "action unit"


def input_mask(channels: Sequence[str], joints: Sequence[str], config: RobotConfig, inputs: str) -> np.ndarray:
    """[channels, joints] bool: the channels each joint reads. ``mapping``: its mapping entry's
    channels; ``kind``: every channel of the kinds (action unit, head, gaze) its entry reads; a
    joint whose entry reads none of ``channels`` reads all of them, as every joint does with ``all``."""
    mask = np.ones((len(channels), len(joints)), bool)
    for k, joint in enumerate(joints):
        own = [c for c in channels if joint in config.mapping and c in config.mapping[joint].weights]
        if inputs == "mapping" and own:
            mask[:, k] = [c in own for c in channels]
        elif inputs == "kind" and own:
            mask[:, k] = [_kind(c) in {_kind(o) for o in own} for c in channels]
    return mask


def fit_mean(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(w, b) of joints = x @ w + b: per joint a ridge fit on its inputs (w 0 on the others)."""
    w, b = np.zeros(mask.shape), np.zeros(y.shape[1])
    for k in range(y.shape[1]):
        cols = mask[:, k]
        (wk, bk), = choose_ridge(x[:, cols], y[:, k:k + 1]).layers
        w[cols, k], b[k] = wk[:, 0], bk[0]
    return w, b


def fit_log_variance(x: np.ndarray, residual: np.ndarray, mask: np.ndarray, steps: int = 2000,
                     learning_rate: float = 0.05, l2: float = 1e-3) -> Tuple[np.ndarray, np.ndarray]:
    """(v, c) of log variance = x @ v + c minimising the Gaussian NLL of the residuals (v 0 outside ``mask``)."""
    mx, sx = _scale(x)
    xs = (x - mx) / sx
    r2 = residual ** 2
    v = np.zeros((x.shape[1], residual.shape[1]))
    c = np.log(r2.mean(axis=0) + 1e-12)
    moments = [np.zeros_like(v), np.zeros_like(v), np.zeros_like(c), np.zeros_like(c)]
    for step in range(1, steps + 1):
        s = xs @ v + c
        ds = 0.5 * (1.0 - r2 * np.exp(-s)) / len(x)  # d NLL / d log variance
        grads = ((xs.T @ ds + l2 * v) * mask, ds.sum(axis=0))
        for i, (param, grad) in enumerate(zip((v, c), grads)):
            m, u = moments[2 * i], moments[2 * i + 1]
            m *= 0.9
            m += 0.1 * grad
            u *= 0.999
            u += 0.001 * grad * grad
            param -= learning_rate * (m / (1 - 0.9 ** step)) / (np.sqrt(u / (1 - 0.999 ** step)) + 1e-8)
    return v / sx[:, None], c - (mx / sx) @ v


def cross_fitted_residuals(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each sample's residual from a mean fitted without its block of samples."""
    residual = np.empty_like(y)
    block = np.minimum(np.arange(len(x)) * FOLDS // len(x), FOLDS - 1)
    for k in range(FOLDS):
        out = block == k
        w, b = fit_mean(x[~out], y[~out], mask)
        residual[out] = y[out] - (x[out] @ w + b)
    return residual


#: L2 penalties of the log-variance weights tried (a large one leaves a constant variance per joint)
L2S = (1e-3, 1e-2, 0.1, 1.0, 10.0)


def choose_log_variance(x: np.ndarray, residual: np.ndarray, mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """fit_log_variance with the L2 penalty of least NLL on a block split, refitted on all samples."""
    train, val = block_split(len(x), 0.2)
    scores = []
    for l2 in L2S:
        v, c = fit_log_variance(x[train], residual[train], mask, l2=l2)
        scores.append(nll(residual[val], 0.0, np.exp(x[val] @ v + c)))
    return fit_log_variance(x, residual, mask, l2=L2S[int(np.argmin(scores))])


def fit_self_model(x: np.ndarray, y: np.ndarray, mask: Optional[np.ndarray] = None) -> SelfModel:
    """The model on samples x [N, channels] -> y [N, joints]; ``mask`` [channels, joints]: which
    channels each joint reads (default all)."""
    mask = np.ones((x.shape[1], y.shape[1]), bool) if mask is None else mask
    w, b = fit_mean(x, y, mask)
    v, c = choose_log_variance(x, cross_fitted_residuals(x, y, mask), mask)
    return SelfModel(w, b, v, c)


def held_out(x: np.ndarray, y: np.ndarray, holdout: float = 0.2, mask: Optional[np.ndarray] = None) -> dict:
    """Errors of a model fitted without a block split's held-out part, on that part: RMSE per
    joint, the mean predicted standard deviation per joint, the NLL against a constant variance,
    and the suggested max_std (MAX_STD_QUANTILE of the predicted standard deviations)."""
    mask = np.ones((x.shape[1], y.shape[1]), bool) if mask is None else mask
    train, test = block_split(len(x), holdout)
    model = fit_self_model(x[train], y[train], mask)
    mean, variance = model.predict(x[test])
    constant = np.broadcast_to(cross_fitted_residuals(x[train], y[train], mask).var(axis=0), variance.shape)
    return {"rmse": rmse(y[test], mean), "predicted_std": np.sqrt(variance).mean(axis=0),
            "nll": nll(y[test], mean, variance), "nll_constant_variance": nll(y[test], mean, constant),
            "max_std": float(np.quantile(np.sqrt(variance), MAX_STD_QUANTILE))}


def to_onnx(model: SelfModel, channels: Sequence[str], joints: Sequence[str], metadata: dict) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(a.astype(np.float32), name)
             for a, name in ((model.w, "W"), (model.b, "B"), (model.v, "V"), (model.c, "C"))]
    nodes = [helper.make_node("MatMul", [INPUT_NAME, "W"], ["mean_mm"]),
             helper.make_node("Add", ["mean_mm", "B"], [OUTPUT_NAME]),
             helper.make_node("MatMul", [INPUT_NAME, "V"], ["logvar_mm"]),
             helper.make_node("Add", ["logvar_mm", "C"], ["logvar"]),
             helper.make_node("Exp", ["logvar"], [VARIANCE_NAME])]
    graph = helper.make_graph(
        nodes, "humimic_self_model", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", len(channels)])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", len(joints)]) for name in (OUTPUT_NAME, VARIANCE_NAME)],
        inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="humimic-self-model", ir_version=IR_VERSION)
    helper.set_model_props(onnx_model, {
        CHANNELS_KEY: json.dumps(list(channels)), JOINTS_KEY: json.dumps(list(joints)),
        "humimic.kind": "self_model_gaussian",
        "humimic.units": json.dumps({OUTPUT_NAME: "rad", VARIANCE_NAME: "rad^2", INPUT_NAME: "channel units"}),
        **metadata})
    onnx.checker.check_model(onnx_model)
    return onnx_model


def main(argv: Optional[List[str]] = None) -> int:
    from humimic_retarget.offline.paired_data import load_paired

    parser = argparse.ArgumentParser(prog="humimic-self-model", description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+", help="babbling JSONL (humimic-babble) or other paired samples")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--robot-config", default=None, help="robot config YAML (default: the package's)")
    parser.add_argument("--holdout", type=float, default=0.2, help="fraction of samples held out for the errors")
    parser.add_argument("--inputs", choices=INPUTS, default="kind",
                        help="mapping: each joint reads its own mapping entry's channels; kind: the channels of "
                             "their kinds (action units, head, gaze); all: every channel")
    args = parser.parse_args(argv)
    try:
        config = load_robot_config(args.robot_config or config_file("robot_face.yaml"))
        data = load_paired(args.data, config.joint_names)
        moving = [i for i in range(data.y.shape[1]) if np.ptp(data.y[:, i]) > 1e-9]
        x, y, joints = data.x, data.y[:, moving], [data.joints[i] for i in moving]
        mask = input_mask(data.channels, joints, config, args.inputs)
        errors = held_out(x, y, args.holdout, mask)
        model = fit_self_model(x, y, mask)
    except (ValueError, OSError) as exc:
        print(f"humimic-self-model: {exc}", file=sys.stderr)
        return 2
    print(f"{len(x)} samples, {len(data.channels)} channels; held-out ({args.holdout:.0%}, contiguous blocks): "
          f"NLL {errors['nll']:.3f} (constant variance: {errors['nll_constant_variance']:.3f})")
    print(f"{'joint':22s} {'RMSE rad':>9s} {'predicted std':>14s}")
    for joint, e, s in zip(joints, errors["rmse"], errors["predicted_std"]):
        print(f"{joint:22s} {e:9.4f} {s:14.4f}")
    print(f"suggested mapping.model.max_std: {errors['max_std']:.3f} rad (the held-out predicted std's "
          f"{MAX_STD_QUANTILE:.0%} quantile)")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(to_onnx(model, data.channels, joints, {
        "humimic.robot": config.name, "humimic.samples": str(len(x)),
        "humimic.holdout_rmse": json.dumps(dict(zip(joints, errors["rmse"].round(6).tolist()))),
        "humimic.inputs": args.inputs, "humimic.max_std": f"{errors['max_std']:.6f}"}), str(path))
    print(f"wrote {path}: in the robot config, mapping: model: {{path: {path.resolve()}}} (the mean; the variance "
          f"is its second output, {VARIANCE_NAME})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
