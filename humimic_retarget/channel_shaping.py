"""A frame's channels as the vector the mappings read: mirror image, response curves, gains."""
from __future__ import annotations

from typing import Mapping, Sequence, Tuple

import numpy as np

from humimic_core.channels import mirror_source
from humimic_core.response_curve import Curve


class ChannelShaper:
    """Reads ``channels`` (in this order) from a frame and shapes them.

    ``gains`` (one per channel) and ``mirror`` may be changed between calls.
    """

    def __init__(self, channels: Sequence[str], curves: Mapping[str, Curve], mirror: bool) -> None:
        self.channels = tuple(channels)
        self.gains = np.array([curves[c].gain if c in curves else 1.0 for c in self.channels])
        self._curved = [(i, curves[c]) for i, c in enumerate(self.channels)
                        if c in curves and (curves[c].deadband or curves[c].points)]
        self.mirror = mirror

    @property
    def mirror(self) -> bool:
        return self._mirror

    @mirror.setter
    def mirror(self, value: bool) -> None:
        self._mirror = bool(value)
        self._sources = [mirror_source(c) if value else (c, 1.0) for c in self.channels]

    def shape(self, values: np.ndarray) -> np.ndarray:
        """Values of ``read`` through the response curves and gains (a new array)."""
        values = values.copy()
        for i, curve in self._curved:
            values[i] = curve.shape(values[i])
        return values * self.gains

    def read(self, frame: Mapping[str, float]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values, present, bad): the frame's values of ``channels`` in the mirror image (0 where
        absent or bad), which channels arrived, which arrived as NaN/inf."""
        n = len(self.channels)
        values = np.zeros(n)
        present = np.zeros(n, dtype=bool)
        for i, (source, sign) in enumerate(self._sources):
            value = frame.get(source)
            if value is not None:
                present[i] = True
                values[i] = sign * float(value)
        bad = ~np.isfinite(values)
        values[bad] = 0.0
        return values, present, bad
