"""The perception pipeline with One-Euro smoothing on real video: steadier output, blinks kept,
deterministic with the frame stamps as time; and its parameter mapping."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from humimic_bringup.graph import node_parameters
from humimic_core.paths import config_file, shared_media_dir
from humimic_perception.action_units import CODES
from humimic_perception.frame_source import FrameSource
from humimic_core.head_frame import head_angles
from humimic_perception.intrinsics import Intrinsics
from humimic_perception.landmarks import make_backend
from humimic_perception.one_euro import OneEuroFilter, OneEuroParams
from humimic_perception.perception import FacePerception, Smoothing
from humimic_perception.settings import PerceptionSettings

SMOOTHING = Smoothing(OneEuroParams(2.0, 0.5, 1.0), OneEuroParams(1.0, 5.0, 1.0), OneEuroParams(1.0, 5.0, 1.0),
                      OneEuroParams(4.0, 2.0, 4.0))
EPOCH = 1_700_000_000.0


def _clip(name: str) -> Path:
    path = shared_media_dir() / name
    if not path.is_file():
        pytest.skip(f"../shared/media absent: {path} not found")
    return path


@lru_cache(maxsize=None)
def _run(path: Path, frames: int, smoothing: Optional[Smoothing], neutral_frames: int = 10) -> np.ndarray:
    """(frames, 17 AUs + head yaw, pitch, roll + combined gaze yaw, pitch) per frame with a face."""
    perception = FacePerception(make_backend("mediapipe"), neutral_frames, smoothing)
    rows = []
    with FrameSource(str(path)) as source:
        for frame, _ in zip(source, range(frames)):
            height, width = frame.image.shape[:2]
            result = perception.process(frame.image, Intrinsics.from_fov(width, height, 60.0),
                                        EPOCH + frame.media_time)
            assert result.face and set(result.timings_ms) >= {"landmarks", "pose", "aus", "gaze"}
            assert ("smooth" in result.timings_ms) == (smoothing is not None)
            rows.append([*(result.action_units[c] for c in CODES), *head_angles(result.head_pose.rotation),
                         *result.gaze.combined])
    perception.close()
    return np.array(rows)


def _jitter(values: np.ndarray) -> np.ndarray:
    return np.std(np.diff(values, axis=0), axis=0)


def test_smoothing_steadies_a_still_face():
    path = _clip("neutral_webcam_1080p.mp4")
    raw, smooth = _run(path, 104, None), _run(path, 104, SMOOTHING)
    head, gaze = slice(17, 20), slice(20, 22)
    assert (_jitter(smooth[10:, head]) < 0.5 * _jitter(raw[10:, head])).all()
    assert (_jitter(smooth[10:, gaze]) < 0.5 * _jitter(raw[10:, gaze])).all()
    assert np.abs(smooth[15:, :17] - raw[15:, :17]).max() < 0.5  # AUs near 0 either way, once the neutral settles
    assert np.abs(np.median(smooth[10:, 17:] - raw[10:, 17:], axis=0)).max() < np.radians(0.5)  # no bias


def test_smoothing_keeps_blinks_and_expressions():
    path = _clip("blink_frown_surprise.mp4")
    raw, smooth = _run(path, 140, None, 5), _run(path, 140, SMOOTHING, 5)
    blink = CODES.index("AU45")
    assert smooth[44:56, blink].max() > 4.0 and smooth[44:56, blink].max() > raw[44:56, blink].max() - 0.5
    frown = CODES.index("AU04")
    assert smooth[117:140, frown].mean() > 3.0
    assert ((smooth[:, :17] >= 0.0) & (smooth[:, :17] <= 5.0)).all()


def test_eye_closures_have_a_quicker_filter_than_the_other_aus():
    """A blink (shut for 3 frames at 30 fps): the eye-closure filter follows it within a frame, where
    the AU filter would still be closed a frame after the eye opened (a late, shallow robot blink)."""
    blink = [0.0, 0.0, 0.0, 2.0, 5.0, 5.0, 5.0, 0.0, 0.0]
    eye, other = OneEuroFilter(SMOOTHING.eyelids), OneEuroFilter(SMOOTHING.action_units)
    eyes = [float(eye(EPOCH + k / 30.0, np.array([x]))[0]) for k, x in enumerate(blink)]
    others = [float(other(EPOCH + k / 30.0, np.array([x]))[0]) for k, x in enumerate(blink)]
    assert eyes[4] > 4.5 and eyes[7] < 0.5
    assert others[4] < 4.5 and others[7] > 2.0


def test_smoothed_output_is_deterministic():
    path = _clip("pucker_then_mouth_open.mp4")
    first = _run(path, 60, SMOOTHING)
    _run.cache_clear()
    assert np.array_equal(_run(path, 60, SMOOTHING), first)


def test_smoothing_needs_the_stamp():
    perception = FacePerception(make_backend("mediapipe"), smoothing=SMOOTHING)
    try:
        with pytest.raises(ValueError, match="stamp"):
            perception.process(np.zeros((64, 64, 3), np.uint8), Intrinsics.from_fov(64, 64, 60.0))
    finally:
        perception.close()


def test_smoothing_from_parameters():
    """The smoothing settings from parameter values by name (the node's and the re-run's one way)."""
    def smoothing_from(values):
        return PerceptionSettings.from_parameters(values).smoothing.filters

    values = {"smoothing.enabled": True}
    for signal, (min_cutoff, beta, d_cutoff) in {"action_units": (2.0, 0.5, 1.0), "head_pose": (1.0, 5.0, 1.0),
                                                 "gaze": (1.0, 5.0, 1.0), "eyelids": (4.0, 2.0, 4.0)}.items():
        values.update({f"smoothing.{signal}.min_cutoff": min_cutoff, f"smoothing.{signal}.beta": beta,
                       f"smoothing.{signal}.d_cutoff": d_cutoff})
    assert smoothing_from(values) == SMOOTHING == smoothing_from({})  # the defaults
    assert smoothing_from(node_parameters(config_file("humimic.yaml"), "face_perception")) == SMOOTHING
    assert smoothing_from({**values, "smoothing.enabled": False}) is None
    assert smoothing_from({"smoothing.gaze.beta": 2.0}).gaze.beta == 2.0
    with pytest.raises(ValueError, match="beta"):
        smoothing_from({**values, "smoothing.gaze.beta": -1.0})


def test_settings_from_parameter_values_check_their_types():
    """A parameter file's 30 for a float is taken as 30.0 (ROS would refuse it; the re-run reads files
    directly); a value of another type is refused naming the parameter; other names are ignored."""
    from humimic_perception.settings import CameraSettings

    assert CameraSettings.from_parameters({"fps": 30, "use_sim_time": True}).fps == 30.0
    with pytest.raises(ValueError, match="parameter threads: expected int"):
        PerceptionSettings.from_parameters({"threads": "2"})
    names = [p.name for p in PerceptionSettings.parameters()]
    assert names[-13:] == ["smoothing.enabled"] + [f"smoothing.{s}.{f}" for s in ("action_units", "eyelids",
                                                                                  "head_pose", "gaze")
                                                   for f in ("min_cutoff", "beta", "d_cutoff")]
