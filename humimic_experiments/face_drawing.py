"""A schematic front view of the robot face posed by joint positions, for side-by-side videos.

Draws the joints of the default robot (config/robot_face.yaml) by name: brows (inner/outer),
upper and lower lids, eyes yaw/pitch, jaw, lip corners and the neck (yaw shifts, pitch
squashes, roll rotates the face). Joints the robot lacks stay at their rest pose, so any config
draws; angles are scaled by their joint range so a joint at its limit looks at its limit.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Tuple

import cv2
import numpy as np

from humimic_core.robot_config import RobotConfig

_SKIN, _DARK, _LIP, _WHITE, _BG = (180, 200, 235), (40, 40, 50), (60, 60, 170), (245, 245, 245), (48, 48, 48)


def _normalised(config: RobotConfig, joints: Mapping[str, float], name: str) -> float:
    """Joint position scaled to -1..1 over its range on each side of neutral (0 = neutral)."""
    try:
        servo = config.servo(name)
    except KeyError:
        return 0.0
    value = joints.get(name, servo.neutral)
    if not math.isfinite(value):
        return 0.0
    if value >= servo.neutral:
        span = servo.max - servo.neutral
        return 0.0 if span <= 0 else min(1.0, (value - servo.neutral) / span)
    span = servo.neutral - servo.min
    return 0.0 if span <= 0 else max(-1.0, (value - servo.neutral) / span)


def draw_robot_face(config: RobotConfig, joints: Mapping[str, float], size: Tuple[int, int] = (480, 480),
                    label: Optional[str] = None) -> np.ndarray:
    """A BGR image (height, width) of the face posed by ``joints`` (name -> radians)."""
    h, w = size
    img = np.full((h, w, 3), _BG, np.uint8)
    n = lambda name: _normalised(config, joints, name)  # noqa: E731
    s = min(h, w) / 480.0
    yaw, pitch, roll = n("neck_yaw"), n("neck_pitch"), n("neck_roll")
    cx, cy = w / 2 + 60 * s * yaw, h / 2 + 30 * s * pitch  # its left is our right
    sy = 1.0 - 0.12 * abs(pitch)
    rot = math.radians(-20 * roll)

    def pt(x: float, y: float) -> Tuple[int, int]:
        x, y = x * s, y * s * sy
        return (int(round(cx + x * math.cos(rot) - y * math.sin(rot))),
                int(round(cy + x * math.sin(rot) + y * math.cos(rot))))

    cv2.ellipse(img, pt(0, 0), (int(150 * s), int(190 * s * sy)), math.degrees(rot), 0, 360, _SKIN, -1, cv2.LINE_AA)
    for side, sign in (("left", 1), ("right", -1)):
        # the robot's left is drawn on the image's right (we look at its face)
        ex = 65 * sign
        upper, lower = n(f"upper_lid_{side}"), n(f"lower_lid_{side}")
        cv2.ellipse(img, pt(ex, -30), (int(38 * s), int(24 * s * sy)), math.degrees(rot), 0, 360, _WHITE, -1,
                    cv2.LINE_AA)
        # eyes_yaw + looks to the robot's left (image right), eyes_pitch + looks down
        cv2.circle(img, pt(ex + 16 * n("eyes_yaw"), -30 + 10 * n("eyes_pitch")), int(11 * s), _DARK, -1,
                   cv2.LINE_AA)
        lid_top = -54 + 48 * max(0.0, upper)  # upper lid closes downward as it rises to max
        lid_bottom = -6 - 20 * max(0.0, -lower) + 14 * max(0.0, lower)
        cv2.rectangle(img, pt(ex - 40, -58), pt(ex + 40, lid_top), _SKIN, -1)
        cv2.rectangle(img, pt(ex - 40, lid_bottom), pt(ex + 40, -2), _SKIN, -1)
        cv2.line(img, pt(ex - 38, lid_top), pt(ex + 38, lid_top), _DARK, max(1, int(2 * s)), cv2.LINE_AA)
        inner, outer = n(f"brow_inner_{side}"), n(f"brow_outer_{side}")
        cv2.line(img, pt(20 * sign, -75 - 22 * inner), pt(105 * sign, -80 - 22 * outer), _DARK,
                 max(2, int(7 * s)), cv2.LINE_AA)
    jaw = max(0.0, n("jaw"))
    left, right = n("lip_corner_left"), n("lip_corner_right")
    mouth_y, open_h = 95, 5 + 45 * jaw
    corner_l, corner_r = pt(55, mouth_y - 18 * left), pt(-55, mouth_y - 18 * right)
    top, bottom = pt(0, mouth_y - 4), pt(0, mouth_y + open_h)
    cv2.fillPoly(img, [np.array([corner_r, top, corner_l, bottom], np.int32)], _LIP, cv2.LINE_AA)
    if label:
        cv2.putText(img, label, (10, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * s + 0.2, (220, 220, 220), 1,
                    cv2.LINE_AA)
    return img
