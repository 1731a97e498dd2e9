"""Per-channel response curves: deadband, then piecewise-linear shaping, then gain.

``y = gain * interp(deadband(x))`` where ``deadband(x) = sign(x) * max(|x| - deadband, 0)`` (continuous:
small values vanish, larger ones shift down) and ``interp`` follows the points, flat beyond the
first and last (identity without points).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np


@dataclass(frozen=True)
class Curve:
    deadband: float = 0.0
    gain: float = 1.0
    points: Tuple[Tuple[float, float], ...] = ()

    def shape(self, x: np.ndarray) -> np.ndarray:
        """The curve without its gain, elementwise."""
        y = np.sign(x) * np.maximum(np.abs(x) - self.deadband, 0.0)
        if self.points:
            xs, ys = zip(*self.points)
            y = np.interp(y, xs, ys)
        return y

    @property
    def monotonic(self) -> bool:
        ys = np.array([p[1] for p in self.points])
        return bool(np.all(np.diff(ys) >= 0) or np.all(np.diff(ys) <= 0))

    def invert(self, y: np.ndarray, gain: float) -> np.ndarray:
        """A channel value that the curve (with ``gain``) maps to ``y``; 0 where gain is 0.

        Needs a monotonic curve; values beyond the curve's range land on its ends.
        """
        if not self.monotonic:
            raise ValueError("a curve whose points are not monotonic has no inverse")
        y = np.asarray(y, dtype=float) / gain if gain else np.zeros_like(np.asarray(y, dtype=float))
        if self.points:
            xs, ys = (np.array(v) for v in zip(*self.points))
            if ys[0] > ys[-1]:
                xs, ys = xs[::-1], ys[::-1]
            y = np.interp(y, ys, xs)
        return np.where(y == 0.0, 0.0, np.sign(y) * (np.abs(y) + self.deadband))
