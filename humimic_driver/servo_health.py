"""What the driver knows about each servo's health: its mode, comm error rate, hardware error,
temperature and voltage, and when to try it again. Bookkeeping only, no I/O; times are
time.monotonic() seconds.

Modes: ``active`` (answering, driven), ``stale`` (stopped answering: re-pinged with backoff),
``fault`` (hardware error: read but not driven; rebooted with backoff up to a limit),
``rebooting`` (reboot sent: pinged until it answers again).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Optional

from humimic_core.robot_config import Servo

ACTIVE, STALE, FAULT, REBOOTING = "active", "stale", "fault", "rebooting"
#: Transactions whose outcome makes up the comm error rate.
COMM_WINDOW = 200


@dataclass
class Backoff:
    """Retry delays from ``first`` doubling up to ``longest`` seconds."""

    first: float
    longest: float
    delay: float = 0.0
    due: float = 0.0

    def reset(self, now: float, delay: Optional[float] = None) -> None:
        """Next try after ``delay`` (default ``first``); the delays double from there."""
        self.delay = self.first if delay is None else delay
        self.due = now + self.delay

    def failed(self, now: float) -> None:
        """Another try failed: wait twice as long (at most ``longest``)."""
        self.delay = min(self.longest, max(self.first, 2.0 * self.delay))
        self.due = now + self.delay

    def is_due(self, now: float) -> bool:
        return now >= self.due


@dataclass
class ServoHealth:
    """One servo, as last seen."""

    servo: Servo
    retry: Backoff
    mode: str = ACTIVE
    since: float = 0.0  # when the mode was entered
    problem: str = ""  # why it is not active, or the last comm problem
    consecutive_failures: int = 0
    last_reply: float = 0.0  # when it last answered
    transactions: int = 0
    failures: int = 0
    crc_errors: int = 0
    hardware_error: int = 0
    reboots: int = 0
    temperature: float = math.nan
    voltage: float = math.nan
    position: float = math.nan
    hot: bool = False
    homing_until: Optional[float] = None  # moving slowly (start-up, recovery) until then or until arrived
    homing_goal: float = math.nan  # where the slow move started for
    window: Deque[bool] = field(default_factory=lambda: deque(maxlen=COMM_WINDOW))

    @property
    def comm_error_rate(self) -> float:
        """Failed fraction of the last COMM_WINDOW transactions (0 when none yet)."""
        return sum(self.window) / len(self.window) if self.window else 0.0

    def record(self, failures: int, crc_errors: int, answered: bool, now: float) -> None:
        """Outcome of one read cycle: failed attempts (timeouts + CRC errors), and whether it answered at last."""
        self.window.extend([True] * failures + ([False] if answered else []))
        self.transactions += failures + int(answered)
        self.failures += failures
        self.crc_errors += crc_errors
        self.consecutive_failures = 0 if answered else self.consecutive_failures + 1
        if answered:
            self.last_reply = now

    def enter(self, mode: str, now: float, problem: str = "") -> None:
        """Change mode; back to active, the comm error rate starts afresh (the outage was its own state)."""
        self.mode, self.since, self.problem = mode, now, problem
        self.consecutive_failures = 0
        if mode == ACTIVE:
            self.window.clear()
            self.last_reply = now
