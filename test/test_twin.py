"""The face twin: the real renderer read by the project's own perception (ONNX face mesh, AUs)."""
from __future__ import annotations

from typing import Dict, List, Mapping

import numpy as np
import pytest

from humimic_core.paths import config_file, media_dir
from humimic_core.robot_config import ConfigError, load_robot_config, parse_robot_config
from humimic_perception.intrinsics import Intrinsics
from humimic_perception.landmarks import make_backend
from humimic_perception.perception import FacePerception
from humimic_perception.sim.face_twin import FaceTwin

NEUTRAL_FRAMES = 10
BROWS = ("brow_inner_left", "brow_inner_right", "brow_outer_left", "brow_outer_right")


@pytest.fixture(scope="module")
def twin(sample_media) -> FaceTwin:
    from humimic_perception.sim.neutral_face import prepare

    return FaceTwin(prepare(), load_robot_config(config_file("robot_face.yaml")).servos)


def perceive(twin: FaceTwin, poses: List[Mapping[str, float]]) -> List[Dict[str, float]]:
    """The AUs perception reads from the twin in each pose, after NEUTRAL_FRAMES neutral renders."""
    perception = FacePerception(make_backend("onnx", device="cpu"), NEUTRAL_FRAMES)
    size = twin.face.size
    intrinsics = Intrinsics.from_fov(size, size, 60.0)
    perception.recapture_neutral()
    results = [perception.process(twin.render(pose), intrinsics) for pose in [{}] * NEUTRAL_FRAMES + list(poses)]
    perception.close()
    assert all(r.face for r in results), "the twin is not read as a face"
    return [r.action_units for r in results[NEUTRAL_FRAMES:]]


def ramp(joints, top: float, steps: int = 4) -> List[Dict[str, float]]:
    return [{j: top * k / steps for j in joints} for k in range(steps + 1)]


def test_jaw_lids_and_brows_read_as_their_action_units(twin):
    """Opening the jaw raises lips part and jaw drop, closing the lids raises AU45, raising the
    brows raises AU01/AU02, each more as the joint moves further; the other AUs stay put."""
    jaw = perceive(twin, ramp(["jaw"], 0.45))
    for code in ("AU25", "AU26"):
        series = [a[code] for a in jaw]
        assert series[-1] > series[0] + 1.0, (code, series)
        assert series[-1] >= series[len(series) // 2] >= series[0], (code, series)
    assert abs(jaw[-1]["AU45"] - jaw[0]["AU45"]) < 0.5
    lids = perceive(twin, ramp(["upper_lid_left", "upper_lid_right"], 0.9))
    series = [a["AU45"] for a in lids]
    assert series[-1] > series[0] + 2.0 and series[-1] >= series[2], series
    assert abs(lids[-1]["AU26"] - lids[0]["AU26"]) < 0.5
    brows = perceive(twin, ramp(BROWS, 0.35))
    for code in ("AU01", "AU02"):
        series = [a[code] for a in brows]
        assert series[-1] > series[0] + 1.0, (code, series)
    assert brows[-1]["AU04"] <= brows[0]["AU04"] + 0.2


def test_the_twin_moves_only_where_a_joint_moves_it(twin):
    neutral = twin.render({})
    assert np.array_equal(neutral, twin.render({"jaw": 0.0, "neck_yaw": 0.0}))
    opened = twin.render({"jaw": 0.45})
    assert np.array_equal(opened, twin.render({"jaw": 3.0}))  # a joint stays within its limits
    changed = np.argwhere(np.abs(opened.astype(int) - neutral.astype(int)).max(2) > 8)
    assert changed[:, 0].min() > twin.neutral[[145, 374], 1].max()  # the eyes and above stay put
    assert changed[:, 0].max() > twin.neutral[14, 1] + 0.3 * twin.iod  # the chin drops
    left = twin.vertices({"eyes_yaw": 0.4})
    assert left[473, 0] > twin.neutral[473, 0] + 1.0 and left[468, 0] > twin.neutral[468, 0] + 1.0
    shut = twin.vertices({"upper_lid_left": 0.9, "lower_lid_left": -0.4})
    assert shut[386, 1] <= shut[374, 1]  # a lid stops at the other


def test_twin_entries_are_validated():
    raw = {"servos": [{"joint": "jaw", "id": 1, "model": "XL330-M288", "min": 0.0, "max": 0.4, "neutral": 0.0}]}
    for twin_entry, message in (([{"region": "chin"}], "region"), ([{"region": "jaw", "move": [1]}], "move"),
                                ([{"rotate": [0, 0, 0]}], "rotate"), ([{"region": "jaw", "move": [0, 1], "falloff": -1}],
                                                                      "falloff"),
                                ([{"rotate": [0, 1, 0], "region": "jaw"}], "rotate")):
        raw["servos"][0]["twin"] = twin_entry
        with pytest.raises(ConfigError, match=rf"servos\[0\]\.twin\[0\].*{message}|{message}"):
            parse_robot_config(raw)
    raw["servos"][0]["twin"] = [{"region": "jaw", "move": [0, 0.8], "falloff": 0.5}, {"rotate": [0, 2, 0]}]
    servo = parse_robot_config(raw).servos[0]
    assert servo.twin[0].move == (0.0, 0.8) and servo.twin[1].rotate == (0.0, 1.0, 0.0)


def test_robot_face_argument_adds_a_watched_face_and_leaves_the_person_pipeline_alone():
    from humimic_bringup.graph import imitation_graph
    from humimic_bringup.runner import command

    person = imitation_graph({}, include_external=False)
    for source, camera in (("twin", "face_twin"), ("/dev/video2", "robot_face_camera")):
        specs = imitation_graph({"robot_face": source}, include_external=False)
        assert [s for s in specs if s.name in {p.name for p in person}] == person
        added = {s.name: s for s in specs if s.name not in {p.name for p in person}}
        assert set(added) == {camera, "robot_face_perception"}
        watcher = added["robot_face_perception"]
        assert watcher.namespace == "robot_face" and ("/tf", "/robot_face/tf") in watcher.remappings
        cmd = command(watcher)
        assert "__ns:=/robot_face" in cmd and "smoothing.enabled:=true" in cmd and "--params-file" not in cmd
    assert added["robot_face_camera"].parameters["source"] == "/dev/video2"
    shipped = str(config_file("robot_face.yaml"))
    twin = next(s for s in imitation_graph({"robot_face": "twin", "robot_config": shipped}, include_external=False)
                if s.name == "face_twin")
    assert twin.namespace == "" and twin.parameters["robot_config"] == shipped


def test_twin_node_renders_each_joint_state_with_its_stamp(sample_media):
    """The real node: a joint state in, the face for it out on robot_face/camera/image_raw with the
    joint state's stamp; its parameter defaults are config/humimic.yaml's."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image, JointState

    from humimic_core.parameters import node_parameters
    from humimic_core.ros_util import RELIABLE_QOS, SENSOR_QOS
    from humimic_core.topics import JOINT_STATES, ROBOT_FACE_IMAGE
    from humimic_perception.ros_convert import image_from_msg
    from humimic_perception.sim.twin_node import TwinNode

    rclpy.init()
    try:
        node = TwinNode()
        values = node_parameters(config_file("humimic.yaml"), "face_twin")
        assert {n: node.get_parameter(n).value for n in values} == values
        probe = rclpy.create_node("twin_probe")
        images = []
        probe.create_subscription(Image, ROBOT_FACE_IMAGE, images.append, SENSOR_QOS)
        pub = probe.create_publisher(JointState, JOINT_STATES, RELIABLE_QOS)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.add_node(probe)
        for i, jaw in enumerate((0.0, 0.45)):
            msg = JointState(name=["jaw"], position=[jaw])
            msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + i, 5
            for _ in range(100):
                if len(images) > i:
                    break
                if node.latest is None and node.rendered == i:
                    pub.publish(msg)
                executor.spin_once(timeout_sec=0.05)
            assert len(images) == i + 1 and images[i].header.stamp.sec == 100 + i
            assert images[i].header.frame_id == "robot_face_camera_optical_frame"
        neutral, opened = (image_from_msg(m) for m in images)
        assert np.array_equal(neutral, node.twin.render({}))
        assert np.array_equal(opened, node.twin.render({"jaw": 0.45}))
        executor.shutdown()
        probe.destroy_node()
        node.destroy_node()
    finally:
        rclpy.shutdown()


def test_the_twin_turns_and_looks_the_way_its_joints_say(twin):
    """Perceived head angles and gaze follow the joint conventions of the robot config (+ neck yaw:
    turned to its own left, + pitch: nose down, + roll: right ear down; + eyes yaw: to its left)."""
    from humimic_experiments import visual
    from humimic_experiments.kinematic import geometry

    poses = {"neck_yaw": 0.3, "neck_pitch": 0.25, "neck_roll": 0.25, "eyes_yaw": 0.4}
    frames = 1 + len(poses)
    positions = {j: np.array([0.0] + [v if k == j else 0.0 for k in poses]) for j, v in poses.items()}
    perception = FacePerception(make_backend("onnx", device="cpu"), 1)
    robot = visual.watch_robot(positions, frames, twin, perception)
    perception.close()
    signals = geometry(robot.points, robot.rotations)
    moved = {name: signals[name][1:] - signals[name][0] for name in ("head_yaw", "head_pitch", "head_roll", "iris_yaw")}
    for i, (joint, signal) in enumerate((("neck_yaw", "head_yaw"), ("neck_pitch", "head_pitch"),
                                         ("neck_roll", "head_roll"), ("eyes_yaw", "iris_yaw"))):
        assert moved[signal][i] > 0 and abs(moved[signal][i]) == max(abs(moved[signal])), (joint, moved)


def test_visual_pairs_mirror_the_sides_and_lateral_signs():
    from humimic_core.channels import CODES
    from humimic_experiments import visual

    rng = np.random.default_rng(1)
    person = {s: rng.normal(size=50) for g in visual.GROUPS.values() for s in g}
    robot = {s: person[s[:-1] + ("L" if s.endswith("R") else "R")] if s[-2:] in ("_R", "_L") else
             (-person[s] if s in ("iris_yaw", "head_yaw", "head_roll") else person[s]) for s in person}
    aus = rng.random((50, len(CODES)))
    figures = visual.correlations(visual.segments(person, robot, aus, aus, mirror=True), max_lag=3)
    assert all(abs(f["r"] - 1.0) < 1e-9 and f["lag_frames"] == 0 for f in figures.values()), figures
    same_side = visual.correlations(visual.segments(person, robot, aus, aus, mirror=False), max_lag=0)
    assert same_side["neck yaw"]["r"] < -0.99 and same_side["lids"]["r"] < 0.5


def test_twin_and_robot_face_perception_run_as_processes_in_their_namespace(sample_media, tmp_path):
    """The graph's robot-face processes, started as the runner starts them: joint states in, the
    robot face's action units out on /robot_face/face/action_units with each joint state's stamp;
    the graph's recorder records the robot face's images and perception."""
    import time

    import rclpy
    from sensor_msgs.msg import JointState

    from humimic_bringup.graph import imitation_graph
    from humimic_bringup.runner import Pipeline
    from humimic_core.ros_util import RELIABLE_QOS
    from humimic_core.stamps import to_ns
    from humimic_experiments.bag_io import topic_summary

    specs = [s for s in imitation_graph({"robot_face": "twin", "record": str(tmp_path / "rec")}, include_external=False)
             if s.name in ("face_twin", "robot_face_perception", "recorder")]
    assert len(specs) == 3
    rclpy.init()
    node = rclpy.create_node("twin_process_probe")
    received = {}
    node.create_subscription(JointState, "/robot_face/face/action_units",
                             lambda m: received.__setitem__(to_ns(m.header.stamp), dict(zip(m.name, m.position))),
                             RELIABLE_QOS)
    pub = node.create_publisher(JointState, "/joint_states", RELIABLE_QOS)
    pipeline = Pipeline(specs, tmp_path / "logs").start()
    try:
        deadline = time.time() + 60.0
        while time.time() < deadline and not (node.count_publishers("/robot_face/face/action_units")
                                              and pub.get_subscription_count()
                                              and node.count_subscribers("/robot_face/face/action_units") >= 2):
            rclpy.spin_once(node, timeout_sec=0.1)
        sent = []
        for i in range(40):  # neutral, then the jaw wide open; one state per 0.1 s
            msg = JointState(name=["jaw"], position=[0.45 if i >= 30 else 0.0])
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + i, 0
            pub.publish(msg)
            sent.append(to_ns(msg.header.stamp))
            until = time.time() + 0.1
            while time.time() < until:
                rclpy.spin_once(node, timeout_sec=0.02)
        until = time.time() + 10.0
        while time.time() < until and sent[-1] not in received:
            rclpy.spin_once(node, timeout_sec=0.05)
        assert not pipeline.failed(), f"processes failed: {pipeline.failed()} (logs in {tmp_path / 'logs'})"
    finally:
        pipeline.stop()
        node.destroy_node()
        rclpy.shutdown()
    assert set(received) <= set(sent) and sent[-1] in received, (sorted(received), sent)
    faces = [received[s] for s in sent if s in received and received[s]]
    assert len(faces) >= 10 and faces[-1]["AU26"] > faces[0]["AU26"] + 1.0
    recorded = topic_summary(tmp_path / "rec")
    for topic in ("/robot_face/camera/image_raw", "/robot_face/face/action_units", "/robot_face/face/landmarks"):
        assert recorded.get(topic, ("", 0))[1] >= 10, (topic, recorded)


def test_the_neutral_face_is_the_sample_media_cropped_around_the_face(twin):
    """The default neutral face needs no ../shared: a frame of the sample media (the face off the
    centre of a 640x360 frame), cropped to a square centred on the face (as far as the frame's
    height allows), the face filling about 1/CROP_FACE_HEIGHTS of its height."""
    from humimic_perception.sim.neutral_face import CROP_FACE_HEIGHTS, DEFAULT_SOURCE, resolve_source

    assert resolve_source("").parent == media_dir() and resolve_source("").name == DEFAULT_SOURCE
    face = twin.neutral[:468, :2]
    size = twin.face.size
    offset = np.abs((face.max(0) + face.min(0)) / 2 - size / 2)
    assert offset[0] < 0.02 * size and offset[1] < 0.1 * size, offset
    assert abs((face[:, 1].max() - face[:, 1].min()) * CROP_FACE_HEIGHTS / size - 1.0) < 0.1
