#!/usr/bin/env python3
"""How jittery the robot's face is on the servos' positions, against the person's own signal.

Retargets each re-run of `humimic-eval` (its `reruns/` folder) with the shipped retarget and forecast
settings and the given robot config, drives the commands through the live driver's code over emulated
servos (humimic_experiments.driven, as `humimic-anticipation` does) and compares, per joint, the
achieved position on the frames with the person's raw landmark signal it imitates (the pairing of
config/fidelity.yaml; humimic_experiments.kinematic), over the frames where both exist:

- direction reversals per second: turns of the signal larger than 5 % of its 5-95 % range (a zigzag
  with that hysteresis, so a still signal's noise below it does not count);
- high-frequency energy: mean squared second difference over the variance (white noise 6, a
  smooth movement near 0), the clips' median.

The person's landmarks carry the tracker's noise as well as the movement, so their figures bound what
the robot's may reach: more reversals than the person's would be jitter the person did not make.

    python tools/bench_jitter.py out/eval/reruns [--robot-config config/robot_face.yaml]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from humimic_core.parameters import node_parameters  # noqa: E402
from humimic_core.paths import config_file  # noqa: E402
from humimic_core.robot_config import load_robot_config  # noqa: E402
from humimic_experiments import anticipation, driven, evaluate, kinematic  # noqa: E402
from humimic_retarget.forecast import forecast_settings  # noqa: E402
from humimic_retarget.retargeter import RetargetParams  # noqa: E402

#: Groups measured: every group of config/fidelity.yaml's pairing but the neck's.
GROUPS = ("jaw", "upper_lids", "lip_corners", "eye_yaw", "eye_pitch", "brows")
#: A reversal is a turn larger than this fraction of the signal's 5-95 % range.
TURN = 0.05


def reversals(x: np.ndarray, turn: float = TURN) -> int:
    """Direction reversals of ``x`` larger than ``turn`` of its 5-95 % range."""
    if x.size < 3:
        return 0
    low, high = np.percentile(x, [5, 95])
    threshold = turn * max(high - low, 1e-12)
    count, direction, extreme = 0, 0, x[0]
    for v in x[1:]:
        if direction == 0:
            if abs(v - extreme) > threshold:
                direction, extreme = (1 if v > extreme else -1), v
        elif direction * (v - extreme) > 0:
            extreme = v
        elif direction * (extreme - v) > threshold:
            count, direction, extreme = count + 1, -direction, v
    return count


def roughness(x: np.ndarray) -> float:
    """Mean squared second difference over the variance (NaN for a flat or short signal)."""
    if x.size < 5 or np.var(x) < 1e-18:
        return float("nan")
    return float(np.mean(np.diff(x, 2) ** 2) / np.var(x))


def measure(reruns: Path, robot_config: Path) -> Dict[str, Dict[str, float]]:
    """Per group: reversals per second and median roughness of the robot's positions and the person's."""
    params_file = config_file("humimic.yaml")
    values = node_parameters(params_file, "retarget")
    params, settings = RetargetParams.from_parameters(values), forecast_settings(values)
    config = load_robot_config(robot_config)
    mirror = config.mapping.mirror if params.mirror is None else bool(params.mirror)
    pairs = [p for p in evaluate.load_pairing(config_file("fidelity.yaml"), config, mirror).pairs if p.group in GROUPS]
    turns: Dict[str, List[float]] = {g: [0.0, 0.0, 0.0] for g in GROUPS}  # robot, person, seconds
    rough: Dict[str, Tuple[List[float], List[float]]] = {g: ([], []) for g in GROUPS}
    for folder in sorted(p for p in reruns.iterdir() if (p / "metrics.json").is_file()):
        clip = anticipation.load_clip(folder)
        commands, _ = anticipation.retarget(clip, config, params, settings)
        positions = driven.achieved(config, params_file, clip.recording.stamps, commands)
        signals = kinematic.geometry(clip.recording.points, clip.recording.rotations)
        for pair in pairs:
            robot, person = positions[pair.joint], signals[pair.signal]
            both = np.isfinite(robot) & np.isfinite(person)
            if both.sum() < 5:
                continue
            robot, person = robot[both], person[both]
            t = turns[pair.group]
            t[0] += reversals(robot)
            t[1] += reversals(person)
            t[2] += robot.size / clip.recording.fps
            rough[pair.group][0].append(roughness(robot))
            rough[pair.group][1].append(roughness(person))
    return {g: {"reversals_per_s_robot": t[0] / t[2], "reversals_per_s_person": t[1] / t[2],
                "roughness_robot": float(np.nanmedian(rough[g][0])),
                "roughness_person": float(np.nanmedian(rough[g][1]))} for g, t in turns.items() if t[2] > 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reruns", type=Path, help="humimic-eval's reruns/ folder")
    parser.add_argument("--robot-config", type=Path, default=config_file("robot_face.yaml"))
    args = parser.parse_args()
    print(f"{'group':10s} reversals/s robot  person   roughness robot  person")
    for group, f in measure(args.reruns, args.robot_config).items():
        print(f"{group:10s} {f['reversals_per_s_robot']:17.2f} {f['reversals_per_s_person']:7.2f} "
              f"{f['roughness_robot']:16.3f} {f['roughness_person']:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
