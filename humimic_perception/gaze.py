"""Gaze per eye from the iris centre's offset from the eye corners, in the head frame.

Each eyeball is taken as a sphere turning about its centre; the iris centre (landmarks 468 right,
473 left) sits EYE_RADIUS in front of it. Its offset from the midpoint of the eye's corners, in the
head-pose-normalised face frame of humimic_perception.action_units (IOD units: iris_y_R/L lateral,
iris_z_R/L height), less the offset of an eye looking straight ahead (REST_LATERAL to the temporal
side, REST_HEIGHT above the corner line), gives the eye's angles:

    yaw   = asin((lateral offset - rest) / EYE_RADIUS)     + = toward the person's own left
    pitch = asin(-(height offset - rest) / EYE_RADIUS)     + = looking down

in radians in the head frame (x forward, y left, z up). The combined gaze is the mean of both eyes
(vergence and the rest offsets cancel in it). The constants are anatomical: an iris centre about
10 mm in front of the eye's centre of rotation with an IOD of about 63 mm; the rest offsets are
those measured on people looking into the camera in the sample clips (head pose known). Absolute
accuracy is a few degrees; the signs and the change with eye movements are what count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from humimic_perception.action_units import INDEX

#: Distance of the iris centre from the eyeball's centre of rotation (IOD).
EYE_RADIUS = 0.16
#: Lateral offset of a straight-ahead iris from the eye-corner midpoint, to the temporal side (IOD).
REST_LATERAL = 0.015
#: Height of a straight-ahead iris over the eye-corner line (IOD).
REST_HEIGHT = 0.027
_COLUMNS = np.array([INDEX[name] for name in ("iris_y_R", "iris_z_R", "iris_y_L", "iris_z_L")])
#: Rest offsets in the order of _COLUMNS (the right eye's temporal side is -y).
_REST = np.array([-REST_LATERAL, REST_HEIGHT, REST_LATERAL, REST_HEIGHT])
_SIGN = np.array([1.0, -1.0, 1.0, -1.0])


@dataclass(frozen=True)
class Gaze:
    """Eye angles in radians in the head frame: (yaw, pitch) of each eye and their mean."""

    right: Tuple[float, float]
    left: Tuple[float, float]

    @property
    def combined(self) -> Tuple[float, float]:
        return (self.right[0] + self.left[0]) * 0.5, (self.right[1] + self.left[1]) * 0.5

    def as_array(self) -> np.ndarray:
        """(right yaw, right pitch, left yaw, left pitch)."""
        return np.array([*self.right, *self.left])

    @classmethod
    def from_array(cls, values: np.ndarray) -> "Gaze":
        return cls((float(values[0]), float(values[1])), (float(values[2]), float(values[3])))


def estimate_gaze(features: np.ndarray) -> Optional[Gaze]:
    """Gaze of a face's feature vector (humimic_perception.action_units.measure); None when the
    iris or eye-corner features are not finite."""
    offsets = features[_COLUMNS]
    if not np.isfinite(offsets).all():
        return None
    return Gaze.from_array(np.arcsin(np.clip(_SIGN * (offsets - _REST) / EYE_RADIUS, -1.0, 1.0)))


def direction(yaw: float, pitch: float) -> np.ndarray:
    """Unit gaze vector in the head frame (x forward, y left, z up)."""
    return np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), -math.sin(pitch)])
