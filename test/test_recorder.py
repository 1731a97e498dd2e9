"""humimic-record against real publishers: one bag of several zstd MCAP files, offered QoS in the
metadata, and a latched topic published before the recorder started (read with the independent
`mcap` reader, not the rosbags library that wrote it)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import rclpy
import yaml
from mcap.reader import make_reader
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from humimic_core.ros_util import LATCHED_QOS, RELIABLE_QOS

pytestmark = pytest.mark.timeout(120)


def test_recorder_keeps_latched_topics_qos_and_splits_one_bag(tmp_path):
    out = tmp_path / "rec"
    rclpy.init()
    node = rclpy.create_node("recorder_test_publisher")
    recorder = None
    try:
        description = node.create_publisher(String, "/robot_description", LATCHED_QOS)
        description.publish(String(data="<robot name='test'/>"))  # before the recorder exists
        commands = node.create_publisher(JointState, "/joint_commands", RELIABLE_QOS)
        recorder = subprocess.Popen(
            [sys.executable, "-m", "humimic_experiments.record_node", "--ros-args", "-p", f"output:={out}",
             "-p", "split_seconds:=0.5"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while commands.get_subscription_count() == 0 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert commands.get_subscription_count() == 1, "the recorder did not subscribe"
        for i in range(60):  # 1.5 s: three files or more
            commands.publish(JointState(name=["jaw"], position=[0.01 * i]))
            rclpy.spin_once(node, timeout_sec=0.025)
        time.sleep(0.5)
    finally:
        if recorder is not None:
            recorder.send_signal(signal.SIGINT)
            log = recorder.communicate(timeout=30)[0]
        node.destroy_node()
        rclpy.try_shutdown()
    assert recorder.returncode == 0, log
    info = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert len(info["relative_file_paths"]) >= 3, info["relative_file_paths"]
    assert sorted(p.name for p in out.iterdir()) == sorted(info["relative_file_paths"] + ["metadata.yaml"])
    offered = {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
               for t in info["topics_with_message_count"]}
    # as the graph shows the publisher (discovery carries no history depth: 0, as in ros2 bag's metadata)
    assert [(q["reliability"], q["durability"]) for q in offered["/robot_description"]] == \
        [("reliable", "transient_local")]
    assert [(q["reliability"], q["durability"]) for q in offered["/joint_commands"]] == [("reliable", "volatile")]
    seen = {}
    for name in info["relative_file_paths"]:
        with (out / name).open("rb") as stream:
            reader = make_reader(stream)
            assert {c.compression for c in reader.get_summary().chunk_indexes} == {"zstd"}
            for _, channel, message in reader.iter_messages():
                seen.setdefault(channel.topic, []).append(message.data)
    assert len(seen["/robot_description"]) == 1 and b"<robot name='test'/>" in seen["/robot_description"][0]
    assert len(seen["/joint_commands"]) == 60
