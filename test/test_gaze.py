"""Gaze: signs from synthetic iris moves on real landmarks, invariance to head turns, and real eyes
looking ahead, down, up and sideways."""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from humimic_core.paths import media_dir, shared_media_dir
from humimic_perception.action_units import measure
from humimic_perception.frame_source import FrameSource
from humimic_perception.gaze import EYE_RADIUS, direction, estimate_gaze
from humimic_perception.head_pose import HeadPoseEstimator, back_project
from humimic_perception.intrinsics import Intrinsics
from humimic_perception.landmarks import make_backend
from humimic_perception.perception import FacePerception

from face_turn import turn

K = Intrinsics.from_fov(640, 360, 60.0)
IRISES = list(range(468, 478))


@lru_cache(maxsize=None)
def _gaze(path: Path, frames: int) -> np.ndarray:
    """(frames, 6) degrees: right yaw, pitch, left yaw, pitch, combined yaw, pitch (NaN: no face)."""
    perception = FacePerception(make_backend("mediapipe"))
    rows = []
    with FrameSource(str(path)) as source:
        for frame, _ in zip(source, range(frames)):
            height, width = frame.image.shape[:2]
            gaze = perception.process(frame.image, Intrinsics.from_fov(width, height, 60.0)).gaze
            rows.append([*gaze.right, *gaze.left, *gaze.combined] if gaze else [np.nan] * 6)
    perception.close()
    return np.degrees(np.array(rows))


@lru_cache(maxsize=1)
def _frame() -> tuple:
    """Metric landmarks and head rotation of a real frontal frame."""
    backend = make_backend("mediapipe")
    with FrameSource(str(media_dir() / "single_face.mp4")) as source:
        points_px = backend.process(source.read().image).points
    backend.close()
    pose = HeadPoseEstimator().estimate(points_px, K)
    return points_px, back_project(points_px, K, pose.translation[2]), pose.rotation


def _iod(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[[263, 362]].mean(axis=0) - points[[33, 133]].mean(axis=0)))


@pytest.mark.parametrize("axis,sign,angle", [(1, 1.0, 0), (1, -1.0, 0), (2, -1.0, 1), (2, 1.0, 1)])
def test_iris_moves_give_the_documented_signs(axis, sign, angle):
    """Irises moved along the head's y (person's left) raise yaw; moved down (-z) raise pitch."""
    _, points, rotation = _frame()
    before = estimate_gaze(measure(points, rotation))
    step = 0.03 * _iod(points)
    moved = points.copy()
    moved[IRISES] += sign * step * rotation[:, axis]
    after = estimate_gaze(measure(moved, rotation))
    expected = (sign if axis == 1 else -sign) * 0.03 / EYE_RADIUS  # change of the angle's sine
    for eye in ("right", "left"):
        change = math.sin(getattr(after, eye)[angle]) - math.sin(getattr(before, eye)[angle])
        assert change == pytest.approx(expected, rel=1e-6), eye
        assert getattr(after, eye)[1 - angle] == pytest.approx(getattr(before, eye)[1 - angle], abs=1e-9)


@pytest.mark.parametrize("axis,degrees", [(2, 30), (2, -30), (1, 20), (1, -20), (0, 20)])
def test_head_turn_leaves_the_gaze_in_the_head_frame(axis, degrees):
    points_px, _, _ = _frame()

    def gaze_of(pixels):
        pose = HeadPoseEstimator().estimate(pixels, K)
        return np.degrees(estimate_gaze(measure(back_project(pixels, K, pose.translation[2]), pose.rotation))
                          .combined)

    assert np.abs(gaze_of(turn(points_px, K, axis, degrees)) - gaze_of(points_px)).max() < 2.0


def test_talking_woman_looks_roughly_ahead_then_down():
    gaze = _gaze(media_dir() / "WolfgangLanger_Pexels.mp4", 300)
    ahead, down = gaze[200:300], gaze[0:10]  # she faces the camera / looks down at the start
    assert np.abs(np.nanmedian(ahead[:, 4:], axis=0)).max() < 12.0
    assert np.nanmedian(down[:, 5]) > np.nanmedian(ahead[:, 5]) + 5.0


def test_eyes_turning_sideways_down_and_up():
    path = shared_media_dir() / "blink_frown_surprise.mp4"
    if not path.is_file():
        pytest.skip(f"../shared/media absent: {path} not found")
    gaze = _gaze(path, 354)
    yaw, pitch = gaze[:, 4], gaze[:, 5]
    assert abs(np.median(yaw[182:190])) < 8.0 and abs(np.median(pitch[182:190])) < 8.0  # into the camera
    assert np.median(yaw[324:331]) > 25.0  # eyes far to her left
    assert np.median(yaw[196:206]) < -10.0  # to her right
    assert np.median(pitch[63:100]) > 5.0  # down
    assert np.median(pitch[346:354]) < -5.0  # up
    assert np.all(np.sign(gaze[324:331, [0, 2]]) > 0)  # each eye too


def test_direction_is_a_unit_vector_with_the_head_axes():
    assert np.allclose(direction(0.0, 0.0), [1.0, 0.0, 0.0])
    assert direction(0.3, 0.0)[1] > 0.0 and direction(0.0, 0.3)[2] < 0.0  # left, down
    assert np.linalg.norm(direction(0.4, -0.2)) == pytest.approx(1.0)


def test_missing_iris_gives_no_gaze():
    _, points, rotation = _frame()
    holes = points.copy()
    holes[473] = np.nan
    assert estimate_gaze(measure(holes, rotation)) is None
