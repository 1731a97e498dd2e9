"""Synthetic paired sessions from a known mapping, for tests, benchmarks and trying humimic-fit.

A session is a person at ``fps`` moving between expression prototypes (FACS action-unit
combinations and eye closures, held 0.8-2.5 s at a random intensity, with smooth onsets), blinking every 2-6 s
(0.1-0.3 s) and turning the head and eyes; the robot's joint angles come from the config's
mapping (same-side) through a soft saturation at the joint limits, plus noise; the AUs as
measured carry noise of their own.

    python -m humimic_retarget.offline.synthetic_pairs out.jsonl --seconds 120
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from humimic_core.paths import config_file
from humimic_core.robot_config import RobotConfig, load_robot_config
from humimic_retarget.expression_mapping import ExpressionMapping
from humimic_retarget.offline.paired_data import jsonl_line

PROTOTYPES: Dict[str, Dict[str, float]] = {
    "neutral": {},
    "smile": {"AU12": 3.5, "AU12_L": 3.5, "AU12_R": 3.5, "AU25": 1.0, "AU45_L": 1.0, "AU45_R": 1.0},
    "laugh": {"AU12": 4.5, "AU12_L": 4.5, "AU12_R": 4.5, "AU25": 3.0, "AU26": 2.5, "AU45_L": 2.5, "AU45_R": 2.5},
    "surprise": {"AU01": 4.0, "AU02": 4.0, "AU05": 3.0, "AU25": 3.0, "AU26": 3.5},
    "frown": {"AU04": 4.0, "AU15": 1.5, "AU15_L": 1.5, "AU15_R": 1.5, "AU45_L": 1.5, "AU45_R": 1.5},
    "sad": {"AU01": 2.5, "AU04": 1.5, "AU15": 3.5, "AU15_L": 3.5, "AU15_R": 3.5},
    "mouth_open": {"AU25": 4.0, "AU26": 4.5},
}
#: A blink closes both eyes: AU45 and each eye's closure.
BLINK = ("AU45", "AU45_L", "AU45_R")
AUS = sorted({au for p in PROTOTYPES.values() for au in p} | set(BLINK))
ANGLES = ("head_yaw", "head_pitch", "head_roll", "gaze_yaw", "gaze_pitch")
#: Amplitude (rad) of the head and gaze motion.
_ANGLE_AMPLITUDE = {"head_yaw": 0.35, "head_pitch": 0.2, "head_roll": 0.12, "gaze_yaw": 0.3, "gaze_pitch": 0.2}


def true_joints(config: RobotConfig, channels: np.ndarray, names: List[str]) -> np.ndarray:
    """The known mapping: the config's mapping (same side) softly saturated at the joint limits."""
    mapping = ExpressionMapping(config)
    mapping.shaper.mirror = False
    lo, hi = (np.array([getattr(s, k) for s in config.servos]) for k in ("min", "max"))
    neutral = np.array([s.neutral for s in config.servos])
    out = np.empty((len(channels), len(config.servos)))
    for i, row in enumerate(channels):
        targets, _ = mapping(dict(zip(names, row)))
        delta = targets - neutral
        room = np.where(delta > 0, hi - neutral, neutral - lo)
        out[i] = neutral + room * np.tanh(delta / np.maximum(room, 1e-9))
    return out


def synthetic_session(config: RobotConfig, seconds: float = 60.0, fps: float = 30.0, seed: int = 0,
                      joint_noise: float = 0.01, au_noise: float = 0.2) -> Tuple[List[str], np.ndarray, np.ndarray]:
    """(channel names, measured channels [N, C], joint angles [N, J] rad)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    names = AUS + list(ANGLES)
    goal = np.zeros((n, len(AUS)))
    i = 0
    while i < n:
        hold = int(rng.uniform(0.8, 2.5) * fps)
        proto = PROTOTYPES[rng.choice(sorted(PROTOTYPES))]
        scale = rng.uniform(0.4, 1.0)
        goal[i:i + hold] = [proto.get(au, 0.0) * scale for au in AUS]
        i += hold
    i = int(rng.uniform(0.5, 3.0) * fps)
    while i < n:
        goal[i:i + max(2, int(rng.uniform(0.1, 0.3) * fps)), [AUS.index(au) for au in BLINK]] = rng.uniform(4.0, 5.0)
        i += int(rng.uniform(2.0, 6.0) * fps)
    aus = np.zeros_like(goal)
    alpha = 1.0 - np.exp(-1.0 / (0.05 * fps))  # onsets with a 50 ms time constant
    for k in range(1, n):
        aus[k] = aus[k - 1] + alpha * (goal[k] - aus[k - 1])
    t = np.arange(n) / fps
    angles = np.column_stack([
        _ANGLE_AMPLITUDE[a] * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))
        * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.01, 0.05) * t)) for a in ANGLES])
    truth = np.column_stack([aus, angles])
    joints = true_joints(config, truth, names) + rng.normal(0.0, joint_noise, (n, len(config.servos)))
    measured = truth.copy()
    measured[:, :len(AUS)] = np.clip(aus + rng.normal(0.0, au_noise, aus.shape), 0.0, 5.0)
    measured[:, len(AUS):] += rng.normal(0.0, 0.01, angles.shape)
    return names, measured, joints


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="JSONL file to write")
    parser.add_argument("--robot-config", default=None, help="robot config YAML (default: the package's)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = load_robot_config(args.robot_config or config_file("robot_face.yaml"))
    names, x, y = synthetic_session(config, args.seconds, seed=args.seed)
    joints = config.joint_names
    Path(args.out).write_text("".join(jsonl_line(dict(zip(names, xr)), dict(zip(joints, yr)), t=k / 30.0) + "\n"
                                      for k, (xr, yr) in enumerate(zip(x.tolist(), y.tolist()))))
    print(f"wrote {len(x)} samples to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
