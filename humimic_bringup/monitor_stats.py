"""What the demo's monitor keeps of a run, in bounded memory for a run of any length: message
counts and rates, latency histograms (percentiles within 1 %) and evenly thinned time series for
the picture, and the per-stage latency of the nodes' traces. No rclpy: the monitor node feeds it (humimic_bringup/demo.py)."""
from __future__ import annotations

import math
from typing import Any, Dict, Generic, List, Mapping, Optional, Sequence, Tuple, TypeVar

import numpy as np

T = TypeVar("T")

#: Latencies outside [0, MAX_LATENCY_MS] come from absurd stamps (another clock, a replayed bag):
#: counted as ignored, not in the percentiles.
MAX_LATENCY_MS = 10_000.0
#: Histogram bins grow by this ratio from MIN_LATENCY_MS: percentiles within 1 %.
BIN_RATIO = 1.01
MIN_LATENCY_MS = 0.01


class LatencyHistogram:
    """Count, max and log-binned histogram of latencies (ms) in [0, MAX_LATENCY_MS]; others counted
    in ``ignored``."""

    _BINS = int(math.ceil(math.log(MAX_LATENCY_MS / MIN_LATENCY_MS, BIN_RATIO))) + 2

    def __init__(self) -> None:
        self.counts = np.zeros(self._BINS, np.int64)
        self.n = 0
        self.max = 0.0
        self.ignored = 0

    def add(self, ms: float) -> None:
        if not 0.0 <= ms <= MAX_LATENCY_MS:  # NaN too
            self.ignored += 1
            return
        index = 0 if ms < MIN_LATENCY_MS else 1 + int(math.log(ms / MIN_LATENCY_MS, BIN_RATIO))
        self.counts[min(index, self._BINS - 1)] += 1
        self.n += 1
        self.max = max(self.max, ms)

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100): the geometric centre of its bin, at most the max."""
        rank = max(1, math.ceil(q / 100.0 * self.n))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        if index == 0:
            return MIN_LATENCY_MS / 2
        return min(self.max, MIN_LATENCY_MS * BIN_RATIO ** (index - 0.5))

    def summary(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"n": self.n}
        if self.n:
            out.update(p50_ms=self.percentile(50), p99_ms=self.percentile(99), max_ms=self.max)
        if self.ignored:
            out["ignored_absurd_stamps"] = self.ignored
        return out


class Thinned(Generic[T]):
    """At most ``limit`` samples of a stream, evenly spread over all of it: every ``stride``-th
    sample is kept; when full, every other kept one is dropped and the stride doubles."""

    def __init__(self, limit: int) -> None:
        self.limit = max(2, limit)
        self.items: List[T] = []
        self.stride = 1
        self._seen = 0

    def wants_next(self) -> bool:
        """Whether the next sample will be kept (to skip preparing one that will not)."""
        return self._seen % self.stride == 0

    def add(self, item: T) -> None:
        if self.wants_next():
            self.items.append(item)
            if len(self.items) >= self.limit:
                self.items = self.items[::2]
                self.stride *= 2
        self._seen += 1


class RunRecord:
    """Counts, rates over the streaming window, latency per topic and thinned series for the
    picture; ``topics[0]`` is the camera topic that opens and closes the streaming window."""

    def __init__(self, topics: Sequence[str], series_limit: int = 4000, snapshot_limit: int = 24,
                 snapshot_period: float = 1.0) -> None:
        self.topics = tuple(topics)
        self.counts: Dict[str, int] = dict.fromkeys(self.topics, 0)
        self.latency: Dict[str, LatencyHistogram] = {}
        self.first_frame: Optional[float] = None
        self.last_frame: Optional[float] = None
        self._at_first: Dict[str, int] = {}
        self._at_last: Dict[str, int] = {}
        self.frames_with_face = 0
        self.joints: Thinned[Tuple[float, Dict[str, float]]] = Thinned(series_limit)
        self.commands: Thinned[Tuple[float, Dict[str, float]]] = Thinned(series_limit)
        self.aus: Thinned[Tuple[float, Dict[str, float]]] = Thinned(series_limit)
        self.snapshots: Thinned[Tuple[float, Any]] = Thinned(snapshot_limit)
        self.snapshot_period = snapshot_period
        self._last_snapshot = -math.inf

    def message(self, topic: str, stamp: float, now: float, latency: bool = True) -> None:
        """A message of ``topic`` with header stamp ``stamp`` received at ``now`` (s, same clock)."""
        if topic == self.topics[0] and self.first_frame is None:
            self.first_frame = now
            self._at_first = dict(self.counts)
        self.counts[topic] = self.counts.get(topic, 0) + 1
        if topic == self.topics[0]:
            self.last_frame = now
            self._at_last = dict(self.counts)
        if latency:
            self.latency.setdefault(topic, LatencyHistogram()).add((now - stamp) * 1e3)

    def action_units(self, now: float, values: Dict[str, float]) -> None:
        self.frames_with_face += bool(values)
        self.aus.add((now, values))

    def wants_snapshot(self, now: float) -> bool:
        """Whether an image at ``now`` would be kept (at most one per snapshot_period)."""
        if now - self._last_snapshot < self.snapshot_period:
            return False
        self._last_snapshot = now
        if self.snapshots.wants_next():
            return True
        self.snapshots.add(None)  # counted, not kept
        return False

    @property
    def frames(self) -> int:
        return self.counts.get(self.topics[0], 0)

    def rates(self) -> Dict[str, float]:
        """Messages per second of each topic while the camera streamed (first to last frame), so
        the driver's start-up moves and the glide to neutral after the clip do not count."""
        if self.first_frame is None or self.last_frame is None or self.last_frame <= self.first_frame:
            return dict.fromkeys(self.topics, 0.0)
        span = self.last_frame - self.first_frame
        return {t: (self._at_last.get(t, 0) - self._at_first.get(t, 0)) / span for t in self.topics}

    def retained(self) -> int:
        """Samples held in memory (bounded whatever the length of the run)."""
        return sum(len(s.items) for s in (self.joints, self.commands, self.aus, self.snapshots))


#: Camera stamps the trace statistics remember, to tell frames from other stamped commands.
KNOWN_FRAMES = 1024


class TraceStats:
    """Per-stage latency of the nodes' traces (humimic_core/trace.py) over a run: for every node's
    stage, the ms after the camera stamp and the step since the node's previous stage, as
    histograms. Only rows of camera frames count (``frame`` names them): a retarget command the
    timer made without a frame is traced by the driver too."""

    def __init__(self, nodes: Sequence[str]) -> None:
        self.nodes = tuple(nodes)
        self.stages: Dict[str, Tuple[str, ...]] = {}
        self.after: Dict[Tuple[str, str], LatencyHistogram] = {}
        self.step: Dict[Tuple[str, str], LatencyHistogram] = {}
        self._frames: Dict[int, None] = {}
        self.other_rows = 0

    def frame(self, stamp_ns: int) -> None:
        self._frames[stamp_ns] = None
        if len(self._frames) > KNOWN_FRAMES:
            del self._frames[next(iter(self._frames))]

    def add(self, batch: Any) -> None:
        """A humimic_core.trace.TraceBatch."""
        stages = self.stages.setdefault(batch.node, batch.stages)
        if stages != batch.stages:
            raise ValueError(f"trace of {batch.node} changed its stages: {stages} -> {batch.stages}")
        for stamp, row in zip(batch.stamps, batch.ms):
            if stamp not in self._frames:
                self.other_rows += 1
                continue
            previous = math.nan
            for stage, ms in zip(stages, row):
                if math.isnan(ms):
                    continue
                self.after.setdefault((batch.node, stage), LatencyHistogram()).add(float(ms))
                if not math.isnan(previous):
                    self.step.setdefault((batch.node, stage), LatencyHistogram()).add(float(ms - previous))
                previous = ms

    def rows(self) -> List[Dict[str, Any]]:
        """One row per stage, in pipeline order (``nodes``, then any other), each stage in its node's
        order: stage ("node/stage"), after_stamp and step summaries (step: none for a node's first)."""
        nodes = [n for n in self.nodes if n in self.stages] + sorted(set(self.stages) - set(self.nodes))
        return [{"stage": f"{node}/{stage}", "after_stamp": self.after[(node, stage)].summary(),
                 "step": self.step[(node, stage)].summary() if (node, stage) in self.step else {}}
                for node in nodes for stage in self.stages[node] if (node, stage) in self.after]


def trace_table(rows: Sequence[Mapping[str, Any]]) -> List[str]:
    """The trace rows as text lines: stage, ms after the camera stamp p50 / p99, step p50 / p99."""
    def cell(summary: Mapping[str, Any], key: str) -> str:
        return f"{summary[key]:.2f}" if summary.get("n") else "-"

    lines = [f"{'stage':34s} {'after stamp p50':>15s} {'p99':>8s} {'step p50':>9s} {'p99':>8s} {'frames':>7s}"]
    lines += [f"{r['stage']:34s} {cell(r['after_stamp'], 'p50_ms'):>15s} {cell(r['after_stamp'], 'p99_ms'):>8s} "
              f"{cell(r['step'], 'p50_ms'):>9s} {cell(r['step'], 'p99_ms'):>8s} {r['after_stamp']['n']:7d}"
              for r in rows]
    return lines
