"""Retargeting logic: linear mapping, limits, velocity limiting, face loss, head angles."""
from __future__ import annotations

import math

import numpy as np
import pytest

from humimic_core.paths import config_file
from humimic_core.robot_config import load_robot_config
from humimic_retarget.head_angles import FACING_CAMERA, head_angles, quaternion_to_matrix
from humimic_retarget.linear_mapping import map_channels
from humimic_retarget.retargeter import Retargeter, RetargetParams


@pytest.fixture(scope="module")
def config():
    return load_robot_config(config_file("robot_face.yaml"))


def within_limits(config, command):
    return all(config.servo(j).min <= v <= config.servo(j).max for j, v in command.items())


def test_linear_mapping_weights_and_neutral(config):
    targets = map_channels(config, {"AU26": 2.0, "AU25": 1.0})
    jaw = config.mapping["jaw"].weights
    assert targets["jaw"] == pytest.approx(config.servo("jaw").neutral + 2.0 * jaw["AU26"] + 1.0 * jaw["AU25"])
    assert targets["neck_yaw"] == config.servo("neck_yaw").neutral
    assert math.isnan(map_channels(config, {"AU26": math.nan})["jaw"])


def test_velocity_limit_and_clamp(config):
    r = Retargeter(config, RetargetParams(max_velocity=1.0))
    r.update(0.0, {"AU26": 0.0})
    out = r.update(0.1, {"AU26": 5.0})
    assert out["jaw"] == pytest.approx(0.1, abs=1e-9)  # 1 rad/s * 0.1 s
    for k in range(2, 40):
        out = r.update(0.1 * k, {"AU26": 5.0, "AU25": 5.0, "head_yaw": 50.0})
    assert out["jaw"] == pytest.approx(config.servo("jaw").max)
    assert out["neck_yaw"] == pytest.approx(config.servo("neck_yaw").max)
    assert within_limits(config, out)


def test_long_gap_is_not_a_jump(config):
    r = Retargeter(config, RetargetParams(max_velocity=1.0, face_lost_timeout=100.0))
    r.update(0.0, {"AU26": 0.0})
    out = r.update(60.0, {"AU26": 5.0})
    assert out["jaw"] <= 0.2 + 1e-9


def test_face_lost_holds_then_glides_to_neutral(config):
    p = RetargetParams(max_velocity=10.0, neutral_velocity=0.5, face_lost_timeout=0.3)
    r = Retargeter(config, p)
    t = 0.0
    for _ in range(30):
        held = r.update(t, {"AU26": 5.0, "AU12": 5.0})
        t += 0.05
    assert held["jaw"] == pytest.approx(config.servo("jaw").clamp(map_channels(config, {"AU26": 5.0})["jaw"]))
    assert held["jaw"] > config.servo("jaw").neutral + 0.2
    assert r.update(t, None) == held  # within the timeout: hold
    t += 0.05
    positions = []
    for _ in range(80):
        t += 0.05
        positions.append(r.update(t, None)["jaw"])
    assert all(b <= a + 1e-12 for a, b in zip(positions, positions[1:]))
    steps = np.diff(positions)
    assert np.all(np.abs(steps) <= 0.5 * 0.05 + 1e-9)
    assert positions[-1] == pytest.approx(config.servo("jaw").neutral)


def test_nan_input_holds_joint(config):
    r = Retargeter(config, RetargetParams())
    r.update(0.0, {"AU26": 1.0})
    before = r.update(0.1, {"AU26": 1.0})
    after = r.update(0.2, {"AU26": math.nan, "AU12": 2.0})
    assert after["jaw"] == before["jaw"]
    assert after["lip_corner_left"] > before["lip_corner_left"]


def test_bad_params_refused(config):
    with pytest.raises(ValueError, match="max_velocity"):
        Retargeter(config, RetargetParams(max_velocity=0.0))
    with pytest.raises(ValueError, match="face_lost_timeout"):
        Retargeter(config, RetargetParams(face_lost_timeout=math.nan))


def rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def matrix_to_quaternion(m):
    w = math.sqrt(max(0.0, 1 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
    return ((m[2, 1] - m[1, 2]) / (4 * w), (m[0, 2] - m[2, 0]) / (4 * w), (m[1, 0] - m[0, 1]) / (4 * w), w)


@pytest.mark.parametrize("head_axis, index", [((0, 0, 1), 0), ((0, 1, 0), 1), ((1, 0, 0), 2)])
def test_head_angles_in_the_head_frame(head_axis, index):
    # a rotation about the head's own axis (z up: yaw, y left: pitch, x forward: roll)
    for angle in (-0.4, 0.25):
        r = FACING_CAMERA @ rotation(head_axis, angle)
        angles = head_angles(quaternion_to_matrix(matrix_to_quaternion(r)))
        expected = [0.0, 0.0, 0.0]
        expected[index] = angle
        assert angles == pytest.approx(expected, abs=1e-9)


def test_turning_to_own_left_is_positive_yaw():
    # the person turns to their left: their nose (head x) swings toward the camera's +x (image right)
    r = FACING_CAMERA @ rotation((0, 0, 1), 0.3)
    nose_in_camera = r @ np.array([1.0, 0.0, 0.0])
    assert nose_in_camera[0] > 0 and head_angles(r)[0] > 0


def test_degenerate_quaternion_refused():
    with pytest.raises(ValueError):
        quaternion_to_matrix((0, 0, 0, 0))
