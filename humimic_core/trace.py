"""Per-frame latency trace: when each stage of a node finished with a camera frame, in ms after the
frame's stamp, kept in a small ring buffer and sent in batches as a standard message.

A node names its stages in the order they run; ``mark(stamp, stage)`` takes the wall clock (the
clock the camera stamps frames with, so the offsets of different processes on one machine compare)
and stores ``now - stamp`` in the frame's row. A mark costs about a microsecond (no message, no
allocation); the node's timer sends the rows filled since the last batch (``take``) as one
``std_msgs/Float64MultiArray`` (``to_msg``/``from_msg``): ``layout.dim[0].label`` = the node,
``dim[1].label`` = the columns comma-separated: ``stamp_sec,stamp_nanosec`` then the stages (ms
after the stamp; NaN = not reached for that frame). No rclpy here: the nodes and the demo's monitor
use it.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from std_msgs.msg import Float64MultiArray, MultiArrayDimension

#: Rows kept between two batches (a batch every TRACE_PERIOD at 30 fps fills about 15).
CAPACITY = 64
#: Seconds between the batches a node sends.
TRACE_PERIOD = 0.5
#: A row last marked this recently (ns) waits for the next batch: its frame may still be in the node.
HOLD_NS = 200_000_000
_STAMP_COLUMNS = ("stamp_sec", "stamp_nanosec")


class TraceBatch(NamedTuple):
    """Rows of one node: stamps (ns) and ms after the stamp per stage (NaN: not reached)."""

    node: str
    stages: Tuple[str, ...]
    stamps: List[int]
    ms: np.ndarray  # (rows, stages)


class FrameTrace:
    """The stages' times of the last frames of one node (at most ``capacity`` rows until taken). A
    full trace first calls ``when_full`` (the node sends a batch early: frames may come faster than
    TRACE_PERIOD allows for, a lockstep replay on a fast machine); only a row it leaves no room for
    drops the oldest, counted in ``overwritten``."""

    def __init__(self, node: str, stages: Sequence[str], capacity: int = CAPACITY,
                 clock: Callable[[], int] = time.time_ns) -> None:
        if len(set(stages)) != len(stages) or not stages:
            raise ValueError(f"trace stages must be distinct and not empty: {stages}")
        self.node, self.stages, self.clock = node, tuple(stages), clock
        self._column = {stage: i for i, stage in enumerate(self.stages)}
        self._ms = np.full((capacity, len(self.stages)), math.nan)
        self._stamps = [0] * capacity
        self._touched = [0] * capacity  # clock of each row's last mark
        self._row: Dict[int, int] = {}  # stamp -> row, oldest first
        self._free = list(range(capacity - 1, -1, -1))
        self.overwritten = 0
        self.when_full: Optional[Callable[[], None]] = None

    def _row_of(self, stamp: int) -> int:
        row = self._row.get(stamp)
        if row is None:
            if not self._free and self.when_full is not None:
                self.when_full()
            if not self._free:
                self.overwritten += 1
                self._free.append(self._row.pop(next(iter(self._row))))
            row = self._free.pop()
            self._stamps[row] = stamp
            self._ms[row] = math.nan
            self._row[stamp] = row
        return row

    def mark(self, stamp: int, stage: str, once: bool = False) -> None:
        """``stage`` of the frame stamped ``stamp`` (ns) finished now; ``once``: keep an earlier mark."""
        row, column = self._row_of(stamp), self._column[stage]
        if not (once and self._ms[row, column] == self._ms[row, column]):  # NaN != NaN: not marked yet
            now = self.clock()
            self._ms[row, column] = (now - stamp) * 1e-6
            self._touched[row] = now

    def mark_steps(self, stamp: int, after: str, steps_ms: Mapping[str, float]) -> None:
        """Stages timed by the caller as consecutive durations (ms) starting at the mark ``after``
        (the perception pipeline's own timings)."""
        row = self._row_of(stamp)
        at = self._ms[row, self._column[after]]
        for stage, ms in steps_ms.items():
            at += ms
            self._ms[row, self._column[stage]] = at

    def marked(self, stamp: int) -> bool:
        """Whether the frame stamped ``stamp`` has a row not yet taken."""
        return stamp in self._row

    def take(self, hold_ns: int = HOLD_NS) -> Optional[TraceBatch]:
        """The rows not marked within the last ``hold_ns`` (frames still in this node stay for the
        next batch, so a frame's row is not split), oldest first; None: none."""
        now = self.clock()
        rows = [row for row in self._row.values() if now - self._touched[row] >= hold_ns]
        if not rows:
            return None
        batch = TraceBatch(self.node, self.stages, [self._stamps[r] for r in rows], self._ms[rows].copy())
        for row in rows:
            del self._row[self._stamps[row]]
            self._free.append(row)
        return batch


def to_msg(batch: TraceBatch) -> Float64MultiArray:
    rows, stages = batch.ms.shape
    columns = len(_STAMP_COLUMNS) + stages
    data = np.empty((rows, columns))
    data[:, 0] = [s // 1_000_000_000 for s in batch.stamps]
    data[:, 1] = [s % 1_000_000_000 for s in batch.stamps]
    data[:, 2:] = batch.ms
    msg = Float64MultiArray(data=data.ravel().tolist())
    msg.layout.dim = [MultiArrayDimension(label=batch.node, size=rows, stride=rows * columns),
                      MultiArrayDimension(label=",".join(_STAMP_COLUMNS + batch.stages), size=columns,
                                          stride=columns)]
    return msg


def from_msg(msg: Float64MultiArray) -> TraceBatch:
    """The batch of a message made by to_msg; ValueError when it is not one."""
    if len(msg.layout.dim) != 2:
        raise ValueError("a trace message has two dimensions (rows, columns)")
    rows_dim, columns_dim = msg.layout.dim
    columns = columns_dim.label.split(",")
    if tuple(columns[:2]) != _STAMP_COLUMNS or len(columns) != columns_dim.size \
            or len(msg.data) != rows_dim.size * columns_dim.size:
        raise ValueError(f"not a trace message: columns {columns_dim.label!r}, {len(msg.data)} values")
    data = np.asarray(msg.data, dtype=np.float64).reshape(rows_dim.size, columns_dim.size)
    stamps = [int(sec) * 1_000_000_000 + int(nsec) for sec, nsec in data[:, :2]]
    return TraceBatch(rows_dim.label, tuple(columns[2:]), stamps, data[:, 2:])
