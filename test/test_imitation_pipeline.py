"""End to end: the real nodes as separate processes, a real face video through the real models,
real Dynamixel bytes to the emulated bus; /joint_states must follow the face."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from sensor_msgs.msg import CameraInfo, JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from humimic_bringup.graph import add_camera_subscriber, imitation_graph  # noqa: E402
from humimic_core.paths import config_file  # noqa: E402
from humimic_core.robot_config import load_robot_config  # noqa: E402
from humimic_core.ros_util import RECORDER_RELIABLE_QOS, RECORDER_SENSOR_QOS  # noqa: E402
from humimic_bringup.runner import Pipeline  # noqa: E402
from humimic_core import trace  # noqa: E402
from humimic_core.stamps import to_ns  # noqa: E402
from humimic_core.control_tables import RAD_PER_TICK  # noqa: E402

ROBOT = load_robot_config(config_file("robot_face.yaml"))


class Recorder:
    """Keeps every message of the pipeline's topics with its receive time."""

    def __init__(self) -> None:
        rclpy.init()
        self.node = rclpy.create_node("imitation_test_recorder")
        self.frames: List[int] = []
        self.topics: Dict[str, List[Tuple[float, JointState]]] = {
            "/face/action_units": [], "/joint_commands": [], "/driver/written_goals": [], "/joint_states": []}
        # the camera's CameraInfo carries each frame's stamp: the stamps without the test process
        # having to take in every image
        self.node.create_subscription(CameraInfo, "/camera/camera_info",
                                      lambda m: self.frames.append(to_ns(m.header.stamp)), RECORDER_SENSOR_QOS)
        for topic, store in self.topics.items():
            self.node.create_subscription(JointState, topic, lambda m, s=store: s.append((time.time(), m)),
                                          RECORDER_RELIABLE_QOS)
        #: node -> stamp -> stage -> ms after the stamp, of every node's latency trace
        self.trace: Dict[str, Dict[int, Dict[str, float]]] = {}
        self.node.create_subscription(Float64MultiArray, "/trace", self._trace, RECORDER_RELIABLE_QOS)

    def _trace(self, msg: Float64MultiArray) -> None:
        batch = trace.from_msg(msg)
        rows = self.trace.setdefault(batch.node, {})
        for stamp, ms in zip(batch.stamps, batch.ms):
            # a frame that stayed long in a node may come in two batches: its marks merged, in stage order
            marks = {**rows.get(stamp, {}), **{s: float(v) for s, v in zip(batch.stages, ms) if not np.isnan(v)}}
            rows[stamp] = {s: marks[s] for s in batch.stages if s in marks}

    def spin(self, seconds: float, until=lambda: False) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline and not until():
            rclpy.spin_once(self.node, timeout_sec=0.05)

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.try_shutdown()

    def series(self, topic: str, joint: str) -> List[Tuple[int, float, float]]:
        """(stamp ns, receive time, position) of one joint on a JointState topic."""
        out = []
        for t, msg in self.topics[topic]:
            if joint in msg.name:
                out.append((to_ns(msg.header.stamp), t, msg.position[list(msg.name).index(joint)]))
        return out


def run_pipeline(video: Path, tmp_path: Path, settle: float = 3.0) -> Recorder:
    port = tmp_path / "servo_bus"
    specs = imitation_graph({"video": str(video), "serial_port": str(port), "realtime": "false"},
                            include_external=False)
    add_camera_subscriber(specs)  # the first frame waits for this test's recorder too
    recorder = Recorder()
    pipeline = Pipeline(specs, tmp_path / "logs")
    try:
        # the camera starts once every subscriber and publisher the recording needs is matched
        pipeline.start(skip=["camera"])
        topics = ["/face/action_units", "/joint_commands", "/driver/written_goals", "/joint_states"]
        recorder.spin(60.0, until=lambda: all(recorder.node.count_publishers(t) for t in topics)
                      and recorder.node.count_subscribers("/camera/image_raw") >= 1)
        recorder.spin(1.0)
        pipeline.start()
        camera = pipeline.processes["camera"]
        recorder.spin(150.0, until=lambda: camera.poll() is not None or bool(pipeline.failed()))
        assert not pipeline.failed(), f"processes failed: {pipeline.failed()} (logs in {tmp_path / 'logs'})"
        recorder.spin(settle)
    finally:
        codes = pipeline.stop()
        recorder.close()
    assert all(code == 0 for code in codes.values()), f"exit codes {codes} (logs in {tmp_path / 'logs'})"
    assert recorder.frames, "no camera frames seen"
    return recorder


def assert_within_limits(recorder: Recorder) -> None:
    for topic in ("/joint_commands", "/driver/written_goals", "/joint_states"):
        assert recorder.topics[topic], f"nothing on {topic}"
        for _, msg in recorder.topics[topic]:
            for name, value in zip(msg.name, msg.position):
                servo = ROBOT.servo(name)
                slack = RAD_PER_TICK if topic == "/joint_states" else 1e-9
                assert servo.min - slack <= value <= servo.max + slack, f"{topic} {name}={value}"


def assert_trace_consistent(recorder: Recorder, frames: List[int]) -> None:
    """Every node traced (nearly) every frame; each row's stages are in order, after the stamp; and
    each node marks a frame after the previous node sent it on (a mark taken before a publish call
    against one taken after the receiving callback started, so the order is causal)."""
    nodes = ("camera", "face_perception", "retarget", "dynamixel_driver")
    assert set(nodes) <= set(recorder.trace), f"traced nodes: {sorted(recorder.trace)}"
    for node in nodes:
        rows = recorder.trace[node]
        assert len(set(frames) & set(rows)) >= 0.9 * len(frames), node
        for stamp in set(frames) & set(rows):
            values = list(rows[stamp].values())
            assert values[0] >= 0.0 and values == sorted(values), (node, rows[stamp])
    chain = [("camera", "convert", "face_perception", "receive"), ("face_perception", "convert", "retarget", "receive"),
             ("retarget", "computed", "dynamixel_driver", "receive")]
    for sender, before, receiver, after in chain:
        both = [s for s in frames if before in recorder.trace[sender].get(s, {}) and s in recorder.trace[receiver]]
        assert len(both) >= 0.9 * len(frames), (sender, receiver)
        assert all(recorder.trace[sender][s][before] <= recorder.trace[receiver][s][after] for s in both)


def test_jaw_follows_mouth_opening(shared_media, tmp_path):
    recorder = run_pipeline(shared_media / "pucker_then_mouth_open.mp4", tmp_path)
    # stamps are carried end to end. The camera's frames are best effort (one may be lost under
    # load), so the frames are known from perception's reliable one-message-per-frame output, and
    # every frame the test saw must be among them.
    au_stamps = [to_ns(m.header.stamp) for _, m in recorder.topics["/face/action_units"]]
    frames = sorted(set(au_stamps))
    assert len(frames) == len(au_stamps) >= 205, f"{len(frames)} of 216 frames got one AU message each"
    assert len(set(recorder.frames) - set(frames)) <= 2, "frames lost by perception beyond a start-up one"
    assert len(recorder.frames) >= 200
    written = {to_ns(m.header.stamp) for _, m in recorder.topics["/driver/written_goals"]}
    commanded = {to_ns(m.header.stamp) for _, m in recorder.topics["/joint_commands"]}
    assert len(commanded & set(frames)) >= 0.95 * len(frames)
    assert len(written & set(frames)) >= 0.9 * len(frames)
    # the jaw opens while the mouth is wide open (frames ~71-148) and not during the neutral start
    jaw = ROBOT.servo("jaw")
    goals = {stamp: pos for stamp, _, pos in recorder.series("/driver/written_goals", "jaw")}
    start = [goals[s] for s in frames[:20] if s in goals]
    wide = [goals[s] for s in frames[90:140] if s in goals]
    assert np.mean(start) < jaw.neutral + 0.05
    assert np.mean(wide) > jaw.neutral + 0.12, f"jaw goal during mouth open: {np.mean(wide):.3f} rad"
    # the bus follows: present positions read back from the servo during the open window
    t_open = [t for stamp, t, _ in recorder.series("/driver/written_goals", "jaw") if stamp in set(frames[90:140])]
    present = [p for _, t, p in recorder.series("/joint_states", "jaw") if t_open and t_open[0] <= t <= t_open[-1]]
    assert present and max(present) > jaw.neutral + 0.1
    assert_within_limits(recorder)
    assert_trace_consistent(recorder, frames)


def test_face_leaving_sends_robot_to_neutral(sample_media, tmp_path):
    recorder = run_pipeline(sample_media / "face_noface.mov", tmp_path, settle=4.0)
    aus = recorder.topics["/face/action_units"]
    with_face = [i for i, (_, m) in enumerate(aus) if m.name]
    assert with_face and with_face[0] < 10, "the clip starts with a face"
    assert not aus[-1][1].name, "the clip ends without a face"
    # the robot moved while the face was there ...
    moved = max(abs(p - ROBOT.servo(j).neutral)
                for _, m in recorder.topics["/joint_commands"][: len(with_face)]
                for j, p in zip(m.name, m.position))
    assert moved > 0.03
    # ... and is back at neutral at the end, read back from the servos
    last = recorder.topics["/joint_states"][-1][1]
    for name, position in zip(last.name, last.position):
        assert abs(position - ROBOT.servo(name).neutral) <= 3 * RAD_PER_TICK, f"{name} at {position}"
    assert_within_limits(recorder)
