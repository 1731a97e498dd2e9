"""Real face landmarks turned synthetically about the head's own axes, for invariance tests."""
from __future__ import annotations

import math

import numpy as np

from humimic_perception.head_pose import HeadPoseEstimator, back_project
from humimic_perception.intrinsics import Intrinsics


def turn(points_px: np.ndarray, intrinsics: Intrinsics, axis: int, degrees: float) -> np.ndarray:
    """The same face turned about its own head axis (0 roll, 1 pitch, 2 yaw), as pixel landmarks."""
    pose = HeadPoseEstimator().estimate(points_px, intrinsics)
    t = pose.translation
    head = (back_project(points_px, intrinsics, t[2]) - t) @ pose.rotation
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i, j = [k for k in range(3) if k != axis]
    rotation = np.eye(3)
    rotation[i, i], rotation[i, j], rotation[j, i], rotation[j, j] = c, -s, s, c
    cam = head @ (pose.rotation @ rotation).T + t
    return np.stack([intrinsics.fx * cam[:, 0] / cam[:, 2] + intrinsics.cx,
                     intrinsics.fy * cam[:, 1] / cam[:, 2] + intrinsics.cy,
                     (cam[:, 2] / t[2] - 1.0) * intrinsics.fx], axis=1)
