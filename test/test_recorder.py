"""humimic-record against real publishers: one bag of several zstd MCAP files, offered QoS in the
metadata, and a latched topic published before the recorder started (read with the independent
`mcap` reader, not the rosbags library that wrote it); a remapped graph recorded under the names
it uses and read back by humimic's default names."""
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

from humimic_bringup.graph import imitation_graph
from humimic_bringup.runner import Pipeline
from humimic_core.paths import config_file
from humimic_core.robot_config import load_robot_config
from humimic_core.ros_util import LATCHED_QOS, RELIABLE_QOS
from humimic_experiments.bag_io import SegmentedBagWriter, read_messages, topic_summary
from humimic_experiments.session import load_session

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


def test_a_remapped_graph_is_recorded_under_its_names_and_read_by_the_default_ones(tmp_path):
    """The runner's `remap` (a namespace and a topic remap) moves the recorder's topics with the nodes':
    the real driver on the emulated bus, recorded by the graph's recorder, while this test commands
    it on the remapped topic; the session reader finds every topic by its default name."""
    out = tmp_path / "rec"
    specs = imitation_graph({"serial_port": str(tmp_path / "bus"), "record": str(out), "camera": "false",
                             "remap": "__ns:=/robot2 joint_commands:=goals"}, include_external=False)
    joint = load_robot_config(config_file("robot_face.yaml")).servos[0].joint
    pipeline = Pipeline(specs, tmp_path / "logs")
    rclpy.init()
    node = rclpy.create_node("remap_test_commander")
    try:
        pipeline.start(skip=["retarget", "face_perception"])
        commands = node.create_publisher(JointState, "/robot2/goals", RELIABLE_QOS)
        deadline = time.monotonic() + 60
        while commands.get_subscription_count() < 2 and time.monotonic() < deadline:  # driver and recorder
            assert not pipeline.failed(), f"processes failed: {pipeline.failed()}"
            rclpy.spin_once(node, timeout_sec=0.1)
        assert commands.get_subscription_count() == 2, "the driver and the recorder did not both subscribe"
        for i in range(20):
            msg = JointState(name=[joint], position=[0.002 * i])
            msg.header.stamp = node.get_clock().now().to_msg()
            commands.publish(msg)
            rclpy.spin_once(node, timeout_sec=0.05)
        time.sleep(0.5)
    finally:
        pipeline.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    assert not pipeline.failed(), f"processes failed: {pipeline.failed()} (logs in {tmp_path / 'logs'})"
    recorded = topic_summary(out, recorded_names=True)
    assert recorded["/robot2/goals"][1] == 20 and recorded["/robot2/joint_states"][1] > 0, recorded
    assert recorded["/robot2/driver/written_goals"][1] > 0 and recorded["/diagnostics"][1] > 0, recorded
    assert "/joint_commands" not in recorded and "/joint_states" not in recorded
    session = load_session(out)
    assert len(session.series["/joint_commands"]) == 20
    assert session.series["/joint_states"] and session.series["/driver/written_goals"]


def test_a_bag_without_the_name_map_is_read_by_suffix_and_type(tmp_path):
    """A bag of `ros2 bag record` (no humimic name map) of a namespaced graph: a recorded name ending
    in a default name, of its type, reads as that name; an exact name wins; other types stay."""
    with SegmentedBagWriter(tmp_path / "bag") as writer:
        for topic, msgtype in (("/robot2/joint_commands", "sensor_msgs/msg/JointState"),
                               ("/robot2/face/gaze/right", "geometry_msgs/msg/Vector3Stamped"),
                               ("/joint_states", "sensor_msgs/msg/JointState"),
                               ("/robot2/joint_states", "sensor_msgs/msg/JointState"),
                               ("/robot2/face/gaze", "std_msgs/msg/String")):
            writer.write(topic, msgtype, 1, b"\x00\x01\x00\x00")
    assert sorted(topic_summary(tmp_path / "bag")) == ["/face/gaze/right", "/joint_commands", "/joint_states",
                                                      "/robot2/face/gaze", "/robot2/joint_states"]
    assert [m.topic for m in read_messages(tmp_path / "bag", ["/joint_commands"])] == ["/joint_commands"]
