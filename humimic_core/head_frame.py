"""The head frame convention shared by perception and retargeting: head yaw/pitch/roll of a head
pose in the camera optical frame, and back.

Perception publishes the head frame (x forward out of the face, y the person's left, z up)
in the camera optical frame (x right, y down, z forward). A person looking straight into the
camera has the rotation FACING_CAMERA. The angles returned are those of the head relative to
that pose, as a robot body frame would state them (REP-103): yaw + turns to the person's own
left, pitch + tips the nose down, roll + tilts the right ear down.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np

#: Rotation of a head that looks straight into the camera, in camera optical coordinates.
FACING_CAMERA = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])


def quaternion_to_matrix(q: Sequence[float]) -> np.ndarray:
    """Rotation matrix of a quaternion (x, y, z, w); normalised first."""
    x, y, z, w = (float(v) for v in q)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if not math.isfinite(n) or n < 1e-9:
        raise ValueError(f"not a rotation quaternion: {tuple(q)}")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def head_angles(rotation: np.ndarray) -> Tuple[float, float, float]:
    """(yaw, pitch, roll) in radians of a head rotation given in camera optical coordinates."""
    rel = FACING_CAMERA.T @ np.asarray(rotation, dtype=float)
    yaw = math.atan2(rel[1, 0], rel[0, 0])
    pitch = math.asin(max(-1.0, min(1.0, -rel[2, 0])))
    roll = math.atan2(rel[2, 1], rel[2, 2])
    return yaw, pitch, roll


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The head rotation in camera optical coordinates of head angles (inverse of head_angles)."""
    cy, sy, cp, sp, cr, sr = (math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch),
                              math.cos(roll), math.sin(roll))
    rel = np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                    [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                    [-sp, cp * sr, cp * cr]])
    return FACING_CAMERA @ rel
