"""Pinhole camera intrinsics: from a field of view, or from a CameraInfo-like K matrix."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

#: Horizontal field of view assumed for a camera that sends no usable calibration (typical webcam).
NOMINAL_HFOV_DEG = 60.0


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole model without distortion; focal lengths and principal point in pixels."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, width: int, height: int, horizontal_fov_deg: float) -> "Intrinsics":
        """Square pixels, principal point at the image centre, focal length from the horizontal FOV."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        if not 0.0 < horizontal_fov_deg < 180.0:
            raise ValueError(f"horizontal_fov_deg must be in (0, 180), got {horizontal_fov_deg}")
        f = (width / 2.0) / math.tan(math.radians(horizontal_fov_deg) / 2.0)
        return cls(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)

    @classmethod
    def from_k(cls, width: int, height: int, k: Sequence[float]) -> "Intrinsics":
        """From a row-major 3x3 K (CameraInfo.k); an unset K (zeros) falls back to the nominal FOV."""
        fx, fy, cx, cy = float(k[0]), float(k[4]), float(k[2]), float(k[5])
        if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0.0 or fy <= 0.0:
            return cls.from_fov(width, height, NOMINAL_HFOV_DEG)
        return cls(width, height, fx, fy, cx, cy)

    def k(self) -> list:
        """Row-major 3x3 camera matrix."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    def p(self) -> list:
        """Row-major 3x4 projection matrix of a monocular camera."""
        return [self.fx, 0.0, self.cx, 0.0, 0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
