"""The demo summary keeps frames perception dropped apart from frames without a face."""
from __future__ import annotations

from humimic_bringup.demo import frame_counts


def test_dropped_frames_are_not_counted_as_frames_without_a_face():
    counts = frame_counts(12, 9, 7, {"face_perception: frames/dropped": "3", "face_perception: frames/processed": "9"})
    assert counts == {"frames_received": 12, "frames_processed": 9, "frames_with_face": 7, "frames_no_face": 2,
                      "frames_dropped_by_perception": 3}
    assert frame_counts(1, 1, 0, {})["frames_dropped_by_perception"] is None, "not reported"
