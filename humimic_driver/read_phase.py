"""When the driver's periodic state read may take the bus: not just before a command arrives.

Commands come at the camera's rate and a sync read of every servo holds the bus for a few ms; a
command that arrives during a read waits for it (the node runs one callback at a time). The state
timer asks ``timer_may_read``: no when the next command is expected (last command + the median
interval) before the read would end (median read time + a margin for the commands' jitter). The
read put off runs right after that command's write (``read_after_command``), so the state rate
stays; the timer never puts off two reads in a row, so a late or lost command delays one read at
most. Times are seconds of one monotonic clock. No rclpy.
"""
from __future__ import annotations

import statistics
from collections import deque
from typing import Deque, Optional

#: Intervals and read times kept for the medians.
WINDOW = 9
#: Seconds added to the expected read time, beyond the commands' jitter.
MARGIN_S = 0.001
#: A gap between commands longer than this (s) is a pause of the stream, not its interval.
MAX_INTERVAL_S = 0.25


class ReadPhase:
    def __init__(self) -> None:
        self._intervals: Deque[float] = deque(maxlen=WINDOW)
        self._reads: Deque[float] = deque(maxlen=WINDOW)
        self._last_command: Optional[float] = None
        self._put_off = False

    def command(self, now: float) -> None:
        """A command arrived at ``now``."""
        if self._last_command is not None and 0.0 < now - self._last_command <= MAX_INTERVAL_S:
            self._intervals.append(now - self._last_command)
        self._last_command = now

    def read(self, seconds: float) -> None:
        """A state read took ``seconds``."""
        self._reads.append(seconds)

    def timer_may_read(self, now: float) -> bool:
        """Whether the state timer reads now (False: put off to right after the next command)."""
        if self._put_off or self._last_command is None or len(self._intervals) < 3 or not self._reads:
            self._put_off = False
            return True
        interval = statistics.median(self._intervals)
        jitter = statistics.median(abs(i - interval) for i in self._intervals)
        until_next = self._last_command + interval - now
        self._put_off = -jitter <= until_next <= statistics.median(self._reads) + 2.0 * jitter + MARGIN_S
        return not self._put_off

    def read_after_command(self) -> bool:
        """Whether a read was put off for the command just written (then it is due now)."""
        due, self._put_off = self._put_off, False
        return due
