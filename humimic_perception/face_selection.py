"""Which face the robot imitates when the camera sees several, with a stable identity per person.

``FaceSelector.update`` takes the face boxes of one frame and returns a track id per face and the
index of the face to imitate. Identities: each face is matched to the previous frame's tracks
greedily by box IoU (best pairs first, IoU >= ``iou_threshold``); a face no track matches by IoU
is matched by centre distance instead (below ``max_shift`` times the track's box size: fast head
moves); what still does not match starts a new track. A track unseen for more than
``max_missing`` frames is forgotten.

Policies:

* ``largest``: the face with the largest box;
* ``central``: the face whose centre is nearest to the image centre (relative to the image size);
* ``same``: the person chosen before, identified by track id. While that person is briefly missing
  (up to ``max_missing`` frames) no face is chosen, so the robot does not jump to a bystander; once
  the track is forgotten, or at the start, the largest face is chosen and followed.

``largest`` and ``central`` keep the current choice until another face beats it by the relative
margin ``switch_margin`` (a box area that much larger, a distance to the centre that much smaller),
so that two similar faces do not make the choice flicker.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

POLICIES = ("largest", "central", "same")
Box = Tuple[float, float, float, float]  # x0, y0, x1, y1 (pixels)


@dataclass(frozen=True)
class Selection:
    """Track id of every face of the frame (same order as the boxes) and the index of the chosen face."""

    ids: List[int]
    chosen: Optional[int]

    @property
    def chosen_id(self) -> Optional[int]:
        return None if self.chosen is None else self.ids[self.chosen]


@dataclass
class _Track:
    box: np.ndarray
    missing: int = 0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes; 0 for empty ones."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def _area(box: np.ndarray) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def _centre(box: np.ndarray) -> np.ndarray:
    return (box[:2] + box[2:]) / 2.0


@dataclass
class FaceSelector:
    """Track ids and the chosen face, frame after frame (see the module docstring)."""

    policy: str = "same"
    iou_threshold: float = 0.3
    max_shift: float = 0.5
    max_missing: int = 15
    switch_margin: float = 0.2
    _tracks: Dict[int, _Track] = field(default_factory=dict, init=False, repr=False)
    _next_id: int = field(default=0, init=False, repr=False)
    _target: Optional[int] = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown face selection policy {self.policy!r} (known: {', '.join(POLICIES)})")
        if not 0.0 < self.iou_threshold <= 1.0 or self.max_shift < 0.0 or self.max_missing < 0 \
                or self.switch_margin < 0.0:
            raise ValueError("iou_threshold must be in (0, 1], max_shift, max_missing and switch_margin >= 0")

    def reset(self) -> None:
        """Forget every track and the chosen person."""
        self._tracks.clear()
        self._target = None

    def update(self, boxes: Sequence[Box], width: int, height: int) -> Selection:
        """Ids of this frame's faces and the face to imitate (None: no face, or the followed person
        is briefly missing)."""
        current = [np.asarray(b, dtype=np.float64) for b in boxes]
        ids = self._match(current)
        for track_id, track in list(self._tracks.items()):
            track.missing += 1
            if track.missing > self.max_missing and track_id not in ids:
                del self._tracks[track_id]
        for track_id, box in zip(ids, current):
            self._tracks[track_id] = _Track(box)
        if self._target not in self._tracks:
            self._target = None
        chosen = self._choose(current, ids, width, height)
        if chosen is not None:
            self._target = ids[chosen]
        return Selection(ids, chosen)

    def _match(self, boxes: List[np.ndarray]) -> List[int]:
        """A track id per box: IoU matches first, then centre-distance matches, then new ids."""
        ids: List[Optional[int]] = [None] * len(boxes)
        free = dict(self._tracks)
        pairs = sorted(((iou(box, track.box), i, tid) for i, box in enumerate(boxes) for tid, track in free.items()),
                       reverse=True)
        for score, i, tid in pairs:
            if score >= self.iou_threshold and ids[i] is None and tid in free:
                ids[i] = tid
                del free[tid]
        shifts = sorted((np.linalg.norm(_centre(box) - _centre(track.box)) / np.sqrt(max(_area(track.box), 1e-9)),
                         i, tid) for i, box in enumerate(boxes) if ids[i] is None for tid, track in free.items())
        for shift, i, tid in shifts:
            if shift <= self.max_shift and ids[i] is None and tid in free:
                ids[i] = tid
                del free[tid]
        for i, track_id in enumerate(ids):
            if track_id is None:
                ids[i] = self._next_id
                self._next_id += 1
        return [int(i) for i in ids]

    def _choose(self, boxes: List[np.ndarray], ids: List[int], width: int, height: int) -> Optional[int]:
        if not boxes:
            return None
        current = ids.index(self._target) if self._target in ids else None
        if self.policy == "same" and self._target is not None:
            return current
        if self.policy == "central":
            size = np.array([width, height], dtype=np.float64)
            distance = [float(np.linalg.norm((_centre(b) - size / 2.0) / size)) for b in boxes]
            best = int(np.argmin(distance))
            keep = current is not None and distance[best] >= distance[current] * (1.0 - self.switch_margin)
        else:
            areas = [_area(b) for b in boxes]
            best = int(np.argmax(areas))
            keep = current is not None and areas[best] <= areas[current] * (1.0 + self.switch_margin)
        return current if keep else best
