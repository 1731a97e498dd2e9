"""The face in the ROS4HRI layout (REP-155, `hri_msgs`), as plain values: no rclpy, no hri_msgs.

- `MESH_TO_ROS4HRI`: the 70 ROS4HRI facial landmarks (the dlib/OpenPose 68 plus both pupils, in
  `hri_msgs/FacialLandmarks` order) as indices of the 478-point face mesh. "Right" is the
  person's right, as in ROS4HRI and the mesh (landmark 33 is the right eye's outer corner).
- `FaceTrack`: a face id that lasts while the face stays in view; a new one after a loss.
- `normalized_landmarks`, `region_of_interest`: image-normalised coordinates (0..1 from the top
  left) of the projected mesh.
- `facs`: the 99 AU intensities (0..1: the FACS A..E scale 0..5 divided by 5) and confidences.
- `expression`: the basic emotion whose EMFACS prototype AUs are most active, or neutral.
- `gaze_rotation`: the REP-155 gaze frame (z along the gaze, x right, y down) in the head frame.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import numpy as np

from humimic_perception.intrinsics import Intrinsics

#: hri_msgs/FacialLandmarks index -> face mesh index (RIGHT_EAR=0 ... MOUTH_INNER_BOTTOM_1=67,
#: RIGHT_PUPIL=68, LEFT_PUPIL=69). Jaw: the face oval from the right ear (0) over the chin (8)
#: to the left ear (16); brows outside -> inside (right), inside -> outside (left); nose bridge
#: from the sellion (27) to the tip (30); nostrils right -> left; eyes clockwise from the right
#: eye's outer corner as dlib numbers them; lips likewise from the right corner.
MESH_TO_ROS4HRI: Tuple[int, ...] = (
    127, 234, 93, 132, 58, 172, 136, 150, 152, 379, 365, 397, 288, 361, 323, 454, 356,  # 0-16 jaw
    70, 63, 105, 66, 107,                                                               # 17-21 right brow
    336, 296, 334, 293, 300,                                                            # 22-26 left brow
    6, 197, 5, 1,                                                                       # 27-30 nose bridge
    98, 97, 2, 326, 327,                                                                # 31-35 nostrils
    33, 160, 158, 133, 153, 144,                                                        # 36-41 right eye
    362, 385, 387, 263, 373, 380,                                                       # 42-47 left eye
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,                                 # 48-59 outer lips
    78, 81, 13, 311, 308, 402, 14, 178,                                                 # 60-67 inner lips
    468, 473,                                                                           # 68-69 pupils
)

#: ROS4HRI landmark -> its mirror image across the face's midline (jaw, brows, eyes, nostrils, lips, pupils)
MIRROR: Dict[int, int] = {
    **{i: 16 - i for i in range(17) if i != 8}, **{17 + i: 26 - i for i in range(5)}, **{31 + i: 35 - i for i in (0, 1)},
    36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46, 48: 54, 49: 53, 50: 52, 59: 55, 58: 56, 60: 64, 61: 63,
    67: 65, 68: 69,
}
MIRROR.update({b: a for a, b in list(MIRROR.items())})

#: hri_msgs/FacialActionUnits holds one intensity per AU number 0..98
FACS_SIZE = 99
#: the FACS intensity scale of /face/action_units (A..E = 1..5)
MAX_INTENSITY = 5.0

#: hri_msgs/Expression value -> the AUs of its EMFACS prototype
EXPRESSIONS: Dict[str, Tuple[str, ...]] = {
    "happy": ("AU06", "AU12"),
    "sad": ("AU01", "AU04", "AU15"),
    "surprised": ("AU01", "AU02", "AU05", "AU26"),
    "scared": ("AU01", "AU02", "AU04", "AU05", "AU07", "AU20", "AU26"),
    "angry": ("AU04", "AU05", "AU07", "AU23"),
    "disgusted": ("AU09", "AU15", "AU17"),
}
#: below this mean prototype intensity (0..1) the expression is neutral
EXPRESSION_THRESHOLD = 0.2


class FaceTrack:
    """The ROS4HRI id of the imitated face: kept while it stays in view, a new one after a frame
    without a face (ids are `face` plus a count, unique for the bridge's lifetime)."""

    def __init__(self) -> None:
        self.id: Optional[str] = None
        self._count = 0

    def update(self, face: bool) -> Optional[str]:
        """The id for a frame with or without a face."""
        if not face:
            self.id = None
        elif self.id is None:
            self._count += 1
            self.id = f"face{self._count}"
        return self.id


def _pixels(points: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """(N, 2) pixel coordinates of (N, 3) camera-frame points (pinhole, no distortion)."""
    z = np.where(points[:, 2] > 1e-6, points[:, 2], np.nan)
    return np.stack([intrinsics.fx * points[:, 0] / z + intrinsics.cx,
                     intrinsics.fy * points[:, 1] / z + intrinsics.cy], axis=1)


def normalized_landmarks(points: np.ndarray, intrinsics: Intrinsics) -> List[Tuple[float, float, float]]:
    """The 70 ROS4HRI landmarks as (x, y, confidence): image-normalised, 0..1 from the top left;
    confidence 0 (and x = y = 0) for a point behind the camera or outside the image."""
    px = _pixels(np.asarray(points, dtype=float)[list(MESH_TO_ROS4HRI)], intrinsics)
    out = []
    for u, v in px / np.array([intrinsics.width, intrinsics.height]):
        inside = bool(np.isfinite(u) and np.isfinite(v) and 0.0 <= u <= 1.0 and 0.0 <= v <= 1.0)
        out.append((float(u), float(v), 1.0) if inside else (0.0, 0.0, 0.0))
    return out


def region_of_interest(points: np.ndarray, intrinsics: Intrinsics) -> Optional[Tuple[float, float, float, float]]:
    """(xmin, ymin, xmax, ymax) of the projected mesh, image-normalised and clipped to 0..1; None
    when no point is in front of the camera."""
    px = _pixels(np.asarray(points, dtype=float), intrinsics)
    px = px[np.isfinite(px).all(axis=1)] / np.array([intrinsics.width, intrinsics.height])
    if not len(px):
        return None
    low, high = np.clip(px.min(axis=0), 0.0, 1.0), np.clip(px.max(axis=0), 0.0, 1.0)
    return float(low[0]), float(low[1]), float(high[0]), float(high[1])


def facs(action_units: Dict[str, float]) -> Tuple[List[float], List[float]]:
    """(intensity, confidence), FACS_SIZE each, indexed by AU number: intensity = AU / 5 in 0..1,
    confidence 1 for the AUs perception measures (per-eye channels such as AU45_L are left out)."""
    intensity, confidence = [0.0] * FACS_SIZE, [0.0] * FACS_SIZE
    for name, value in action_units.items():
        code = name[2:]
        if name.startswith("AU") and code.isdigit() and int(code) < FACS_SIZE:
            intensity[int(code)] = min(max(float(value) / MAX_INTENSITY, 0.0), 1.0)
            confidence[int(code)] = 1.0
    return intensity, confidence


def expression(action_units: Dict[str, float]) -> Tuple[str, float]:
    """(hri_msgs/Expression value, confidence 0..1): the prototype with the highest mean
    intensity (on a tie the larger one, whose extra AUs are active too), "neutral" below
    EXPRESSION_THRESHOLD (confidence = 1 - that mean then)."""
    scores = {name: sum(min(max(action_units.get(au, 0.0) / MAX_INTENSITY, 0.0), 1.0) for au in aus) / len(aus)
              for name, aus in EXPRESSIONS.items()}
    best = max(scores, key=lambda name: (round(scores[name], 3), len(EXPRESSIONS[name])))
    if scores[best] < EXPRESSION_THRESHOLD:
        return "neutral", 1.0 - scores[best]
    return best, scores[best]


def gaze_rotation(yaw: float, pitch: float) -> np.ndarray:
    """The REP-155 gaze frame (z along the gaze, x to the person's right, y down) in the head frame
    (x forward, y the person's left, z up), for gaze yaw (+ left) and pitch (+ down) in radians."""
    looking_ahead = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # columns: gaze x, y, z
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    turn = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    tip = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    return turn @ tip @ looking_ahead


#: the list of tracked face ids
TRACKED_TOPIC = "/humans/faces/tracked"
#: the per-face sub-topics the bridge publishes
FACE_TOPICS = ("roi", "landmarks", "facs", "expression")


def face_topic(face_id: str, name: str) -> str:
    """REP-155 topic of one face: /humans/faces/<id>/<name>."""
    return f"/humans/faces/{face_id}/{name}"


def face_frames(face_id: str) -> Tuple[str, str]:
    """REP-155 TF frames of one face: (face_<id>, gaze_<id>)."""
    return f"face_{face_id}", f"gaze_{face_id}"
