"""Join one frame's perception messages by their stamp: action units plus the parts that come on
other topics (head angles, gaze), whatever order DDS delivers them in.

A frame is released once its action units and every part seen so far in the stream (a part
topic that never published is not waited for) have arrived for that stamp, or when a newer frame's
action units arrive, or when the caller expires it; a frame without a face needs no parts. The
same messages thus always give the same channels, live or replayed from a bag.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional

#: Frames whose parts are kept while their action units have not arrived yet.
MAX_PENDING = 32


@dataclass
class Frame:
    stamp: int                              # ns, the camera frame's stamp
    channels: Optional[Dict[str, float]]    # None: no face in this frame
    arrival: float = 0.0                    # caller's clock when the action units came


class FrameAssembler:
    def __init__(self) -> None:
        self._parts: "OrderedDict[int, Dict[str, Dict[str, float]]]" = OrderedDict()
        self._known_parts: set = set()
        self._waiting: Optional[Frame] = None
        self._last_released = -1

    def add_part(self, name: str, stamp: int, values: Mapping[str, float]) -> List[Frame]:
        """Head angles, gaze ... of a frame; returns the frames this completes."""
        self._known_parts.add(name)
        if stamp <= self._last_released:
            return []
        self._parts.setdefault(stamp, {})[name] = dict(values)
        while len(self._parts) > MAX_PENDING:
            self._parts.popitem(last=False)
        return self._release_if_complete()

    def add_action_units(self, stamp: int, channels: Optional[Mapping[str, float]],
                         arrival: float = 0.0) -> List[Frame]:
        """A frame's action units (None or empty: no face); returns the frames now released."""
        if stamp <= self._last_released:
            return []
        out = self.flush() if self._waiting is not None else []
        self._waiting = Frame(stamp, dict(channels) if channels else None, arrival)
        return out + self._release_if_complete()

    def expire(self, now: float, timeout: float) -> List[Frame]:
        """Release the waiting frame if it has waited longer than `timeout` (caller's clock)."""
        if self._waiting is not None and now - self._waiting.arrival > timeout:
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

    def _release_if_complete(self) -> List[Frame]:
        frame = self._waiting
        if frame is None:
            return []
        if frame.channels is None or self._known_parts <= set(self._parts.get(frame.stamp, {})):
            return self.flush()
        return []
