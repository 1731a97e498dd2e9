"""One frame's channels: its action units joined with the head pose and gaze of that frame.

Head pose and gaze arrive on their own topics; a frame takes the latest of each whose stamp is
not after the frame's and at most ``max_age`` seconds before it. Stamps are in nanoseconds.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

from humimic_retarget.head_angles import head_angles, quaternion_to_matrix

_Stamped = Tuple[int, Dict[str, float]]


class FrameChannels:
    def __init__(self) -> None:
        self._head: Optional[_Stamped] = None
        self._gaze: Optional[_Stamped] = None

    def head_pose(self, stamp_ns: int, quaternion: Sequence[float]) -> None:
        """A head orientation (x, y, z, w in the camera optical frame); a degenerate one is dropped."""
        try:
            yaw, pitch, roll = head_angles(quaternion_to_matrix(quaternion))
        except ValueError:
            return
        self._head = (stamp_ns, {"head_yaw": yaw, "head_pitch": pitch, "head_roll": roll})

    def gaze(self, stamp_ns: int, yaw: float, pitch: float) -> None:
        self._gaze = (stamp_ns, {"gaze_yaw": yaw, "gaze_pitch": pitch})

    def frame(self, stamp_ns: int, names: Sequence[str], values: Sequence[float],
              max_age: float) -> Optional[Dict[str, float]]:
        """The frame's channels, or None when it has no face (no action units).

        ValueError when names and values differ in length.
        """
        if len(names) != len(values):
            raise ValueError(f"action units with {len(names)} names but {len(values)} values")
        if not names:
            return None
        channels = dict(zip(names, (float(v) for v in values)))
        for latest in (self._head, self._gaze):
            if latest is not None and 0 <= stamp_ns - latest[0] <= max_age * 1e9:
                channels.update(latest[1])
        return channels
