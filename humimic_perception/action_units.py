"""FACS action unit intensities (0..5) from face mesh geometry, relative to the person's neutral face.

Landmarks are first put in a head-pose-normalised face frame, so that a head turn does not look
like an expression: they are rotated into the head frame (x forward out of the face, y toward the
person's left, z up), centred on the midpoint between the eye centres (eye centre = midpoint of
its two corners) and divided by the inter-ocular distance (IOD) between the eye centres.

Each AU is an *activation* (a change of one geometric feature against the neutral face, in IOD
units unless said otherwise) mapped linearly to an intensity: 0 up to ``dead``, 5 at ``full``
and above (SCALES). Features ("height" = along head z):

====  =======================  =======================================================  =====  =====
AU    name                     activation                                               dead   full
====  =======================  =======================================================  =====  =====
AU01  inner brow raiser        rise of the inner brow points over the eye-corner line   0.010  0.070
AU02  outer brow raiser        rise of the outer brow points over the eye-corner line   0.010  0.070
AU04  brow lowerer             narrowing of the gap between the inner brows plus their  0.020  0.120
                               drop over the eye-corner line
AU12  lip corner puller        rise of the lip corners over the lip centre plus half    0.030  0.250
                               the widening of the mouth
AU15  lip corner depressor     drop of the lip corners under the lip centre             0.015  0.080
AU25  lips part                opening of the inner lip gap (height)                    0.020  0.300
AU26  jaw drop                 drop of the chin under the eye line, times a lips-apart  0.040  0.400
                               factor (inner lip gap opening / 0.10 IOD, at most 1):
                               a closed-mouth chin movement such as a pucker is not AU26
AU45  blink                    lid closure, mean of both eyes: 1 - lid gap / neutral    0.150  0.900
                               lid gap (unitless; 1 = lids touching)
====  =======================  =======================================================  =====  =====

Neutral: the median normalised shape of the first ``neutral_frames`` frames with a finite face
(again after ``recapture_neutral()``). While it is being captured every AU is reported as 0.
Non-finite landmarks or rotation give 0 for the AUs they touch, never NaN, and such frames are not
used for the neutral.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

#: AU code -> (dead zone, full scale) of its activation; intensity = 5 * (a - dead) / (full - dead).
SCALES: Dict[str, Tuple[float, float]] = {
    "AU01": (0.010, 0.070),
    "AU02": (0.010, 0.070),
    "AU04": (0.020, 0.120),
    "AU12": (0.030, 0.250),
    "AU15": (0.015, 0.080),
    "AU25": (0.020, 0.300),
    "AU26": (0.040, 0.400),
    "AU45": (0.150, 0.900),
}
CODES: List[str] = sorted(SCALES)
MAX_INTENSITY = 5.0
#: Inner lip gap opening (IOD) at which the jaw drop counts fully as AU26.
LIPS_APART = 0.10

# MediaPipe face mesh indices (person's right = image left for a frontal face).
EYE_CORNERS_RIGHT, EYE_CORNERS_LEFT = (33, 133), (263, 362)
INNER_BROW_RIGHT, INNER_BROW_LEFT = (107, 66, 55, 65), (336, 296, 285, 295)
OUTER_BROW_RIGHT, OUTER_BROW_LEFT = (70, 63, 46, 53), (300, 293, 276, 283)
BROW_GAP = (66, 296)
UPPER_LID_RIGHT, LOWER_LID_RIGHT = (159, 158, 160), (145, 144, 153)
UPPER_LID_LEFT, LOWER_LID_LEFT = (386, 385, 387), (374, 373, 380)
LIP_CORNERS = (61, 291)
INNER_LIP_UPPER, INNER_LIP_LOWER = (13, 82, 312), (14, 87, 317)
LIP_CENTRE = (13, 14)
CHIN = 152


def normalise(points: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(N, 3) points in the camera frame (any uniform scale) to the face frame described above."""
    right = points[list(EYE_CORNERS_RIGHT)].mean(axis=0)
    left = points[list(EYE_CORNERS_LEFT)].mean(axis=0)
    iod = float(np.linalg.norm(left - right))
    if not iod > 0.0:
        return np.full(points.shape, np.nan)
    return (points - (left + right) / 2.0) @ rotation / iod


def _height(shape: np.ndarray, indices: Sequence[int]) -> float:
    return float(shape[list(indices), 2].mean())


def features(shape: np.ndarray) -> Dict[str, float]:
    """Geometric features of one normalised shape (IOD units; see the module table)."""
    eye_line = (_height(shape, EYE_CORNERS_RIGHT) + _height(shape, EYE_CORNERS_LEFT)) / 2.0
    lip_centre = _height(shape, LIP_CENTRE)
    return {
        "inner_brow": (_height(shape, INNER_BROW_RIGHT) + _height(shape, INNER_BROW_LEFT)) / 2.0 - eye_line,
        "outer_brow": (_height(shape, OUTER_BROW_RIGHT) + _height(shape, OUTER_BROW_LEFT)) / 2.0 - eye_line,
        "brow_gap": float(shape[BROW_GAP[1], 1] - shape[BROW_GAP[0], 1]),
        "corner_lift": _height(shape, LIP_CORNERS) - lip_centre,
        "mouth_width": float(shape[LIP_CORNERS[1], 1] - shape[LIP_CORNERS[0], 1]),
        "lip_gap": _height(shape, INNER_LIP_UPPER) - _height(shape, INNER_LIP_LOWER),
        "chin_drop": eye_line - float(shape[CHIN, 2]),
        "lids_right": _height(shape, UPPER_LID_RIGHT) - _height(shape, LOWER_LID_RIGHT),
        "lids_left": _height(shape, UPPER_LID_LEFT) - _height(shape, LOWER_LID_LEFT),
    }


def _closure(lids: float, neutral_lids: float) -> float:
    return float(np.clip(1.0 - lids / max(neutral_lids, 1e-3), 0.0, 1.0))


def activations(now: Dict[str, float], neutral: Dict[str, float]) -> Dict[str, float]:
    """Per-AU activation of a face against the neutral face (may be NaN for missing landmarks)."""
    d = {k: now[k] - neutral[k] for k in now}
    lips_apart = float(np.clip(d["lip_gap"] / LIPS_APART, 0.0, 1.0))
    return {
        "AU01": d["inner_brow"],
        "AU02": d["outer_brow"],
        "AU04": -(d["brow_gap"] + d["inner_brow"]),
        "AU12": d["corner_lift"] + 0.5 * d["mouth_width"],
        "AU15": -d["corner_lift"],
        "AU25": d["lip_gap"],
        "AU26": d["chin_drop"] * lips_apart,
        "AU45": (_closure(now["lids_right"], neutral["lids_right"])
                 + _closure(now["lids_left"], neutral["lids_left"])) / 2.0,
    }


def intensity(activation: float, dead: float, full: float) -> float:
    """0..5 from an activation (NaN -> 0)."""
    value = MAX_INTENSITY * (activation - dead) / (full - dead)
    return float(np.clip(value, 0.0, MAX_INTENSITY)) if np.isfinite(value) else 0.0


class ActionUnitEstimator:
    """Captures the neutral face, then turns each face into AU intensities (CODES order)."""

    def __init__(self, neutral_frames: int = 10) -> None:
        if neutral_frames < 1:
            raise ValueError(f"neutral_frames must be >= 1, got {neutral_frames}")
        self.neutral_frames = neutral_frames
        self._samples: List[np.ndarray] = []
        self._neutral: Optional[Dict[str, float]] = None

    @property
    def neutral_ready(self) -> bool:
        return self._neutral is not None

    @property
    def neutral_progress(self) -> int:
        """Frames collected toward the neutral face so far."""
        return self.neutral_frames if self._neutral is not None else len(self._samples)

    def recapture_neutral(self) -> None:
        """Forget the neutral face; the next ``neutral_frames`` faces make a new one."""
        self._samples.clear()
        self._neutral = None

    def update(self, points: np.ndarray, rotation: np.ndarray) -> Dict[str, float]:
        """AU intensities of one face: ``points`` (N, 3) in the camera frame (any uniform scale),
        ``rotation`` the head frame in the camera frame. All 0 while the neutral is captured."""
        shape = normalise(np.asarray(points, dtype=np.float64), np.asarray(rotation, dtype=np.float64))
        if self._neutral is None:
            if np.isfinite(shape).all():
                self._samples.append(shape)
            if len(self._samples) >= self.neutral_frames:
                self._neutral = features(np.median(np.stack(self._samples), axis=0))
                self._samples.clear()
            return {code: 0.0 for code in CODES}
        acts = activations(features(shape), self._neutral)
        return {code: intensity(acts[code], *SCALES[code]) for code in CODES}
