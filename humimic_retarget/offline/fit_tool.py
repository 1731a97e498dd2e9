"""humimic-fit: fit a learned mapping (ridge and MLP) from paired recordings and export it to ONNX.

    humimic-fit session.jsonl [more.csv bag_folder ...] --out config/face_mapping.onnx

Fits both on a block split of the samples, prints the held-out RMSE per joint, refits the chosen
kind (``--model``, default the lower mean error) on all samples and writes it with its channel
and joint order in the model's metadata. Joints that do not move in the data are left out (the
linear mapping keeps driving them). Point ``mapping.model.path`` of the robot config at the file.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from humimic_core.paths import config_file
from humimic_core.robot_config import ConfigError, load_robot_config
from humimic_core.topics import JOINT_STATES, absolute
from humimic_retarget.learned_mapping import LearnedMapping
from humimic_retarget.offline.fitting import Network, block_split, choose_ridge, fit_mlp, rmse
from humimic_retarget.offline.onnx_export import export_onnx
from humimic_retarget.offline.paired_data import PairedData, load_paired

#: A joint whose recorded angle varies less than this (rad, standard deviation) is not fitted.
MIN_MOTION = 1e-3


@dataclass
class FitResult:
    data: PairedData
    joints: List[str]                   # the fitted joints (those that move)
    holdout_rmse: Dict[str, np.ndarray]  # kind -> held-out RMSE per fitted joint (rad)
    chosen: str
    network: Network                    # the chosen kind, refitted on every sample


def fit(data: PairedData, holdout: float = 0.2, kind: str = "best", hidden: Sequence[int] = (32,),
        epochs: int = 400, seed: int = 0) -> FitResult:
    """Held-out errors of ridge and MLP on a block split; ``kind`` (or the better one) refitted on all samples."""
    trainers = {"ridge": choose_ridge,
                "mlp": lambda x, t: fit_mlp(x, t, hidden=hidden, epochs=epochs, seed=seed)}
    if kind not in (*trainers, "best"):
        raise ValueError(f"unknown model kind {kind!r} (ridge, mlp, best)")
    moving = data.y.std(axis=0) >= MIN_MOTION
    if not moving.any():
        raise ValueError("no joint moves in the data")
    y = data.y[:, moving]
    train, test = block_split(len(data.x), holdout)
    errors = {name: rmse(y[test], train_fn(data.x[train], y[train]).predict(data.x[test]))
              for name, train_fn in trainers.items()}
    chosen = min(errors, key=lambda k: float(np.mean(errors[k]))) if kind == "best" else kind
    return FitResult(data, [j for j, m in zip(data.joints, moving) if m], errors, chosen,
                     trainers[chosen](data.x, y))


def report_table(result: FitResult) -> str:
    kinds = list(result.holdout_rmse)
    lines = [f"{'joint':<20}" + "".join(f"{k + ' rad':>12}{k + ' deg':>10}" for k in kinds)]
    for i, joint in enumerate(result.joints):
        lines.append(f"{joint:<20}" + "".join(
            f"{result.holdout_rmse[k][i]:>12.4f}{math.degrees(result.holdout_rmse[k][i]):>10.2f}" for k in kinds))
    lines.append(f"{'mean':<20}" + "".join(
        f"{np.mean(result.holdout_rmse[k]):>12.4f}{math.degrees(np.mean(result.holdout_rmse[k])):>10.2f}"
        for k in kinds))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="humimic-fit", description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+", help="JSONL / CSV files or rosbag2 folders of paired samples")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--robot-config", default=None, help="robot config YAML (default: the package's)")
    parser.add_argument("--model", default="best", choices=("best", "ridge", "mlp"), help="kind to export")
    parser.add_argument("--holdout", type=float, default=0.2, help="fraction of samples held out for the errors")
    parser.add_argument("--hidden", type=int, nargs="+", default=[32], help="MLP hidden layer sizes")
    parser.add_argument("--epochs", type=int, default=400, help="MLP training epochs (at most)")
    parser.add_argument("--seed", type=int, default=0, help="MLP initialisation and shuffling seed")
    parser.add_argument("--joint-topic", default=absolute(JOINT_STATES), help="bags: topic of the joint angles")
    parser.add_argument("--report", default=None, help="also write the held-out errors as JSON here")
    args = parser.parse_args(argv)
    try:
        config = load_robot_config(args.robot_config or config_file("robot_face.yaml"))
        data = load_paired(args.data, config.joint_names, args.joint_topic)
        result = fit(data, args.holdout, args.model, args.hidden, args.epochs, args.seed)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"humimic-fit: {exc}", file=sys.stderr)
        return 2
    print(f"{len(data.x)} samples ({data.dropped} dropped), channels: {', '.join(data.channels)}")
    unfitted = [j for j in data.joints if j not in result.joints]
    if unfitted:
        print(f"not moving in the data, left to the linear mapping: {', '.join(unfitted)}")
    print(f"held-out RMSE per joint ({args.holdout:.0%} of the samples, contiguous blocks):")
    print(report_table(result))
    errors = {k: dict(zip(result.joints, v.round(6).tolist())) for k, v in result.holdout_rmse.items()}
    path = export_onnx(result.network, data.channels, result.joints, args.out, {
        "humimic.robot": config.name, "humimic.samples": str(len(data.x)),
        "humimic.holdout_rmse": json.dumps(errors[result.chosen])})
    check = data.x[: min(64, len(data.x))]
    loaded = LearnedMapping(path, config.joint_names)
    parity = max(float(np.max(np.abs(loaded(row) - result.network.predict(row[None])[0]))) for row in check)
    print(f"wrote {path}: {result.chosen} refitted on all samples, ONNX Runtime ({loaded.providers[0]}) vs "
          f"numpy max difference {parity:.2e} rad")
    print(f"use it: in the robot config, mapping: model: {{path: {path.resolve()}}}")
    if args.report:
        Path(args.report).write_text(json.dumps({"chosen": result.chosen, "samples": len(data.x),
                                                 "dropped": data.dropped, "channels": data.channels,
                                                 "holdout_rmse": errors, "onnx_parity": parity}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
