"""The schematic robot face responds to its joints."""
from __future__ import annotations

import math

import numpy as np

from humimic_core.paths import config_file
from humimic_core.robot_config import load_robot_config
from humimic_experiments.face_drawing import draw_robot_face

CONFIG = load_robot_config(config_file("robot_face.yaml"))
LIP = np.array([60, 60, 170])


def lip_rows(img: np.ndarray) -> np.ndarray:
    mask = np.all(np.abs(img.astype(int) - LIP) < 10, axis=2)
    return np.nonzero(mask.any(axis=1))[0]


def test_jaw_opens_the_mouth_and_nan_is_neutral():
    closed = draw_robot_face(CONFIG, {})
    opened = draw_robot_face(CONFIG, {"jaw": CONFIG.servo("jaw").max})
    assert len(lip_rows(opened)) > 3 * len(lip_rows(closed))
    assert np.array_equal(draw_robot_face(CONFIG, {"jaw": math.nan}), closed)


def test_neck_yaw_moves_the_face_to_the_robots_left():
    base = draw_robot_face(CONFIG, {})
    turned = draw_robot_face(CONFIG, {"neck_yaw": CONFIG.servo("neck_yaw").max})
    skin = lambda img: np.nonzero(np.any(img != img[0, 0], axis=2))[1].mean()  # noqa: E731
    assert skin(turned) > skin(base) + 20
