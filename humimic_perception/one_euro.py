"""One-Euro filter (Casiez, Roussel and Vogel, CHI 2012): a low-pass filter whose cutoff rises
with the signal's speed, so a still signal loses its jitter and a moving one keeps little lag.

Per sample at time t (seconds) with dt since the last one, elementwise over a vector:

    alpha(fc)  = 1 / (1 + 1 / (2 pi fc dt))
    dx_hat     = alpha(d_cutoff) * (x - x_hat_prev) / dt + (1 - alpha(d_cutoff)) * dx_hat_prev
    cutoff     = min_cutoff + beta * |dx_hat|
    x_hat      = alpha(cutoff) * x + (1 - alpha(cutoff)) * x_hat_prev

The first sample, and any sample whose time is not after the last one (a replay starting over),
starts the filter afresh: it is passed through unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class OneEuroParams:
    """min_cutoff (Hz, > 0): cutoff of a still signal; beta (>= 0, per unit of the signal's
    speed): how fast the cutoff rises with speed; d_cutoff (Hz, > 0): cutoff of the speed."""

    min_cutoff: float
    beta: float
    d_cutoff: float

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "beta", "d_cutoff"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0.0 or (value == 0.0 and name != "beta"):
                raise ValueError(f"One-Euro {name} must be {'>= 0' if name == 'beta' else '> 0'}, got {value}")


def _alpha(cutoff, dt: float):
    return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * dt))


class OneEuroFilter:
    """One-Euro filter of a finite vector signal sampled at increasing times."""

    def __init__(self, params: OneEuroParams) -> None:
        self.params = params
        self._t: Optional[float] = None
        self._x: Optional[np.ndarray] = None
        self._dx: Optional[np.ndarray] = None

    def reset(self) -> None:
        self._t = None

    def __call__(self, t: float, x: np.ndarray) -> np.ndarray:
        """The filtered value of sample ``x`` at time ``t`` (s); ValueError when x is not finite."""
        x = np.asarray(x, dtype=np.float64)
        if not np.isfinite(x).all():
            raise ValueError(f"One-Euro filter input must be finite, got {x}")
        if self._t is None or not t > self._t or self._x is None or self._x.shape != x.shape:
            self._t, self._x, self._dx = t, x.copy(), np.zeros_like(x)
            return x.copy()
        p, dt = self.params, t - self._t
        a_d = _alpha(p.d_cutoff, dt)
        self._dx = a_d * (x - self._x) / dt + (1.0 - a_d) * self._dx
        a = _alpha(p.min_cutoff + p.beta * np.abs(self._dx), dt)
        self._x = a * x + (1.0 - a) * self._x
        self._t = t
        return self._x.copy()
