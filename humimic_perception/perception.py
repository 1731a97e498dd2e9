"""The per-frame face perception pipeline: landmarks -> head pose -> metric points -> action units.

Pure (no ROS): the perception node and offline tools feed it BGR frames with their intrinsics.
A frame counts as "no face" when the backend finds none, its landmarks are not finite, or the
head pose cannot be fitted; its action units are then empty.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, Optional

import cv2
import numpy as np

from humimic_perception.action_units import ActionUnitEstimator
from humimic_perception.head_pose import HeadPose, HeadPoseEstimator, back_project, camera_matrix
from humimic_perception.intrinsics import Intrinsics
from humimic_perception.landmarks import FaceLandmarks, LandmarkBackend

#: Length of the head axes drawn on the debug image (metres).
AXIS_LENGTH = 0.06


@dataclass
class FaceResult:
    """One frame's perception. ``action_units`` is empty when there is no face; ``points`` are the
    landmarks in metres in the camera optical frame; ``timings_ms`` has landmarks, pose and aus."""

    landmarks: Optional[FaceLandmarks] = None
    head_pose: Optional[HeadPose] = None
    points: Optional[np.ndarray] = None
    action_units: Dict[str, float] = field(default_factory=dict)
    neutral_ready: bool = False
    timings_ms: Dict[str, float] = field(default_factory=dict)

    @property
    def face(self) -> bool:
        return bool(self.action_units)


class FacePerception:
    """Runs one landmark backend, the head pose fit and the AU estimator on successive frames."""

    def __init__(self, backend: LandmarkBackend, neutral_frames: int = 10) -> None:
        self.backend = backend
        self.pose = HeadPoseEstimator()
        self.aus = ActionUnitEstimator(neutral_frames)

    def recapture_neutral(self) -> None:
        self.aus.recapture_neutral()

    def process(self, bgr: np.ndarray, intrinsics: Intrinsics) -> FaceResult:
        t0 = time.perf_counter()
        landmarks = self.backend.process(bgr)
        t1 = time.perf_counter()
        result = FaceResult(neutral_ready=self.aus.neutral_ready, timings_ms={"landmarks": (t1 - t0) * 1e3})
        if landmarks is None or not np.isfinite(landmarks.points).all():
            self.pose.reset()
            return result
        pose = self.pose.estimate(landmarks.points, intrinsics)
        t2 = time.perf_counter()
        result.timings_ms["pose"] = (t2 - t1) * 1e3
        if pose is None:
            return result
        points = back_project(landmarks.points, intrinsics, float(pose.translation[2]))
        result.landmarks, result.head_pose, result.points = landmarks, pose, points
        result.action_units = self.aus.update(points, pose.rotation)
        result.neutral_ready = self.aus.neutral_ready
        result.timings_ms["aus"] = (time.perf_counter() - t2) * 1e3
        return result

    def close(self) -> None:
        self.backend.close()


def draw_debug(bgr: np.ndarray, result: FaceResult, intrinsics: Intrinsics) -> np.ndarray:
    """A copy of the frame with the landmarks, the head axes (x red, y green, z blue) and the AUs."""
    out = bgr.copy()
    if result.landmarks is None or result.head_pose is None:
        cv2.putText(out, "no face", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2, cv2.LINE_AA)
        return out
    for x, y in np.round(result.landmarks.points[:, :2]).astype(int):
        cv2.circle(out, (int(x), int(y)), 1, (0, 255, 0), -1)
    pose = result.head_pose
    axes = np.vstack([np.zeros(3), np.eye(3) * AXIS_LENGTH])
    rvec, _ = cv2.Rodrigues(pose.rotation)
    ends, _ = cv2.projectPoints(axes, rvec, pose.translation, camera_matrix(intrinsics), None)
    ends = np.round(ends.reshape(-1, 2)).astype(int)
    for end, colour in zip(ends[1:], ((0, 0, 255), (0, 255, 0), (255, 0, 0))):
        cv2.line(out, tuple(int(v) for v in ends[0]), tuple(int(v) for v in end), colour, 2, cv2.LINE_AA)
    lines = ["capturing neutral"] if not result.neutral_ready else [
        f"{code} {value:.1f}" for code, value in result.action_units.items()]
    for row, text in enumerate(lines):
        cv2.putText(out, text, (10, 20 + 18 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1, cv2.LINE_AA)
    return out
