"""Camera frames waiting for perception, and the policy that keeps perception up with the camera.

Every frame received goes in; perception takes one at a time. Frames that wait more than
``max_lag`` (by stamp) behind the newest waiting frame are skipped: with ``max_lag`` 0 perception
always works on the newest frame (live: latency stays one frame's processing, frames are dropped
when it is busy); a larger ``max_lag`` absorbs short stalls in order at the cost of latency (a
replay where every frame counts). At most MAX_WAITING frames wait; older ones are skipped too.
Skipped frames are counted as dropped: received = processed + dropped + waiting.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Deque, Generic, Optional, Tuple, TypeVar

#: Frames kept waiting at most (a 640x480 frame is 0.9 MB).
MAX_WAITING = 60

T = TypeVar("T")


@dataclass
class FrameCounts:
    received: int = 0    # frames taken from the camera topic
    processed: int = 0   # taken by perception
    dropped: int = 0     # skipped for newer frames


class FrameQueue(Generic[T]):
    def __init__(self, max_lag: float = 0.0) -> None:
        self.counts = FrameCounts()
        self.max_lag = max_lag
        self._waiting: Deque[Tuple[int, T]] = deque()

    @property
    def max_lag(self) -> float:
        return self._max_lag_ns * 1e-9

    @max_lag.setter
    def max_lag(self, seconds: float) -> None:
        if not seconds >= 0.0:
            raise ValueError(f"max_frame_lag must be a number of seconds >= 0, got {seconds!r}")
        self._max_lag_ns = int(min(seconds, 1e9) * 1e9)

    def put(self, stamp: int, frame: T) -> None:
        """A frame received, with its stamp (ns)."""
        self.counts.received += 1
        self._waiting.append((stamp, frame))
        if len(self._waiting) > MAX_WAITING:
            self._waiting.popleft()
            self.counts.dropped += 1

    def take(self) -> Optional[T]:
        """The frame to process next (None: none waiting), skipping those too far behind the newest."""
        if not self._waiting:
            return None
        newest = self._waiting[-1][0]
        while newest - self._waiting[0][0] > self._max_lag_ns:
            self._waiting.popleft()
            self.counts.dropped += 1
        self.counts.processed += 1
        return self._waiting.popleft()[1]

    def __len__(self) -> int:
        return len(self._waiting)
