"""Linear expression-to-joint mapping: target = neutral + offset + sum(weight * shaped channel)."""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from humimic_core.robot_config import RobotConfig


class LinearMapping:
    """The config's per-joint weights as a matrix over ``channels``, joints in servo order."""

    def __init__(self, config: RobotConfig, channels: Sequence[str]) -> None:
        index = {c: i for i, c in enumerate(channels)}
        self.joints = config.joint_names
        self.weights = np.zeros((len(self.joints), len(index)))
        self.base = np.array([s.neutral for s in config.servos])
        for j, joint in enumerate(self.joints):
            entry = config.mapping.joints.get(joint)
            if entry is not None:
                self.base[j] += entry.offset
                for channel, weight in entry.weights.items():
                    self.weights[j, index[channel]] = weight
        self._uses = (self.weights != 0.0).astype(float)
        self._driven = self._uses.any(axis=1)

    def __call__(self, values: np.ndarray, present: np.ndarray, bad: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(targets, valid). A joint is invalid when none of its channels arrived or one is NaN/inf;
        joints driven by no channel are always valid (neutral + offset)."""
        arrived = self._uses @ (present & ~bad) > 0
        poisoned = self._uses @ bad > 0
        return self.base + self.weights @ values, ~self._driven | (arrived & ~poisoned)
