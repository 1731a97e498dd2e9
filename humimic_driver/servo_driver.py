"""What the driver node does, without ROS: goal bookkeeping, watchdog, bus statistics, safe shutdown.

Times are integer nanoseconds of the node's clock. Every method that touches the bus catches
bus failures (``BusError``), counts them and reports them instead of raising, so one bad cycle
never takes the driver down.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from humimic_driver.bus import BusError, JointReading, ServoBus

#: Commands whose latency (command stamp -> bus write) is kept for the percentiles.
LATENCY_WINDOW = 300
#: Longest wait for the joints to reach neutral on shutdown before torque goes off (s).
SHUTDOWN_NEUTRAL_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Written:
    """Goals that were just written to the bus (rad, all joints, clamped)."""

    goals: Dict[str, float]
    unknown: List[str]  # command names that are not joints of this robot


@dataclass(frozen=True)
class BusHealth:
    ok: bool
    message: str
    values: Dict[str, str]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending sequence; NaN if empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


class ServoDriver:
    """Holds one goal per joint and writes them all on every command (one sync write)."""

    def __init__(self, bus: ServoBus, command_timeout_ns: int, now_ns: int) -> None:
        self.bus = bus
        self.goals: Dict[str, float] = {s.joint: s.neutral for s in bus.servos}
        self._timeout_ns = command_timeout_ns
        self._last_command_ns = now_ns
        self._neutral_sent = False
        self.writes = self.reads = self.comm_errors = 0
        self.last_error = ""
        self._last_ok = True
        self._latencies: deque = deque(maxlen=LATENCY_WINDOW)

    def command(self, names: Sequence[str], positions: Sequence[float], stamp_ns: int,
                now_ns: int) -> Optional[Written]:
        """Merge a (partial) joint command into the goals and write them.

        Unknown names are ignored (reported in ``Written.unknown``); a non-finite position leaves
        that joint's goal unchanged. Returns None when the write failed (counted in comm_errors).
        ValueError if names and positions differ in length.
        """
        if len(names) != len(positions):
            raise ValueError(f"joint command has {len(names)} names but {len(positions)} positions")
        unknown = []
        goals = dict(self.goals)
        for name, value in zip(names, positions):
            if name not in goals:
                unknown.append(name)
            elif math.isfinite(value):
                goals[name] = float(value)
        self._last_command_ns = now_ns
        self._neutral_sent = False
        written = self._write(goals)
        if written is None:
            return None
        self._latencies.append((now_ns - stamp_ns) * 1e-9)
        return Written(written, unknown)

    def watchdog(self, now_ns: int) -> Optional[Dict[str, float]]:
        """Write neutral once when no command came for the command timeout; the goals written, else None."""
        if self._neutral_sent or now_ns - self._last_command_ns <= self._timeout_ns:
            return None
        written = self._write({s.joint: s.neutral for s in self.bus.servos})
        self._neutral_sent = written is not None
        return written

    def read_state(self) -> Optional[JointReading]:
        """Present positions and velocities, or None when the read failed (counted)."""
        try:
            reading = self.bus.read_state()
        except BusError as exc:
            self._failed(exc)
            return None
        self.reads += 1
        self._last_ok = True
        return reading

    def health(self) -> BusHealth:
        """State of the bus for diagnostics: OK unless the last bus operation failed."""
        ordered = sorted(self._latencies)
        values = {
            "port": self.bus.port_name,
            "writes": str(self.writes),
            "reads": str(self.reads),
            "comm_errors": str(self.comm_errors),
            "latency_p50_ms": f"{percentile(ordered, 50) * 1e3:.2f}",
            "latency_p99_ms": f"{percentile(ordered, 99) * 1e3:.2f}",
            "latency_samples": str(len(ordered)),
            "last_error": self.last_error,
        }
        message = "bus OK" if self._last_ok else f"bus error: {self.last_error}"
        return BusHealth(self._last_ok, message, values)

    def shutdown(self, torque_off: bool) -> List[str]:
        """Move to neutral (waiting for arrival), then torque off if asked, then close; problems met."""
        problems = []
        try:
            if not self.bus.move_to_neutral(SHUTDOWN_NEUTRAL_TIMEOUT_S):
                problems.append(f"joints did not reach neutral within {SHUTDOWN_NEUTRAL_TIMEOUT_S} s")
        except BusError as exc:
            problems.append(f"move to neutral failed: {exc}")
        if torque_off:
            try:
                self.bus.torque_off()
            except BusError as exc:
                problems.append(str(exc))
        self.bus.close()
        return problems

    def _write(self, goals: Dict[str, float]) -> Optional[Dict[str, float]]:
        try:
            written = self.bus.write_goals(goals)
        except BusError as exc:
            self._failed(exc)
            return None
        self.goals = written
        self.writes += 1
        self._last_ok = True
        return written

    def _failed(self, exc: Exception) -> None:
        self.comm_errors += 1
        self.last_error = str(exc)
        self._last_ok = False
