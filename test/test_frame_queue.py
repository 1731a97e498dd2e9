"""Perception's frame queue: newest frame first, or in order within a lag (frame_queue)."""
from __future__ import annotations

import pytest

from humimic_perception.frame_queue import MAX_WAITING, FrameQueue

MS = 1_000_000


def test_newest_frame_first_skips_and_counts_the_older_ones():
    queue = FrameQueue(0.0)
    for k in range(5):
        queue.put(k * 33 * MS, k)
    assert queue.take() == 4 and queue.take() is None
    queue.put(200 * MS, 5)
    assert queue.take() == 5, "not busy: nothing skipped"
    c = queue.counts
    assert (c.received, c.processed, c.dropped) == (6, 2, 4) and c.received == c.processed + c.dropped + len(queue)


def test_a_lag_absorbs_a_stall_in_order_and_bounds_it():
    queue = FrameQueue(0.1)
    for k in range(3):
        queue.put(k * 33 * MS, k)
    assert [queue.take(), queue.take(), queue.take()] == [0, 1, 2], "within 0.1 s of the newest: in order"
    for k in range(3, 10):
        queue.put(k * 33 * MS, k)
    assert queue.take() == 6, "frames 3-5 more than 0.1 s behind frame 9: skipped"
    assert queue.counts.dropped == 3 and len(queue) == 3


def test_the_queue_is_bounded_and_a_bad_lag_refused():
    queue = FrameQueue(1e12)
    for k in range(MAX_WAITING + 5):
        queue.put(k, k)
    assert len(queue) == MAX_WAITING and queue.counts.dropped == 5 and queue.take() == 5
    with pytest.raises(ValueError, match="max_frame_lag"):
        FrameQueue(-1.0)
    with pytest.raises(ValueError, match="max_frame_lag"):
        queue.max_lag = float("nan")
    assert queue.max_lag == pytest.approx(1e9), "an unchanged, clamped lag"
