"""Imitation metrics from stamped series: per-stage latency, frame drops, and the AU-based fidelity
(Pearson correlation and lag between the human's AU curves and the expression the robot is expected
to show, through the inverse of the same mapping: it cannot see perception errors nor a wrong sign
in the mapping; humimic_experiments.kinematic measures the face's geometry against the joints)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from humimic_core.topics import CAMERA_IMAGE, absolute

#: Grid (Hz) both curves are resampled to before correlating.
FIDELITY_RATE = 30.0


def latency_stats(latencies_ms: Sequence[float]) -> Dict[str, float]:
    """Count, mean, p50, p90, p99 and max of latencies in ms (n = 0 when empty)."""
    a = np.asarray([x for x in latencies_ms if math.isfinite(x)], dtype=float)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "mean_ms": float(a.mean()), "p50_ms": float(np.percentile(a, 50)),
            "p90_ms": float(np.percentile(a, 90)), "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max())}


def stage_latencies(arrivals: Mapping[str, Sequence[Tuple[int, int]]]) -> Dict[str, Dict[str, float]]:
    """Latency from the camera stamp to each topic's arrival: topic -> stats.

    ``arrivals[topic]`` holds (arrival ns, header stamp ns) of every message; a message whose
    stamp is not a camera frame's (e.g. a glide command stamped by a timer) is left out.
    """
    frames = {stamp for _, stamp in arrivals.get(absolute(CAMERA_IMAGE), [])}
    out = {}
    for topic, items in arrivals.items():
        if topic == absolute(CAMERA_IMAGE):
            continue
        out[topic] = latency_stats([(t - s) * 1e-6 for t, s in items if s in frames])
    return out


def drop_rate(published: Sequence[int], reached: Sequence[int]) -> float:
    """Fraction of published frame stamps that never reached a later stage."""
    sent = set(published)
    if not sent:
        return 0.0
    return 1.0 - len(sent & set(reached)) / len(sent)


@dataclass(frozen=True)
class Fidelity:
    channel: str
    pearson: float        # at zero lag
    best_pearson: float   # at the best lag within 0..max_lag (the robot following, never leading)
    lag_s: float          # >= 0: the robot follows the human by this much
    n: int
    human_std: float
    robot_std: float

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)


def _resample(t: np.ndarray, x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    order = np.argsort(t)
    return np.interp(grid, t[order], x[order])


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 3:
        return math.nan
    sa, sb = a.std(), b.std()
    if sa < 1e-9 or sb < 1e-9:
        return math.nan
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def fidelity(channel: str, human: Tuple[Sequence[float], Sequence[float]],
             robot: Tuple[Sequence[float], Sequence[float]], max_lag_s: float = 1.0,
             window: Optional[Tuple[float, float]] = None) -> Fidelity:
    """Pearson correlation of two (times s, values) curves on their common span, and the lag
    (robot behind human) in [0, max_lag_s] that maximises it. NaN where a curve is flat."""
    th, xh = (np.asarray(v, float) for v in human)
    tr, xr = (np.asarray(v, float) for v in robot)
    ok_h, ok_r = np.isfinite(xh) & np.isfinite(th), np.isfinite(xr) & np.isfinite(tr)
    th, xh, tr, xr = th[ok_h], xh[ok_h], tr[ok_r], xr[ok_r]
    if th.size < 3 or tr.size < 3:
        return Fidelity(channel, math.nan, math.nan, math.nan, 0, math.nan, math.nan)
    start, end = max(th.min(), tr.min()), min(th.max(), tr.max())
    if window is not None:
        start, end = max(start, window[0]), min(end, window[1])
    n = int((end - start) * FIDELITY_RATE) + 1
    if n < 3:
        return Fidelity(channel, math.nan, math.nan, math.nan, max(n, 0), math.nan, math.nan)
    grid = start + np.arange(n) / FIDELITY_RATE
    h, r = _resample(th, xh, grid), _resample(tr, xr, grid)
    zero = _pearson(h, r)
    best, best_lag = zero, 0
    for lag in range(1, min(int(max_lag_s * FIDELITY_RATE), n - 3) + 1):
        value = _pearson(h[:-lag], r[lag:])
        if math.isfinite(value) and (not math.isfinite(best) or value > best):
            best, best_lag = value, lag
    return Fidelity(channel, zero, best, best_lag / FIDELITY_RATE if math.isfinite(best) else math.nan, n,
                    float(h.std()), float(r.std()))


def fidelity_table(human: Mapping[str, Tuple[Sequence[float], Sequence[float]]],
                   robot: Mapping[str, Tuple[Sequence[float], Sequence[float]]], max_lag_s: float = 1.0,
                   segments: Sequence[Tuple[str, float, float]] = ()) -> List[Dict[str, object]]:
    """One row per channel present in both (overall), then per named segment (start s, end s)."""
    rows: List[Dict[str, object]] = []
    for name, window in [("all", None)] + [(s[0], (s[1], s[2])) for s in segments]:
        for channel in sorted(set(human) & set(robot)):
            row = fidelity(channel, human[channel], robot[channel], max_lag_s, window).as_dict()
            rows.append({"segment": name, **row})
    return rows
