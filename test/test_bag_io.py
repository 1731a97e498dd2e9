"""Segmented rosbag2 recordings: write CDR messages, read them back."""
from __future__ import annotations

import numpy as np
import pytest

from humimic_experiments.bag_io import (SegmentedBagWriter, deserialize, read_messages, segments, serialize,
                                 topic_summary, typestore)


def joint_state(i: int) -> bytes:
    types = typestore().types
    ns = 1_000_000_000 + i * 33_000_000
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9), frame_id="")
    msg = types["sensor_msgs/msg/JointState"](header=header, name=["jaw", "neck_yaw"],
                                              position=np.array([0.01 * i, -0.02 * i]),
                                              velocity=np.array([], float), effort=np.array([], float))
    return serialize(msg, "sensor_msgs/msg/JointState")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_with_segments(tmp_path, storage):
    out = tmp_path / "rec"
    with SegmentedBagWriter(out, storage, split_seconds=1.0) as writer:
        for i in range(100):  # 3.3 s of messages -> 4 segments
            writer.write("/joint_commands", "sensor_msgs/msg/JointState", 1_000_000_000 + i * 33_000_000,
                         joint_state(i))
    assert len(segments(out)) == 4
    assert list(read_messages(out, ["/camera/image_raw"])) == [], "a topic filter matching nothing yields nothing"
    assert topic_summary(out) == {"/joint_commands": ("sensor_msgs/msg/JointState", 100)}
    messages = list(read_messages(out))
    assert [m.timestamp for m in messages] == sorted(m.timestamp for m in messages)
    for i, m in enumerate(messages):
        decoded = deserialize(m)
        assert list(decoded.position) == pytest.approx([0.01 * i, -0.02 * i])
        assert decoded.header.stamp.nanosec == (i * 33_000_000) % 1_000_000_000


def test_crash_loses_only_the_open_segment(tmp_path):
    out = tmp_path / "rec"
    writer = SegmentedBagWriter(out, "mcap", split_seconds=1.0)
    for i in range(70):  # segments 0 and 1 complete, segment 2 open and never closed
        writer.write("/joint_commands", "sensor_msgs/msg/JointState", 1_000_000_000 + i * 33_000_000, joint_state(i))
    closed = [p for p in writer.segments[:-1]]
    assert len(list(read_messages(closed[0]))) + len(list(read_messages(closed[1]))) >= 60


def test_refuses_to_overwrite_and_bad_arguments(tmp_path):
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "keep.txt").write_text("earlier data")
    with pytest.raises(FileExistsError):
        SegmentedBagWriter(tmp_path / "rec")
    with pytest.raises(ValueError, match="storage"):
        SegmentedBagWriter(tmp_path / "other", storage="rosbag1")
    with pytest.raises(FileNotFoundError):
        list(read_messages(tmp_path / "empty_missing"))
