"""A grid of robot poses to play while an operator mirrors them (recording sessions for humimic-fit).

Left/right joints (``*_left`` / ``*_right``) move together. The grid starts at neutral, then moves
each joint group alone to ``levels`` evenly spaced positions on each side of neutral (up to its
limits), optionally every two groups together at their ends (``pairs``: jaw with lip corners,
inner with outer brows, ...), then adds ``combos`` random poses mixing groups. Every pose keeps
the couplings.
PosePlayback times the grid: a smooth move into each pose, then a hold whose part after
``settle`` is the recording window.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, product
from typing import Dict, List, Optional, Sequence

import numpy as np

from humimic_core.robot_config import RobotConfig
from humimic_core.settings import Settings, setting
from humimic_retarget.constraints import JointLimits


@dataclass(frozen=True)
class PlaybackSettings(Settings):
    """The pose_playback node's parameters (all read at start)."""

    robot_config: str = setting("", "Robot config YAML; empty = the package's config/robot_face.yaml")
    levels: int = setting(2, "Positions per side of neutral for each joint group", (1, 100))
    combos: int = setting(0, "Random poses mixing joint groups, after the grid", (0, 100000))
    seed: int = setting(0, "Seed of the random poses", (0, 2**31 - 1))
    move_time: float = setting(1.5, "Seconds of the smooth move into each pose", (0.01, 600.0))
    hold_time: float = setting(3.0, "Seconds each pose is held", (0.01, 3600.0))
    settle_time: float = setting(1.0, "Seconds of a hold before its recording window opens", (0.0, 3600.0))
    rate: float = setting(50.0, "Hz of /joint_commands", (1.0, 1000.0))
    record: str = setting("", "JSONL file for the paired samples; empty = record nothing")
    min_subscribers: int = setting(1, "nodes subscribed to /joint_commands (the driver) to wait for before the "
                                      "first pose", (0, 100))
    subscriber_timeout: float = setting(10.0, "seconds to wait for them; then the poses start anyway with a warning",
                                        (0.0, 3600.0))


def joint_groups(joints: Sequence[str]) -> List[List[str]]:
    """Joints in config order, each ``X_left`` together with its ``X_right``."""
    groups: Dict[str, List[str]] = {}
    for joint in joints:
        key = joint[:-5] if joint.endswith("_left") else joint[:-6] if joint.endswith("_right") else joint
        groups.setdefault(key, []).append(joint)
    return list(groups.values())


def pose_grid(config: RobotConfig, levels: int = 2, combos: int = 0, seed: int = 0,
              sides_apart: bool = False, pairs: bool = False) -> List[Dict[str, float]]:
    """The grid; ``sides_apart``: in the random poses each side of a left/right pair moves on its
    own (a wink, a smirk), else both sides together; ``pairs``: also each two groups at once, each
    at either end of its range (four poses a pair)."""
    if levels < 1 or combos < 0:
        raise ValueError(f"levels must be >= 1 and combos >= 0, got {levels}, {combos}")
    joints = config.joint_names
    neutral = np.array([s.neutral for s in config.servos])
    up = np.array([s.max for s in config.servos]) - neutral
    down = neutral - np.array([s.min for s in config.servos])
    limits = JointLimits.from_caps(config.servos, config.constraints.couplings, 1.0, 1.0)
    index = {j: i for i, j in enumerate(joints)}

    def pose(fractions: Dict[int, float]) -> np.ndarray:
        q = neutral.copy()
        for i, f in fractions.items():
            q[i] += f * (up[i] if f > 0 else down[i])
        return limits.feasible_target(q)

    poses = [neutral]

    def add(q: np.ndarray) -> None:
        if not any(np.allclose(q, p) for p in poses):
            poses.append(q)

    steps = [k / levels for k in range(-levels, levels + 1) if k]
    groups = joint_groups(joints)
    for group in groups:
        for f in steps:
            add(pose({index[j]: f for j in group}))
    if pairs:
        for a, b in combinations(groups, 2):
            for fa, fb in product((-1.0, 1.0), repeat=2):
                add(pose({**{index[j]: fa for j in a}, **{index[j]: fb for j in b}}))
    rng = np.random.default_rng(seed)
    for _ in range(combos):
        fractions: Dict[int, float] = {}
        for group in joint_groups(joints):
            for part in ([[j] for j in group] if sides_apart else [group]):
                if rng.random() < 0.5:
                    f = rng.uniform(-1.0, 1.0)
                    fractions.update({index[j]: f for j in part})
        poses.append(pose(fractions))
    return [dict(zip(joints, q.tolist())) for q in poses]


@dataclass
class PlaybackState:
    pose: int                     # index of the pose being moved to or held
    command: Dict[str, float]     # joint angles to command now
    recording: bool               # inside the pose's recording window


class PosePlayback:
    """Where the playback is ``elapsed`` seconds after its start (None once it is over)."""

    def __init__(self, poses: Sequence[Dict[str, float]], move: float, hold: float, settle: float) -> None:
        if not poses:
            raise ValueError("no poses to play")
        if move <= 0 or hold <= 0 or not 0 <= settle < hold:
            raise ValueError(f"need move > 0, hold > 0 and 0 <= settle < hold, got {move}, {hold}, {settle}")
        self.poses, self.move, self.hold, self.settle = list(poses), move, hold, settle

    @property
    def duration(self) -> float:
        return len(self.poses) * (self.move + self.hold)

    def at(self, elapsed: float) -> Optional[PlaybackState]:
        if elapsed >= self.duration:
            return None
        k = int(max(0.0, elapsed) // (self.move + self.hold))
        into = max(0.0, elapsed) - k * (self.move + self.hold)
        target = self.poses[k]
        if into >= self.move:
            return PlaybackState(k, dict(target), into - self.move >= self.settle)
        start = self.poses[k - 1] if k else target
        u = into / self.move
        s = u * u * (3.0 - 2.0 * u)  # smoothstep: starts and ends at rest
        return PlaybackState(k, {j: start[j] + s * (target[j] - start[j]) for j in target}, False)
