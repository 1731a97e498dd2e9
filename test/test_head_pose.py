"""Head pose: recovery of known synthetic poses, a real frontal frame, and the helpers around it."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from humimic_core.paths import media_dir
from humimic_perception.frame_source import FrameSource
from humimic_core.head_frame import FACING_CAMERA, head_angles, rotation_from_angles
from humimic_perception.head_pose import (HEAD_TO_CANONICAL, CanonicalModelError, HeadPoseEstimator, back_project,
                                          canonical_face_model, canonical_triangles, rotation_to_quaternion)
from humimic_perception.intrinsics import Intrinsics
from humimic_perception.landmarks import make_backend

K = Intrinsics.from_fov(640, 480, 60.0)
#: Head frame of a person facing the camera, in the optical frame: forward = -z, left = +x, up = -y.
FRONTAL = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])


def _rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rotation about the head's own x (roll), y (pitch), z (yaw) axes, degrees."""
    r, p, y = (math.radians(a) for a in (roll, pitch, yaw))
    rx = np.array([[1, 0, 0], [0, math.cos(r), -math.sin(r)], [0, math.sin(r), math.cos(r)]])
    ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    rz = np.array([[math.cos(y), -math.sin(y), 0], [math.sin(y), math.cos(y), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _landmarks_of(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Pixel landmarks (468, 3; MediaPipe-style z) of the canonical face at a head pose."""
    cam = canonical_face_model() @ (rotation @ HEAD_TO_CANONICAL.T).T + translation
    u = K.fx * cam[:, 0] / cam[:, 2] + K.cx
    v = K.fy * cam[:, 1] / cam[:, 2] + K.cy
    w = (cam[:, 2] / translation[2] - 1.0) * K.fx
    return np.stack([u, v, w], axis=1)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(np.clip((np.trace(a.T @ b) - 1.0) / 2.0, -1.0, 1.0)))


def test_canonical_model_is_the_mediapipe_face_in_metres():
    model = canonical_face_model()
    assert model.shape == (468, 3)
    assert model[1, 2] == pytest.approx(model[:, 2].max(), abs=0.002)   # nose tip sticks out most
    assert model[263, 0] == pytest.approx(-model[33, 0]) and model[263, 0] > 0.03  # eyes ~9 cm apart
    assert model[10, 1] > model[152, 1] + 0.15  # forehead above chin


@pytest.mark.parametrize("rpy", [(0, 0, 0), (0, 0, 30), (0, 0, -35), (0, 20, 0), (10, -15, 20)])
def test_known_pose_is_recovered(rpy):
    rotation = FRONTAL @ _rpy(*rpy)
    translation = np.array([0.05, -0.03, 0.6])
    pose = HeadPoseEstimator().estimate(_landmarks_of(rotation, translation), K)
    assert pose is not None
    assert _angle_deg(pose.rotation, rotation) < 0.5
    assert np.allclose(pose.translation, translation, atol=0.002)
    assert pose.rms_error_px < 0.1


def test_tracking_follows_a_turning_head_and_nan_resets():
    estimator = HeadPoseEstimator()
    for yaw in range(-30, 31, 10):
        rotation = FRONTAL @ _rpy(0, 0, yaw)
        pose = estimator.estimate(_landmarks_of(rotation, np.array([0.0, 0.0, 0.5])), K)
        assert _angle_deg(pose.rotation, rotation) < 0.5
    assert estimator.estimate(np.full((478, 3), np.nan), K) is None


def test_real_frame_is_roughly_frontal():
    backend = make_backend("mediapipe")
    with FrameSource(str(media_dir() / "single_face.mp4")) as source:
        frame = source.read()
    landmarks = backend.process(frame.image)
    backend.close()
    assert landmarks is not None and landmarks.points.shape == (478, 3)
    intrinsics = Intrinsics.from_fov(landmarks.width, landmarks.height, 60.0)
    pose = HeadPoseEstimator().estimate(landmarks.points, intrinsics)
    assert pose is not None
    assert _angle_deg(pose.rotation, FRONTAL) < 25.0
    assert 0.2 < pose.translation[2] < 1.5
    assert pose.rms_error_px < 8.0


def test_back_projection_inverts_the_projection():
    rotation, translation = FRONTAL @ _rpy(5, 10, 25), np.array([-0.04, 0.02, 0.7])
    points = back_project(_landmarks_of(rotation, translation), K, translation[2])
    expected = canonical_face_model() @ (rotation @ HEAD_TO_CANONICAL.T).T + translation
    assert np.allclose(points, expected, atol=1e-9)


@pytest.mark.parametrize("rpy", [(0, 0, 0), (170, 0, 0), (0, 179, 0), (30, -60, 100)])
def test_quaternion_matches_the_rotation(rpy):
    rotation = _rpy(*rpy)
    x, y, z, w = rotation_to_quaternion(rotation)
    assert w >= 0.0 and x * x + y * y + z * z + w * w == pytest.approx(1.0)
    rvec, _ = cv2.Rodrigues(rotation)
    angle = float(np.linalg.norm(rvec))
    axis = rvec.ravel() / angle if angle > 1e-12 else np.zeros(3)
    expected = np.append(axis * math.sin(angle / 2), math.cos(angle / 2))
    expected = expected if expected[3] >= 0 else -expected
    assert np.allclose((x, y, z, w), expected, atol=1e-9)


def test_canonical_triangles_cover_the_face_as_one_sheet():
    triangles = canonical_triangles()
    assert triangles.shape == (898, 3) and set(np.unique(triangles)) == set(range(468))
    edges = {tuple(sorted(e)) for t in triangles.tolist() for e in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))}
    assert 468 - len(edges) + len(triangles) == 1  # Euler characteristic of a disc


@pytest.mark.parametrize("angles", [(0.0, 0.0, 0.0), (0.4, 0.0, 0.0), (0.0, -0.3, 0.0), (0.0, 0.0, 0.25),
                                    (-0.5, 0.2, -0.1)])
def test_head_angles_invert_rotation_from_angles(angles):
    rotation = rotation_from_angles(*angles)
    assert np.allclose(rotation.T @ rotation, np.eye(3)) and np.linalg.det(rotation) == pytest.approx(1.0)
    assert np.allclose(head_angles(rotation), angles)


def test_head_angle_signs():
    assert np.allclose(FACING_CAMERA, FRONTAL) and np.allclose(head_angles(FRONTAL), 0.0)
    assert rotation_from_angles(0.3, 0.0, 0.0)[0, 0] > 0.0  # yaw +: the nose turns to the person's left (image +x)
    assert rotation_from_angles(0.0, 0.3, 0.0)[1, 0] > 0.0  # pitch +: the nose tips down (image +y)
    assert rotation_from_angles(0.0, 0.0, 0.3)[1, 1] < 0.0  # roll +: the left ear rises, the right one drops


def test_missing_canonical_model_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HUMIMIC_CACHE", str(tmp_path))
    canonical_face_model.cache_clear()
    canonical_triangles.cache_clear()
    try:
        for read in (canonical_face_model, canonical_triangles):
            with pytest.raises(CanonicalModelError, match="tools/fetch_media.py"):
                read()
    finally:
        canonical_face_model.cache_clear()
        canonical_triangles.cache_clear()
