"""Action units from real face video through the real MediaPipe backend, plus the estimator's rules
(neutral capture, scales, NaN safety, invariance to head rotation)."""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from humimic_core.paths import media_dir, shared_media_dir
from humimic_perception.action_units import CODES, SCALES, ActionUnitEstimator, intensity
from humimic_perception.frame_source import FrameSource
from humimic_perception.head_pose import HeadPoseEstimator, back_project
from humimic_perception.intrinsics import Intrinsics
from humimic_perception.landmarks import make_backend
from humimic_perception.perception import FacePerception

NEUTRAL_FRAMES = 10


@lru_cache(maxsize=None)
def _aus(path: Path, frames: int = 10_000) -> np.ndarray:
    """(frames, len(CODES)) intensities of a clip (NaN where no face), neutral from its first frames."""
    perception = FacePerception(make_backend("mediapipe"), NEUTRAL_FRAMES)
    rows = []
    with FrameSource(str(path)) as source:
        for frame in source:
            if frame.index >= frames:
                break
            height, width = frame.image.shape[:2]
            result = perception.process(frame.image, Intrinsics.from_fov(width, height, 60.0))
            rows.append([result.action_units.get(code, np.nan) for code in CODES])
    perception.close()
    return np.array(rows)


def _au(table: np.ndarray, code: str, start: int, stop: int) -> np.ndarray:
    return table[start:stop, CODES.index(code)]


def _shared(name: str) -> Path:
    path = shared_media_dir() / name
    if not path.is_file():
        pytest.skip(f"../shared/media absent: {path} not found")
    return path


@lru_cache(maxsize=None)
def _landmarks(count: int) -> tuple:
    backend = make_backend("mediapipe")
    with FrameSource(str(media_dir() / "single_face.mp4")) as source:
        points = tuple(backend.process(frame.image).points for frame, _ in zip(source, range(count)))
    backend.close()
    return points


def test_single_face_neutral_then_all_codes_in_range():
    table = _aus(media_dir() / "single_face.mp4")
    assert not np.isnan(table).any()  # a face in every frame
    assert (table[:NEUTRAL_FRAMES] == 0.0).all()  # capturing the neutral face
    assert ((table >= 0.0) & (table <= 5.0)).all()
    assert _au(table, "AU12", 30, 72).mean() > 3.0  # he smiles broadly from frame ~20 on
    assert _au(table, "AU12", NEUTRAL_FRAMES, 14).max() < 1.0


def test_sample_video_talking_and_laughing_face():
    table = _aus(media_dir() / "WolfgangLanger_Pexels.mp4", frames=472)
    assert ((np.nan_to_num(table) >= 0.0) & (np.nan_to_num(table) <= 5.0)).all()
    assert _au(table, "AU25", 260, 460).mean() > 2.0  # laughing with the mouth open
    assert _au(table, "AU25", NEUTRAL_FRAMES, 60).mean() < 1.0


def test_mouth_open_raises_lips_part_and_jaw_drop():
    table = _aus(_shared("pucker_then_mouth_open.mp4"))
    start = _au(table, "AU25", NEUTRAL_FRAMES, 18)
    for code in ("AU25", "AU26"):
        opened = _au(table, code, 75, 145)
        assert opened.mean() > 3.0 and opened.mean() > _au(table, code, NEUTRAL_FRAMES, 18).mean() + 2.5, code
    assert start.max() < 1.0
    assert _au(table, "AU26", 20, 45).max() < 2.0  # the pucker pushes the chin down, lips closed


def test_smile_raises_lip_corner_puller():
    table = _aus(_shared("slow_smile_glasses.mp4"))
    smile = _au(table, "AU12", 230, 250)
    assert smile.mean() > 3.0
    assert smile.mean() > _au(table, "AU12", NEUTRAL_FRAMES, 16).mean() + 2.5
    assert _au(table, "AU15", 230, 250).max() < 0.5


def test_blink_frown_and_surprise():
    table = _aus(_shared("blink_frown_surprise.mp4"))
    assert _au(table, "AU45", 44, 52).max() >= 4.0  # eyes shut ~47
    assert np.median(_au(table, "AU45", 24, 34)) < 1.5
    frown = np.concatenate([_au(table, "AU04", 117, 135), _au(table, "AU04", 230, 256)])
    surprise = slice(300, 346)
    assert frown.mean() > 2.5
    assert _au(table, "AU04", surprise.start, surprise.stop).max() < 0.5
    for code in ("AU01", "AU02"):
        assert _au(table, code, surprise.start, surprise.stop).mean() > 2.5, code
        assert _au(table, code, 117, 135).max() < 0.5, code
    assert _au(table, "AU26", surprise.start, surprise.stop).mean() > 1.5


def _turn(points_px: np.ndarray, intrinsics: Intrinsics, axis: int, degrees: float) -> np.ndarray:
    """The same face turned about its own head axis (0 roll, 1 pitch, 2 yaw), as pixel landmarks."""
    pose = HeadPoseEstimator().estimate(points_px, intrinsics)
    t = pose.translation
    head = (back_project(points_px, intrinsics, t[2]) - t) @ pose.rotation
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i, j = [k for k in range(3) if k != axis]
    turn = np.eye(3)
    turn[i, i], turn[i, j], turn[j, i], turn[j, j] = c, -s, s, c
    cam = head @ (pose.rotation @ turn).T + t
    return np.stack([intrinsics.fx * cam[:, 0] / cam[:, 2] + intrinsics.cx,
                     intrinsics.fy * cam[:, 1] / cam[:, 2] + intrinsics.cy,
                     (cam[:, 2] / t[2] - 1.0) * intrinsics.fx], axis=1)


@pytest.mark.parametrize("axis,degrees", [(2, 30), (2, -30), (1, 20), (1, -20), (0, 20)])
def test_head_turn_is_not_an_expression(axis, degrees):
    intrinsics = Intrinsics.from_fov(640, 360, 60.0)
    pose_fit, aus = HeadPoseEstimator(), ActionUnitEstimator(NEUTRAL_FRAMES)

    def update(points_px):
        pose = pose_fit.estimate(points_px, intrinsics)
        return aus.update(back_project(points_px, intrinsics, pose.translation[2]), pose.rotation)

    landmarks = _landmarks(12)
    for points in landmarks[:NEUTRAL_FRAMES]:
        update(points)
    for points in landmarks[NEUTRAL_FRAMES:]:
        turned = update(_turn(points, intrinsics, axis, degrees))
        assert max(turned.values()) < 0.5, turned


def test_nan_landmarks_give_no_nan_and_do_not_enter_the_neutral():
    landmarks = _landmarks(12)
    estimator, rotation = ActionUnitEstimator(2), np.eye(3)
    nan_face = np.full((478, 3), np.nan)
    assert estimator.update(nan_face, rotation) == {code: 0.0 for code in CODES}
    assert not estimator.neutral_ready
    estimator.update(landmarks[0], rotation)
    estimator.update(landmarks[1], rotation)
    assert estimator.neutral_ready
    holes = landmarks[2].copy()
    holes[[13, 14, 61]] = np.nan  # the mouth is missing
    for points, rot in ((nan_face, rotation), (holes, rotation), (landmarks[2], np.full((3, 3), np.nan))):
        out = estimator.update(points, rot)
        assert list(out) == CODES and all(math.isfinite(v) and 0.0 <= v <= 5.0 for v in out.values())


def test_recapture_neutral_reports_zero_while_capturing():
    landmarks = _landmarks(12)
    estimator = ActionUnitEstimator(3)
    for points in landmarks[:3]:
        estimator.update(points, np.eye(3))
    assert estimator.neutral_ready and estimator.neutral_progress == 3
    estimator.recapture_neutral()
    assert not estimator.neutral_ready and estimator.neutral_progress == 0
    assert estimator.update(landmarks[3], np.eye(3)) == {code: 0.0 for code in CODES}
    assert estimator.neutral_progress == 1


def test_scales_map_dead_zone_to_zero_and_full_scale_to_five():
    for code, (dead, full) in SCALES.items():
        assert 0.0 <= dead < full, code
        assert intensity(dead, dead, full) == 0.0
        assert intensity(full, dead, full) == 5.0
        assert intensity((dead + full) / 2, dead, full) == pytest.approx(2.5)
        assert intensity(10 * full, dead, full) == 5.0 and intensity(-full, dead, full) == 0.0
        assert intensity(float("nan"), dead, full) == 0.0
    with pytest.raises(ValueError, match="neutral_frames"):
        ActionUnitEstimator(0)
