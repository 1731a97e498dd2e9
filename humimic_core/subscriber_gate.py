"""Hold a publisher's first message until its subscribers have matched (no rclpy import)."""
from __future__ import annotations

import time
from typing import Callable, Optional

#: Seconds between our side matching the subscribers and the gate opening: DDS matches the
#: subscriber's side a moment after the publisher's.
MATCH_SETTLE = 0.3


class SubscriberGate:
    """Closed until `minimum` subscribers have been matched for `settle` seconds, or until
    `timeout` seconds have passed (then `warn` is told); once open it stays open."""

    def __init__(self, count: Callable[[], int], minimum: int, timeout: float, warn: Callable[[str], None],
                 settle: float = MATCH_SETTLE, clock: Callable[[], float] = time.monotonic) -> None:
        self.count, self.minimum, self.timeout, self.warn = count, minimum, timeout, warn
        self.settle, self.clock = settle, clock
        self.created = clock()
        self.matched_since: Optional[float] = None
        self.open = False

    def ready(self) -> bool:
        if self.open:
            return True
        now = self.clock()
        matched = self.count()
        if matched >= self.minimum:
            if self.matched_since is None:
                self.matched_since = now
            self.open = now - self.matched_since >= self.settle
        elif now - self.created < self.timeout:
            self.matched_since = None
        else:
            self.warn(f"only {matched} of {self.minimum} subscribers after {self.timeout:.0f} s: starting anyway")
            self.open = True
        return self.open
