"""Joining a frame's action units with its head angles and gaze, in any arrival order."""
from __future__ import annotations

import itertools

from humimic_retarget.frame_sync import FrameAssembler


def test_any_order_gives_the_same_frame():
    results = []
    for order in itertools.permutations(["aus", "pose", "gaze"]):
        sync = FrameAssembler()
        # an earlier frame teaches the assembler which parts exist
        sync.add_part("pose", 1, {"head_yaw": 0.0})
        sync.add_part("gaze", 1, {"gaze_yaw": 0.0})
        sync.add_action_units(1, {"AU12": 0.0})
        out = []
        for part in order:
            if part == "aus":
                out += sync.add_action_units(2, {"AU12": 3.0})
            elif part == "pose":
                out += sync.add_part("pose", 2, {"head_yaw": 0.2})
            else:
                out += sync.add_part("gaze", 2, {"gaze_yaw": -0.1})
        assert len(out) == 1 and out[0].stamp == 2
        results.append(out[0].channels)
    assert all(r == {"AU12": 3.0, "head_yaw": 0.2, "gaze_yaw": -0.1} for r in results)


def test_no_face_needs_no_parts_and_newer_frames_release_older():
    sync = FrameAssembler()
    sync.add_part("pose", 1, {"head_yaw": 0.1})
    assert [f.channels for f in sync.add_action_units(1, {"AU01": 1.0})] == [{"AU01": 1.0, "head_yaw": 0.1}]
    assert sync.add_action_units(2, {"AU01": 2.0}) == []          # waits for its pose
    released = sync.add_action_units(3, {})                     # frame 3 has no face
    assert [(f.stamp, f.channels) for f in released] == [(2, {"AU01": 2.0}), (3, None)]
    assert sync.add_part("pose", 2, {"head_yaw": 0.5}) == []    # too late: never re-released


def test_expiry_releases_a_frame_whose_parts_never_come():
    sync = FrameAssembler()
    sync.add_part("gaze", 5, {"gaze_yaw": 0.0})
    sync.add_action_units(5, {"AU45": 1.0})
    assert sync.add_action_units(6, {"AU45": 2.0}, arrival=10.0) == []
    assert sync.expire(10.05, timeout=0.1) == []
    frames = sync.expire(10.2, timeout=0.1)
    assert [(f.stamp, f.channels) for f in frames] == [(6, {"AU45": 2.0})]
