"""SubscriberGate: a first message held back until its subscribers matched, or a timeout."""
from __future__ import annotations

from typing import List

from humimic_core.subscriber_gate import SubscriberGate


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make(counts: List[int], warnings: List[str], clock: Clock) -> SubscriberGate:
    return SubscriberGate(lambda: counts[0], minimum=2, timeout=10.0, warn=warnings.append, settle=0.3, clock=clock)


def test_opens_after_the_subscribers_stayed_matched_for_the_settle_time():
    counts, warnings, clock = [1], [], Clock()
    gate = make(counts, warnings, clock)
    assert not gate.ready()
    counts[0] = 2
    assert not gate.ready()  # just matched
    clock.t += 0.2
    assert not gate.ready()
    counts[0] = 1  # one went away again: the settle time starts over
    clock.t += 0.2
    assert not gate.ready()
    counts[0] = 2
    assert not gate.ready()
    clock.t += 0.31
    assert gate.ready() and not warnings
    counts[0] = 0
    assert gate.ready(), "once open it stays open"


def test_opens_with_a_warning_after_the_timeout():
    counts, warnings, clock = [1], [], Clock()
    gate = make(counts, warnings, clock)
    clock.t += 9.9
    assert not gate.ready() and not warnings
    clock.t += 0.2
    assert gate.ready()
    assert warnings == ["only 1 of 2 subscribers after 10 s: starting anyway"]
    assert gate.ready() and len(warnings) == 1
