"""The per-frame face perception pipeline: landmarks -> head pose -> metric points -> action units
and gaze, optionally smoothed over time by One-Euro filters.

Pure (no ROS): the perception node and offline tools feed it BGR frames with their intrinsics and,
when smoothing, the frame's stamp (seconds) as the filters' time, so that a re-run of recorded
frames gives the same output. A frame counts as "no face" when the backend finds none, its
landmarks are not finite, or the head pose cannot be fitted; its action units are then empty and
the filters start afresh with the next face. The AUs' neutral face starts again from the
population prior when the imitated face is a new track (another person). Smoothed: the AU
intensities, the head angles (yaw, pitch, roll; the head position is not smoothed) and the gaze
angles; the landmarks are not.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from humimic_core.head_frame import head_angles, rotation_from_angles
from humimic_perception.action_units import CHANNELS, ActionUnitEstimator, measure
from humimic_perception.face_selection import FaceSelector
from humimic_perception.gaze import Gaze, direction, estimate_gaze
from humimic_perception.head_pose import HeadPose, HeadPoseEstimator, back_project, camera_matrix
from humimic_perception.intrinsics import Intrinsics
from humimic_perception.landmarks import FaceLandmarks, LandmarkBackend
from humimic_perception.one_euro import OneEuroFilter, OneEuroParams

#: Length of the head axes and gaze rays drawn on the debug image (metres).
AXIS_LENGTH = 0.06
#: Landmarks of the iris centres (right eye, left eye).
IRIS_CENTRES = (468, 473)


#: The eyelid channels: smoothed by their own, quicker filter (Smoothing.eyelids), so that a blink
#: of 3-5 frames keeps its depth (and wide eyes let go of the lids as it starts) while the other
#: AUs are smoothed more.
EYELIDS = ("AU05", "AU45", "AU45_L", "AU45_R")
_EYE_ROWS = np.array([name in EYELIDS for name in CHANNELS])


@dataclass(frozen=True)
class Smoothing:
    """One-Euro filter settings of each smoothed signal (AU intensities 0..5, angles in radians):
    ``action_units`` for every AU but the eyelids' (EYELIDS), which have ``eyelids``."""

    action_units: OneEuroParams
    head_pose: OneEuroParams
    gaze: OneEuroParams
    eyelids: OneEuroParams


@dataclass
class FaceResult:
    """One frame's perception. ``action_units`` is empty when there is no face; ``points`` are the
    landmarks in metres in the camera optical frame; action units, head pose and gaze are smoothed
    when smoothing is on; ``timings_ms`` has landmarks, pose, aus, gaze and (smoothing) smooth."""

    landmarks: Optional[FaceLandmarks] = None
    head_pose: Optional[HeadPose] = None
    points: Optional[np.ndarray] = None
    action_units: Dict[str, float] = field(default_factory=dict)
    gaze: Optional[Gaze] = None
    neutral_ready: bool = False
    timings_ms: Dict[str, float] = field(default_factory=dict)
    #: every face found in the frame, their track ids, and the index of the imitated one (None: none)
    faces: List[FaceLandmarks] = field(default_factory=list)
    face_ids: List[int] = field(default_factory=list)
    chosen: Optional[int] = None

    @property
    def face(self) -> bool:
        return bool(self.action_units)


class _Filters:
    """The One-Euro filters of one face's smoothed signals."""

    def __init__(self, smoothing: Smoothing) -> None:
        self.action_units = OneEuroFilter(smoothing.action_units)
        self.eyelids = OneEuroFilter(smoothing.eyelids)
        self.head = OneEuroFilter(smoothing.head_pose)
        self.gaze = OneEuroFilter(smoothing.gaze)

    def reset(self) -> None:
        for one in (self.action_units, self.eyelids, self.head, self.gaze):
            one.reset()


class FacePerception:
    """Runs one landmark backend, the head pose fit, the AU estimator and the gaze on successive
    frames; ``smoothing`` None = unsmoothed."""

    def __init__(self, backend: LandmarkBackend, neutral_frames: int = 10,
                 smoothing: Optional[Smoothing] = None, selector: Optional[FaceSelector] = None) -> None:
        self.backend = backend
        self.selector = selector or FaceSelector("largest")
        self.pose = HeadPoseEstimator()
        self.aus = ActionUnitEstimator(neutral_frames)
        self._filters: Optional[_Filters] = None
        self._person: Optional[int] = None  # track id of the face whose neutral is estimated
        self.set_smoothing(smoothing)

    def set_smoothing(self, smoothing: Optional[Smoothing]) -> None:
        """New filter settings (None = off); the filters start afresh."""
        self._filters = _Filters(smoothing) if smoothing is not None else None

    def recapture_neutral(self) -> None:
        """Take the next frames' face as the neutral face (the filters start afresh too)."""
        self.aus.recapture_neutral()
        if self._filters is not None:
            self._filters.reset()

    def _no_face(self, result: FaceResult) -> FaceResult:
        self.pose.reset()
        if self._filters is not None:
            self._filters.reset()
        return result

    def process(self, bgr: np.ndarray, intrinsics: Intrinsics, stamp: Optional[float] = None) -> FaceResult:
        """One frame; ``stamp`` (seconds, the frame's) is required when smoothing."""
        if self._filters is not None and stamp is None:
            raise ValueError("smoothing needs each frame's stamp")
        t0 = time.perf_counter()
        faces = self._faces(bgr)
        t1 = time.perf_counter()
        result = FaceResult(neutral_ready=self.aus.neutral_ready, timings_ms={"landmarks": (t1 - t0) * 1e3},
                            faces=faces)
        if faces:
            selection = self.selector.update([face_box(f) for f in faces], bgr.shape[1], bgr.shape[0])
            result.face_ids, result.chosen = selection.ids, selection.chosen
        else:
            self.selector.update([], bgr.shape[1], bgr.shape[0])
        landmarks = faces[result.chosen] if result.chosen is not None else None
        if landmarks is None or not np.isfinite(landmarks.points).all():
            return self._no_face(result)
        pose = self.pose.estimate(landmarks.points, intrinsics)
        if pose is None:
            return self._no_face(result)
        points = back_project(landmarks.points, intrinsics, float(pose.translation[2]))
        t2 = time.perf_counter()
        person = result.face_ids[result.chosen]
        if person != self._person:  # another person (a new track): their own neutral, from the prior
            self.aus.restart()
            self._person = person
        features = measure(points, pose.rotation)
        action_units = self.aus.update(features, head_angles(pose.rotation)[0])
        t3 = time.perf_counter()
        gaze = estimate_gaze(features)
        t4 = time.perf_counter()
        result.timings_ms.update(pose=(t2 - t1) * 1e3, aus=(t3 - t2) * 1e3, gaze=(t4 - t3) * 1e3)
        if self._filters is not None:
            action_units, pose, gaze = self._smooth(float(stamp), action_units, pose, gaze)
            result.timings_ms["smooth"] = (time.perf_counter() - t4) * 1e3
        result.landmarks, result.head_pose, result.points = landmarks, pose, points
        result.action_units, result.gaze = action_units, gaze
        result.neutral_ready = self.aus.neutral_ready
        return result

    def finish_frame(self) -> None:
        """The last frame's work that its outputs do not wait for (the ONNX backend's search for
        further faces, late_detection), for a caller that has sent them; process does it first otherwise."""
        finish = getattr(self.backend, "finish_frame", None)
        if finish is not None:
            finish()

    def _faces(self, bgr: np.ndarray) -> List[FaceLandmarks]:
        """Every face of the frame (backends without ``process_all`` find one at most)."""
        process_all = getattr(self.backend, "process_all", None)
        if process_all is not None:
            return [f for f in process_all(bgr) if np.isfinite(f.points).all()]
        face = self.backend.process(bgr)
        return [face] if face is not None else []

    def _smooth(self, t: float, action_units: Dict[str, float], pose: HeadPose, gaze: Optional[Gaze]):
        filters = self._filters
        values = np.fromiter(action_units.values(), dtype=np.float64, count=len(CHANNELS))
        values[~_EYE_ROWS] = filters.action_units(t, values[~_EYE_ROWS])
        values[_EYE_ROWS] = filters.eyelids(t, values[_EYE_ROWS])
        action_units = dict(zip(action_units, values.tolist()))
        angles = filters.head(t, np.array(head_angles(pose.rotation)))
        pose = HeadPose(rotation_from_angles(*angles), pose.translation, pose.rms_error_px)
        if gaze is None:
            filters.gaze.reset()
        else:
            gaze = Gaze.from_array(filters.gaze(t, gaze.as_array()))
        return action_units, pose, gaze

    def close(self) -> None:
        self.backend.close()


def face_box(face: FaceLandmarks) -> Tuple[float, float, float, float]:
    """The face's box (x0, y0, x1, y1 pixels): the backend's, else the landmarks' extent."""
    if face.box is not None:
        return tuple(float(v) for v in face.box)  # type: ignore[return-value]
    x, y = face.points[:, 0], face.points[:, 1]
    return float(x.min()), float(y.min()), float(x.max()), float(y.max())


def _project(points: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Pixel positions (N, 2) of camera-frame points (N, 3)."""
    return np.stack([intrinsics.fx * points[:, 0] / points[:, 2] + intrinsics.cx,
                     intrinsics.fy * points[:, 1] / points[:, 2] + intrinsics.cy], axis=1)


def _pixel(point: np.ndarray) -> tuple:
    return int(round(float(point[0]))), int(round(float(point[1])))


def draw_debug(bgr: np.ndarray, result: FaceResult, intrinsics: Intrinsics) -> np.ndarray:
    """A copy of the frame with every face's box and track id (the imitated one green), the
    landmarks, the head axes (x red, y green, z blue), the gaze of each eye (yellow) and the AUs."""
    out = bgr.copy()
    for index, (face, track) in enumerate(zip(result.faces, result.face_ids)):
        x0, y0, x1, y1 = (int(round(v)) for v in face_box(face))
        colour = (0, 220, 0) if index == result.chosen else (0, 160, 255)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 1, cv2.LINE_AA)
        cv2.putText(out, f"#{track} {face.confidence:.2f}", (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    colour, 1, cv2.LINE_AA)
    if result.landmarks is None or result.head_pose is None:
        cv2.putText(out, "no face", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2, cv2.LINE_AA)
        return out
    for x, y in np.round(result.landmarks.points[:, :2]).astype(int):
        cv2.circle(out, (int(x), int(y)), 1, (0, 255, 0), -1)
    pose = result.head_pose
    axes = np.vstack([np.zeros(3), np.eye(3) * AXIS_LENGTH])
    rvec, _ = cv2.Rodrigues(pose.rotation)
    ends, _ = cv2.projectPoints(axes, rvec, pose.translation, camera_matrix(intrinsics), None)
    ends = ends.reshape(-1, 2)
    for end, colour in zip(ends[1:], ((0, 0, 255), (0, 255, 0), (255, 0, 0))):
        cv2.line(out, _pixel(ends[0]), _pixel(end), colour, 2, cv2.LINE_AA)
    if result.gaze is not None and result.points is not None:
        irises = result.points[list(IRIS_CENTRES)]
        rays = np.array([pose.rotation @ direction(*angles) for angles in (result.gaze.right, result.gaze.left)])
        starts, stops = _project(irises, intrinsics), _project(irises + AXIS_LENGTH * rays, intrinsics)
        for start, stop in zip(starts, stops):
            cv2.line(out, _pixel(start), _pixel(stop), (0, 255, 255), 2, cv2.LINE_AA)
    lines = ["capturing neutral"] if not result.neutral_ready else [
        f"{code} {value:.1f}" for code, value in result.action_units.items()]
    rows = (len(lines) + 1) // 2
    for index, text in enumerate(lines):
        origin = (10 + 90 * (index // rows), 20 + 18 * (index % rows))
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1, cv2.LINE_AA)
    return out
