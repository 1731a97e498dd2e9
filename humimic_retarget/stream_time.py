"""Stream time: the one time base of the retargeter, from frame stamps and frame arrival.

The retargeter runs on the frames' own stamps, so a bag replay or the offline re-run gives the
same commands. The node's clock only says when frames *arrive*: while they come, stream time is
their stamp (however late they are); when they stop, the node's timer carries the stream on from
the last frame by the node-clock time since it arrived. Face loss is thus judged on arrival, late
frames are used, and a stalled stream still glides to neutral.

Stamps that do not fit are counted and handled, and the stream goes on:

- ahead of the node clock by more than ``tolerance``: the frame is refused (one such stamp would
  otherwise make every later frame look old);
- behind the previous frame's stamp (camera clock stepped back, a bag loop), or ahead of the
  previous one by more than the time between their arrivals plus ``tolerance`` (the first frame
  after such a step): the stream re-anchors, continuing from the previous frame by the time between
  their arrivals; the frame is used.

Latency (node clock at arrival minus stamp) is kept for frames that fit, if not absurd (older than
MAX_LATENCY or refused). All times are integer nanoseconds.
"""
from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Dict, Optional, Tuple

import numpy as np

#: Latencies (s) above this are absurd (a stamp from 1970, an unsynchronised camera): counted as
#: stale, kept out of the latency statistics.
MAX_LATENCY = 60.0
#: Frames in the latency statistics (the most recent).
LATENCY_WINDOW = 300


@dataclass
class StampCounts:
    frames: int = 0        # frames timed (used)
    future: int = 0        # refused: stamp ahead of the node clock by more than the tolerance
    behind: int = 0        # stamp behind the previous frame's: re-anchored
    jumped: int = 0        # ahead of the previous stamp by more than their arrival gap + tolerance: re-anchored
    stale: int = 0         # older than MAX_LATENCY by the node clock: out of the latency statistics
    clock_jumps: int = 0   # the node clock jumped (time-jump callback, or seen going back)


class StreamTime:
    """``warn(kind, line)`` is called for each stamp or clock that does not fit (kind: a StampCounts field)."""

    def __init__(self, tolerance: float, warn: Callable[[str, str], None] = lambda kind, text: None) -> None:
        if not tolerance > 0.0:
            raise ValueError(f"stamp tolerance must be > 0 s, got {tolerance!r}")
        self.tolerance = int(tolerance * 1e9)
        self.warn = warn
        self.counts = StampCounts()
        self.latency_ms: Deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._shift = 0                          # stream time - stamp
        self._stamp: Optional[int] = None        # stamp of the last frame
        self._anchor = (0, 0)                    # (stream time, node time of arrival) of the last frame
        self._handed = -2 ** 62                  # latest stream time given out

    def admit(self, stamp: int, now: int) -> bool:
        """Whether a frame that arrives at node time ``now`` may be used (False: counted as future).

        ``now`` == 0 is a ROS clock without time yet (use_sim_time before /clock): nothing is judged.
        """
        if now > 0 and stamp - now > self.tolerance:
            self.counts.future += 1
            self.warn("future", f"frame stamp {(stamp - now) * 1e-9:.3f} s ahead of this node's clock (tolerance "
                                f"{self.tolerance * 1e-9:g} s): frame refused ({self.counts.future} so far)")
            return False
        return True

    def frame(self, stamp: int, arrival: int) -> int:
        """Stream time of an admitted frame that arrived at node time ``arrival``."""
        self.counts.frames += 1
        t = stamp + self._shift
        fits = True
        if self._stamp is not None:
            expected = self._since_anchor(arrival)
            if stamp <= self._stamp:
                self.counts.behind += 1
                self.warn("behind", f"frame stamp {(self._stamp - stamp) * 1e-9:.3f} s behind the previous "
                                    f"frame's (camera clock stepped back, replay looped): timing re-anchored on "
                                    f"arrival ({self.counts.behind} so far)")
                fits = False
            elif t - expected > self.tolerance:
                self.counts.jumped += 1
                self.warn("jumped", f"frame stamp {(stamp - self._stamp) * 1e-9:.3f} s after the previous "
                                    f"frame's, which arrived {(arrival - self._anchor[1]) * 1e-9:.3f} s before it: "
                                    f"timing re-anchored on arrival ({self.counts.jumped} so far)")
                fits = False
            if not fits or t <= self._handed:  # (fits but behind: the timer ran ahead during a stall)
                t = max(expected, self._handed + 1)
                self._shift = t - stamp
        latency = arrival - stamp
        if fits and -self.tolerance <= latency <= MAX_LATENCY * 1e9:
            self.latency_ms.append(latency * 1e-6)
        elif fits:
            self.counts.stale += 1
        self._stamp = stamp
        self._anchor = (t, arrival)
        self._handed = max(self._handed, t)
        return t

    def median_latency(self) -> float:
        """Seconds, the median latency of the last LATENCY_WINDOW frames that fit (0 before any)."""
        return float(np.median(self.latency_ms)) * 1e-3 if self.latency_ms else 0.0

    def stalled(self, now: int, stall: int) -> Optional[int]:
        """Stream time for a step of the timer at node time ``now`` when no frame arrived for
        ``stall`` ns; None while frames come (or before the first)."""
        if self._stamp is None:
            return None
        if now < self._anchor[1]:
            self.clock_jumped(now - self._anchor[1])
        elapsed = now - self._anchor[1]
        if elapsed < stall:
            return None
        t = self._anchor[0] + elapsed
        self._handed = max(self._handed, t)
        return t

    def clock_jumped(self, delta: int) -> None:
        """The node clock jumped by ``delta`` ns: arrival times move with it (no time passed). Before
        the first frame nothing depends on it (the first /clock of a replay)."""
        if self._stamp is None:
            return
        self.counts.clock_jumps += 1
        self.warn("clock_jumps", f"this node's clock jumped by {delta * 1e-9:+.3f} s: frame timing moved "
                                 f"with it ({self.counts.clock_jumps} so far)")
        self._anchor = (self._anchor[0], self._anchor[1] + delta)

    def report(self, previous: StampCounts) -> Tuple[str, Dict[str, str]]:
        """What went wrong since ``previous`` counts ("" = nothing), and every count with the
        latency statistics (ms, over the last LATENCY_WINDOW frames that fit) as text."""
        now, was = dataclasses.asdict(self.counts), dataclasses.asdict(previous)
        what = {"future": "refused (stamp ahead of the clock)", "behind": "stamped behind the previous",
                "jumped": "stamped far ahead of the previous", "stale": "stamped over a minute old",
                "clock_jumps": "clock jumps"}
        message = ", ".join(f"{now[k] - was[k]} {text}" for k, text in what.items() if now[k] > was[k])
        values = {k: str(v) for k, v in now.items()}
        if self.latency_ms:
            a = np.asarray(self.latency_ms)
            values.update(latency_p50_ms=f"{np.percentile(a, 50):.1f}", latency_p99_ms=f"{np.percentile(a, 99):.1f}",
                          latency_max_ms=f"{a.max():.1f}")
        return message, values

    def _since_anchor(self, now: int) -> int:
        return self._anchor[0] + max(now - self._anchor[1], 0)
