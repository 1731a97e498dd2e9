"""One frame's channels: its action units joined, by stamp, with that frame's head pose and gaze.

Head pose and gaze come on their own topics, in whatever order DDS delivers them. A frame is
released once its action units and every part seen so far in the stream have arrived for its
stamp (a topic that never published is not waited for), when the next frame's action units
arrive, or when the caller expires it; a frame without a face needs no parts. The same messages
thus give the same channels, live or replayed from a bag. Stamps are in nanoseconds. Action units
whose stamp is behind the last frame's (the camera clock stepped back, a bag loop) start a new
frame like any other; only a repeated stamp is ignored.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

from humimic_core.head_frame import head_angles, quaternion_to_matrix

#: Frames whose parts are kept while their action units have not arrived yet.
MAX_PENDING = 32


@dataclass
class Frame:
    stamp: int                              # ns, the camera frame's stamp
    channels: Optional[Dict[str, float]]    # None: no face in this frame
    arrival: float = 0.0                    # caller's clock when the action units came (unit of expire's)


class FrameChannels:
    def __init__(self) -> None:
        self._parts: "OrderedDict[int, Dict[str, Dict[str, float]]]" = OrderedDict()
        self._known_parts: set = set()
        self._waiting: Optional[Frame] = None
        self._last_released = -1

    def head_pose(self, stamp: int, quaternion: Sequence[float]) -> List[Frame]:
        """A head orientation (x, y, z, w in the camera optical frame); a degenerate one is dropped."""
        try:
            yaw, pitch, roll = head_angles(quaternion_to_matrix(quaternion))
        except ValueError:
            return []
        return self._part("head", stamp, {"head_yaw": yaw, "head_pitch": pitch, "head_roll": roll})

    def gaze(self, stamp: int, yaw: float, pitch: float) -> List[Frame]:
        return self._part("gaze", stamp, {"gaze_yaw": float(yaw), "gaze_pitch": float(pitch)})

    def action_units(self, stamp: int, names: Sequence[str], values: Sequence[float],
                     arrival: float = 0.0) -> List[Frame]:
        """A frame's action units (empty: no face); the frames now released, oldest first.

        ValueError when names and values differ in length.
        """
        if len(names) != len(values):
            raise ValueError(f"action units with {len(names)} names but {len(values)} values")
        if stamp == self._last_released or (self._waiting is not None and stamp == self._waiting.stamp):
            return []
        out = self.flush()
        channels = dict(zip(names, (float(v) for v in values))) if names else None
        self._waiting = Frame(stamp, channels, arrival)
        return out + self._release_if_complete()

    def expire(self, now: float, timeout: float) -> List[Frame]:
        """Release the waiting frame if it has waited longer than `timeout` (caller's clock; also
        when that clock went back)."""
        if self._waiting is not None and not 0 <= now - self._waiting.arrival <= timeout:
            return self.flush()
        return []

    def flush(self) -> List[Frame]:
        """Release the waiting frame with whatever parts it has."""
        frame = self._waiting
        if frame is None:
            return []
        self._waiting = None
        self._last_released = frame.stamp
        parts = self._parts.pop(frame.stamp, {})
        for old in [s for s in self._parts if s <= frame.stamp]:
            del self._parts[old]
        if frame.channels is not None:
            for values in parts.values():
                frame.channels.update(values)
        return [frame]

    def _part(self, name: str, stamp: int, values: Mapping[str, float]) -> List[Frame]:
        self._known_parts.add(name)
        if stamp <= self._last_released:
            return []
        self._parts.setdefault(stamp, {})[name] = dict(values)
        while len(self._parts) > MAX_PENDING:
            self._parts.popitem(last=False)
        return self._release_if_complete()

    def _release_if_complete(self) -> List[Frame]:
        frame = self._waiting
        if frame is None:
            return []
        if frame.channels is None or self._known_parts <= set(self._parts.get(frame.stamp, {})):
            return self.flush()
        return []
