"""Forward model for evaluation: the expression a robot pose shows, in the person's channels.

``ForwardModel.from_config`` inverts the config's linear mapping: least squares from joint angles
to shaped channels (the pseudo-inverse: channels the joints cannot tell apart share the load,
minimum norm), then each channel's response curve and gain backwards, then the mirror image undone. The result
is what a person would have to show for the retargeting to produce these joint angles, directly
comparable with the person's own AUs and head angles. ``ForwardModel.fit`` learns the same
direction from paired recordings instead (ridge regression, joints -> channels).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from humimic_core.robot_config import RobotConfig
from humimic_core.channels import channel_range, mirror_source
from humimic_retarget.offline.fitting import fit_ridge
from humimic_retarget.linear_mapping import LinearMapping
from humimic_core.response_curve import Curve

#: Singular values below this fraction of the largest count as zero in the pseudo-inverse.
_RCOND = 1e-9


class ForwardModel:
    """channels = post(matrix @ (joints - base)); ``post`` undoes curves and mirror where known."""

    def __init__(self, joints: Sequence[str], channels: Sequence[str], matrix: np.ndarray, base: np.ndarray,
                 curves: Optional[Sequence[Curve]] = None, gains: Optional[np.ndarray] = None,
                 mirror: bool = False, offset: Optional[np.ndarray] = None) -> None:
        self.joints, self.matrix, self.base = list(joints), np.asarray(matrix, float), np.asarray(base, float)
        self.offset = np.zeros(len(channels)) if offset is None else np.asarray(offset, float)
        self.curves, self.gains = curves, gains
        for c, curve in zip(channels, curves or ()):
            if not curve.monotonic:
                raise ValueError(f"mapping.curves.{c}: points are not monotonic, the forward model cannot invert it")
        sources = [mirror_source(c) if mirror else (c, 1.0) for c in channels]
        self.channels: List[str] = [name for name, _ in sources]
        self._signs = np.array([sign for _, sign in sources])
        ranges = [channel_range(c) or (-np.inf, np.inf) for c in self.channels]
        self._lo, self._hi = np.array([r[0] for r in ranges]), np.array([r[1] for r in ranges])

    @classmethod
    def from_config(cls, config: RobotConfig, mirror: Optional[bool] = None,
                    gains: Optional[Mapping[str, float]] = None) -> "ForwardModel":
        """The inverse of the config's linear mapping (mirror and gains default to the config's)."""
        channels = config.mapping.channels
        linear = LinearMapping(config, channels)
        matrix = np.linalg.pinv(linear.weights, rcond=_RCOND)
        curves = [config.mapping.curve(c) for c in channels]
        gain = np.array([(gains or {}).get(c, curve.gain) for c, curve in zip(channels, curves)])
        return cls(linear.joints, channels, matrix, linear.base, curves, gain,
                   config.mapping.mirror if mirror is None else mirror)

    @classmethod
    def fit(cls, joints: Sequence[str], channels: Sequence[str], joint_samples: np.ndarray,
            channel_samples: np.ndarray, alpha: float = 1e-3) -> "ForwardModel":
        """Ridge regression from recorded joint angles [N, joints] to recorded channels [N, channels]."""
        model = fit_ridge(np.asarray(joint_samples, float), np.asarray(channel_samples, float), alpha)
        weight, bias = model.layers[0]
        return cls(joints, channels, weight.T, np.zeros(len(joints)), offset=bias)

    def expressions(self, joint_samples: np.ndarray) -> np.ndarray:
        """Channel values [N, channels] for joint angles [N, joints]."""
        y = (np.atleast_2d(joint_samples) - self.base) @ self.matrix.T + self.offset
        if self.curves is not None:
            y = np.column_stack([c.invert(y[:, i], g) for i, (c, g) in enumerate(zip(self.curves, self.gains))])
        return np.clip(y * self._signs, self._lo, self._hi)

    def expression(self, positions: Mapping[str, float]) -> Dict[str, float]:
        """Channel values for one pose (joint -> rad); a joint left out counts as at its base."""
        q = np.array([positions.get(j, b) for j, b in zip(self.joints, self.base)], dtype=float)
        return dict(zip(self.channels, self.expressions(q)[0].tolist()))
