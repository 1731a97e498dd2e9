"""rosbag2 recordings: one bag split into files, zstd MCAP chunks, offered QoS; write CDR messages,
read them back (also with the independent `mcap` reader)."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

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
def test_round_trip_one_bag_of_several_files(tmp_path, storage):
    out = tmp_path / "rec"
    with SegmentedBagWriter(out, storage, split_seconds=1.0) as writer:
        for i in range(100):  # 3.3 s of messages -> 4 files
            writer.write("/joint_commands", "sensor_msgs/msg/JointState", 1_000_000_000 + i * 33_000_000,
                         joint_state(i))
    assert segments(out) == [out], "one bag"
    info = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    suffix = {"mcap": ".mcap", "sqlite3": ".db3"}[storage]
    assert info["relative_file_paths"] == [f"rec_{i}{suffix}" for i in range(4)]
    assert sorted(p.name for p in out.iterdir()) == sorted(info["relative_file_paths"] + ["metadata.yaml"])
    assert info["message_count"] == 100 == sum(f["message_count"] for f in info["files"])
    assert info["duration"]["nanoseconds"] == 99 * 33_000_000
    assert list(read_messages(out, ["/camera/image_raw"])) == [], "a topic filter matching nothing yields nothing"
    assert topic_summary(out) == {"/joint_commands": ("sensor_msgs/msg/JointState", 100)}
    messages = list(read_messages(out))
    assert [m.timestamp for m in messages] == sorted(m.timestamp for m in messages)
    for i, m in enumerate(messages):
        decoded = deserialize(m)
        assert list(decoded.position) == pytest.approx([0.01 * i, -0.02 * i])
        assert decoded.header.stamp.nanosec == (i * 33_000_000) % 1_000_000_000


def test_crash_loses_only_the_open_file(tmp_path):
    out = tmp_path / "rec"
    writer = SegmentedBagWriter(out, "mcap", split_seconds=1.0)
    for i in range(70):  # files 0 and 1 complete, file 2 open and never closed
        writer.write("/joint_commands", "sensor_msgs/msg/JointState", 1_000_000_000 + i * 33_000_000, joint_state(i))
    assert [p.name for p in writer.files] == ["rec_0.mcap", "rec_1.mcap"]
    assert len(list(read_messages(out))) == 62  # 31 messages in each 1 s file


LATCHED = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, QosTime(0, 0),
              QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)


def test_an_independent_mcap_reader_sees_zstd_chunks_and_offered_qos(tmp_path):
    out = tmp_path / "rec"
    with SegmentedBagWriter(out, "mcap", split_seconds=1.0) as writer:
        writer.write("/robot_description", "std_msgs/msg/String", 900_000_000,
                     serialize(typestore().types["std_msgs/msg/String"](data="<robot/>"), "std_msgs/msg/String"),
                     qos=[LATCHED])
        for i in range(40):
            writer.write("/joint_commands", "sensor_msgs/msg/JointState", 1_000_000_000 + i * 33_000_000,
                         joint_state(i))
    info = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    offered = {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
               for t in info["topics_with_message_count"]}
    assert offered["/robot_description"][0]["durability"] == "transient_local"
    assert offered["/robot_description"][0]["depth"] == 1
    assert offered["/joint_commands"] == []
    counts = {}
    for name in info["relative_file_paths"]:
        with (out / name).open("rb") as stream:
            reader = make_reader(stream)
            summary = reader.get_summary()
            assert {c.compression for c in summary.chunk_indexes} == {"zstd"}
            for channel in summary.channels.values():
                assert channel.message_encoding == "cdr"
                assert "offered_qos_profiles" in channel.metadata
            for schema, channel, message in reader.iter_messages():
                assert schema.encoding == "ros2msg"
                counts[channel.topic] = counts.get(channel.topic, 0) + 1
    assert counts == {"/robot_description": 1, "/joint_commands": 40}
    assert len(info["relative_file_paths"]) == 2


def test_refuses_to_overwrite_and_bad_arguments(tmp_path):
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "keep.txt").write_text("earlier data")
    with pytest.raises(FileExistsError):
        SegmentedBagWriter(tmp_path / "rec")
    with pytest.raises(ValueError, match="storage"):
        SegmentedBagWriter(tmp_path / "other", storage="rosbag1")
    with pytest.raises(FileNotFoundError):
        list(read_messages(tmp_path / "empty_missing"))


def test_older_segmented_recordings_are_read_and_a_folder_of_recordings_is_none(tmp_path):
    old = tmp_path / "old"
    for i in range(2):  # an older recording: one complete bag per segment
        with SegmentedBagWriter(old / f"segment_{i:04d}", "mcap", split_seconds=3600.0) as writer:
            writer.write("/joint_commands", "sensor_msgs/msg/JointState", 1_000_000_000 * (i + 1), joint_state(i))
    assert segments(old) == [old / "segment_0000", old / "segment_0001"]
    assert len(list(read_messages(old))) == 2
    sessions = tmp_path / "sessions"
    with SegmentedBagWriter(sessions / "s01", "mcap") as writer:
        writer.write("/joint_commands", "sensor_msgs/msg/JointState", 1_000_000_000, joint_state(0))
    with pytest.raises(FileNotFoundError):
        segments(sessions)
