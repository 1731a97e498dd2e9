"""The inverse self-model with a per-joint variance (Gaussian NLL), its ONNX export and how the
retarget node loads it."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort

from humimic_retarget.learned_mapping import LearnedMapping
from humimic_retarget.offline.paired_data import jsonl_line
from humimic_retarget.offline.self_model import VARIANCE_NAME, main


def test_variance_follows_the_error_and_runs_as_a_learned_mapping(tmp_path, capsys):
    """The jaw's error grows with AU02 here (std 0.01 -> 0.09 rad); the predicted std follows it, the
    held-out NLL beats a constant variance, and the ONNX model gives the mean to the retarget node."""
    rng = np.random.default_rng(0)
    n = 600
    au01, au02 = rng.uniform(0, 5, n), rng.uniform(0, 5, n)
    std = 0.01 + 0.016 * au02
    jaw = 0.06 * au01 + std * rng.normal(size=n)
    brow = 0.05 * au02 + 0.02 * rng.normal(size=n)
    data = tmp_path / "babble.jsonl"
    data.write_text("".join(jsonl_line({"AU01": a, "AU02": b}, {"jaw": j, "brow_inner_left": w}) + "\n"
                            for a, b, j, w in zip(au01, au02, jaw, brow)))
    model = tmp_path / "self_model.onnx"
    assert main([str(data), "--out", str(model)]) == 0
    printed = capsys.readouterr().out
    nll, constant = (float(printed.split(key)[1].split()[0].rstrip(")")) for key in ("NLL ", "constant variance: "))
    assert nll < constant - 0.05, printed
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    x = np.array([[2.0, 0.0], [2.0, 5.0]], np.float32)
    mean, variance = session.run(None, {session.get_inputs()[0].name: x})
    assert session.get_outputs()[1].name == VARIANCE_NAME
    joints = LearnedMapping(model, ["jaw", "brow_inner_left", "upper_lid_left"])
    jaw_index = joints.joints.index("jaw")
    assert abs(mean[0, jaw_index] - 0.12) < 0.02 and np.allclose(joints(x[0]), mean[0], atol=1e-6)
    low, high = np.sqrt(variance[:, jaw_index])
    assert 0.005 < low < 0.03 and 0.06 < high < 0.13 and high > 3 * low


def test_an_uncertain_joint_falls_back_to_the_configured_mapping(tmp_path):
    """mapping.model.max_std: where the self-model's predicted std of a joint exceeds it, that joint
    follows its linear mapping for the frame; the std of the last frame is kept for publishing."""
    import yaml

    from humimic_core.paths import config_file
    from humimic_core.robot_config import load_robot_config
    from humimic_retarget.expression_mapping import ExpressionMapping

    rng = np.random.default_rng(1)
    au01, au02 = rng.uniform(0, 5, 600), rng.uniform(0, 5, 600)
    jaw = 0.4 - 0.06 * au01 + (0.01 + 0.016 * au02) * rng.normal(size=600)  # not the linear mapping's jaw
    data = tmp_path / "babble.jsonl"
    data.write_text("".join(jsonl_line({"AU01": a, "AU02": b}, {"jaw": j}) + "\n" for a, b, j in zip(au01, au02, jaw)))
    assert main([str(data), "--out", str(tmp_path / "self_model.onnx")]) == 0
    raw = yaml.safe_load(config_file("robot_face.yaml").read_text())
    raw["mapping"]["model"] = {"path": "self_model.onnx", "max_std": 0.05}
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(raw))
    mapping = ExpressionMapping(load_robot_config(tmp_path / "robot.yaml"))
    jaw_index = mapping.joints.index("jaw")
    frame = {"AU01": 1.0, "AU25": 2.0, "AU26": 2.0}
    sure, _ = mapping({**frame, "AU02": 0.0})  # predicted std ~0.01 rad: the model's jaw
    assert mapping.std[0] < 0.05 and abs(sure[jaw_index] - 0.34) < 0.03
    unsure, valid = mapping({**frame, "AU02": 5.0})  # ~0.09 rad: the linear mapping's jaw (0.06 AU25 + 0.03 AU26)
    assert mapping.std[0] > 0.05 and valid[jaw_index] and abs(unsure[jaw_index] - 0.18) < 1e-6


def test_retarget_node_publishes_the_self_model_uncertainty(tmp_path):
    """The live retarget node (a process) with a self-model: commands on /joint_commands, and the
    model joints' predicted standard deviations on /retarget/self_model_std with the same stamps."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    import rclpy
    import yaml
    from sensor_msgs.msg import JointState

    from humimic_core.paths import config_file
    from humimic_core.processes import interrupt
    from humimic_core.ros_util import RELIABLE_QOS

    rng = np.random.default_rng(2)
    au01, au02 = rng.uniform(0, 5, 300), rng.uniform(0, 5, 300)
    (tmp_path / "babble.jsonl").write_text("".join(
        jsonl_line({"AU01": a, "AU02": b}, {"jaw": 0.06 * a + 0.01 * rng.normal()}) + "\n" for a, b in zip(au01, au02)))
    assert main([str(tmp_path / "babble.jsonl"), "--out", str(tmp_path / "self_model.onnx")]) == 0
    raw = yaml.safe_load(config_file("robot_face.yaml").read_text())
    raw["mapping"]["model"] = {"path": "self_model.onnx"}
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(raw))
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-m", "humimic_retarget.retarget_node", "--ros-args", "-p",
                             f"robot_config:={tmp_path / 'robot.yaml'}"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONPATH=str(root)))
    rclpy.init()
    node = rclpy.create_node("self_model_probe")
    got = {"/joint_commands": [], "/retarget/self_model_std": []}
    for topic, store in got.items():
        node.create_subscription(JointState, topic, store.append, RELIABLE_QOS)
    pub = node.create_publisher(JointState, "/face/action_units", RELIABLE_QOS)
    try:
        deadline = time.time() + 30.0
        while time.time() < deadline and not got["/retarget/self_model_std"]:
            msg = JointState(name=["AU01", "AU02"], position=[2.0, 1.0])
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            rclpy.spin_once(node, timeout_sec=0.05)
        until = time.time() + 0.5  # the command sent with it, on its own topic
        while time.time() < until:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        interrupt(proc, 10.0)
        output = proc.communicate()[0]
        node.destroy_node()
        rclpy.shutdown()
    stds = got["/retarget/self_model_std"]
    assert stds, output
    assert list(stds[0].name) == ["jaw"] and 0.0 < stds[0].position[0] < 0.05
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in got["/joint_commands"]}
    assert (stds[0].header.stamp.sec, stds[0].header.stamp.nanosec) in stamps


def test_each_joint_reads_its_own_mapping_channels(tmp_path, capsys):
    """--inputs mapping: the jaw reads AU25/AU26 of its mapping entry, not AU09, which
    moved with the jaw while babbling (a side effect) but moves on its own on a person; --inputs all
    learns AU09 too. The suggested max_std is the held-out predicted std's 95 % quantile."""
    rng = np.random.default_rng(3)
    n = 400
    jaw = rng.uniform(0.0, 0.45, n)
    au25 = 10.0 * jaw + 0.3 * rng.normal(size=n)
    au26 = 8.0 * jaw + 0.3 * rng.normal(size=n)
    au09 = 10.0 * jaw + 0.1 * rng.normal(size=n)  # the babbled face's side effect, cleaner than the jaw's own AUs
    data = tmp_path / "babble.jsonl"
    data.write_text("".join(jsonl_line({"AU09": a, "AU25": b, "AU26": c}, {"jaw": j}) + "\n"
                            for a, b, c, j in zip(au09, au25, au26, jaw)))
    jaws = {}
    for inputs in ("mapping", "all"):
        model = tmp_path / f"{inputs}.onnx"
        assert main([str(data), "--out", str(model), "--inputs", inputs]) == 0
        mapping = LearnedMapping(model, ["jaw"])
        frame = {"AU09": 4.0, "AU25": 0.0, "AU26": 0.0}  # a person's nose wrinkle, mouth closed
        jaws[inputs] = mapping([frame[c] for c in mapping.channels])[0]
    printed = capsys.readouterr().out
    assert abs(jaws["mapping"]) < 0.03 and jaws["all"] > 0.15, jaws
    suggested = float(printed.split("suggested mapping.model.max_std: ")[1].split()[0])
    stds = [float(line.split()[2]) for line in printed.splitlines() if line.startswith("jaw ")]
    assert all(0.5 * s < suggested < 3.0 * s for s in stds), printed


def test_input_kinds():
    """--inputs kind: a joint reads every channel of the kinds its mapping entry reads (the neck the
    head angles, the jaw every action unit); mapping: only its entry's; all: everything."""
    from humimic_core.paths import config_file
    from humimic_core.robot_config import load_robot_config
    from humimic_retarget.offline.self_model import input_mask

    config = load_robot_config(config_file("robot_face.yaml"))
    channels = ["AU09", "AU25", "AU26", "gaze_yaw", "head_pitch", "head_yaw"]
    joints = ["neck_pitch", "jaw", "eyes_yaw"]
    read = {inputs: {j: [c for c, on in zip(channels, input_mask(channels, joints, config, inputs)[:, k]) if on]
                     for k, j in enumerate(joints)} for inputs in ("mapping", "kind", "all")}
    assert read["mapping"] == {"neck_pitch": ["head_pitch"], "jaw": ["AU25", "AU26"], "eyes_yaw": ["gaze_yaw"]}
    assert read["kind"] == {"neck_pitch": ["head_pitch", "head_yaw"], "jaw": ["AU09", "AU25", "AU26"],
                            "eyes_yaw": ["gaze_yaw"]}
    assert all(v == channels for v in read["all"].values())
