"""The retarget node and pose playback as real processes: live parameter changes through the
SetParameters service, a refused learned model, frames late or stamped off the node's clock, a
recorded pose-playback session."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
from rcl_interfaces.srv import GetParameters, SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from humimic_core.processes import interrupt  # noqa: E402
from humimic_core.paths import config_file  # noqa: E402
from humimic_core.robot_config import load_robot_config  # noqa: E402
from humimic_core.ros_util import RELIABLE_QOS  # noqa: E402
from humimic_core.stamps import from_ns, to_ns  # noqa: E402
from humimic_retarget.offline.fitting import Network  # noqa: E402
from humimic_retarget.offline.onnx_export import export_onnx  # noqa: E402
from humimic_retarget.offline.pose_grid import pose_grid  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIG = load_robot_config(config_file("robot_face.yaml"))
pytestmark = pytest.mark.timeout(90)


def start(module: str, *ros_args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-m", module, "--ros-args", *ros_args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc: subprocess.Popen) -> str:
    interrupt(proc, 10.0)
    return proc.communicate()[0]


@pytest.fixture()
def node():
    rclpy.init()
    n = rclpy.create_node("retarget_test_client")
    yield n
    n.destroy_node()
    rclpy.try_shutdown()


def call(node, client, request, timeout=10.0):
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    assert future.done(), "no service reply"
    return future.result()


def set_params(node, client, **values):
    request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
    return call(node, client, request).results


def au_frame(node, aus):
    msg = JointState(name=list(aus), position=[float(v) for v in aus.values()])
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.header.frame_id = "camera_optical_frame"
    return msg


def stream(node, publisher, aus, seconds, spin=lambda: None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        publisher.publish(au_frame(node, aus))
        rclpy.spin_once(node, timeout_sec=0.02)
        spin()


def test_live_tuning_through_set_parameters(node):
    proc = start("humimic_retarget.retarget_node", "--params-file", str(config_file("humimic.yaml")))
    try:
        setter = node.create_client(SetParameters, "/retarget/set_parameters")
        getter = node.create_client(GetParameters, "/retarget/get_parameters")
        assert setter.wait_for_service(timeout_sec=30.0), stop(proc)
        refused = set_params(node, setter, max_velocity=-1.0)  # outside the descriptor's range: ROS refuses
        assert not refused[0].successful and "max_velocity out of range" in refused[0].reason
        refused = set_params(node, setter, max_velocity=0.0)  # in the range, but no velocity: the node refuses
        assert not refused[0].successful and "max_velocity must be a positive" in refused[0].reason
        refused = set_params(node, setter, **{"gains.AU26": float("nan")})
        assert not refused[0].successful and "gains.AU26" in refused[0].reason
        refused = set_params(node, setter, smoothing=-0.5)
        assert not refused[0].successful and "smoothing" in refused[0].reason
        assert all(r.successful for r in set_params(node, setter, **{"gains.AU26": 0.0, "smoothing": 0.0,
                                                                      "max_acceleration": 100.0}))
        values = call(node, getter, GetParameters.Request(names=["gains.AU26", "max_velocity", "mirror"])).values
        assert (values[0].double_value, values[1].double_value, values[2].bool_value) == (0.0, 3.0, True)
        # the new gain acts on the commands: no jaw at gain 0, an open jaw at gain 1
        jaw = []
        node.create_subscription(JointState, "/joint_commands",
                                 lambda m: jaw.append(m.position[list(m.name).index("jaw")]), RELIABLE_QOS)
        publisher = node.create_publisher(JointState, "/face/action_units", RELIABLE_QOS)
        stream(node, publisher, {"AU26": 5.0}, 1.0)
        assert jaw and max(jaw) < 1e-9
        assert set_params(node, setter, **{"gains.AU26": 1.0})[0].successful
        count = len(jaw)
        stream(node, publisher, {"AU26": 5.0}, 1.0)
        weight = yaml.safe_load(config_file("robot_face.yaml").read_text())["mapping"]["jaw"]["weights"]["AU26"]
        assert max(jaw[count:]) == pytest.approx(5.0 * weight, abs=1e-3), "AU26 5 * its jaw weight"
    finally:
        output = stop(proc)
    assert proc.returncode == 0, output


def test_node_refuses_a_model_that_does_not_fit_the_robot(tmp_path):
    rng = np.random.default_rng(0)
    model = export_onnx(Network("ridge", [(rng.normal(size=(2, 1)), np.zeros(1))]), ["AU12", "AU26"], ["tail"],
                        tmp_path / "other_robot.onnx")
    data = copy.deepcopy(CONFIG.raw)
    data["mapping"] = {**data["mapping"], "model": {"path": str(model)}}
    robot = tmp_path / "robot.yaml"
    robot.write_text(yaml.safe_dump(data))
    proc = start("humimic_retarget.retarget_node", "-p", f"robot_config:={robot}")
    proc.wait(30)
    output = proc.communicate()[0]
    assert proc.returncode == 2
    assert f"retarget: {model}: output joints ['tail'] are not servos of the robot config" in output


def test_pose_playback_plays_the_grid_and_records_pairs(node, tmp_path):
    record = tmp_path / "session.jsonl"
    proc = start("humimic_retarget.offline.pose_playback_node", "-p", "levels:=1", "-p", "move_time:=0.05",
                 "-p", "hold_time:=0.2", "-p", "settle_time:=0.05", "-p", f"record:={record}")
    commands = []
    node.create_subscription(JointState, "/joint_commands", lambda m: commands.append(dict(zip(m.name, m.position))),
                             RELIABLE_QOS)
    publisher = node.create_publisher(JointState, "/face/action_units", RELIABLE_QOS)
    try:
        deadline = time.time() + 60.0
        while proc.poll() is None and time.time() < deadline:
            stream(node, publisher, {"AU12": 1.0, "AU26": 2.0}, 0.1)
    finally:
        output = stop(proc)
    assert proc.returncode == 0, output
    grid = pose_grid(CONFIG, levels=1)
    assert f"done: {len(grid)} poses played" in output
    for command in commands:
        for joint, value in command.items():
            assert CONFIG.servo(joint).min <= value <= CONFIG.servo(joint).max
    for pose in grid:
        assert any(all(abs(c[j] - v) < 1e-9 for j, v in pose.items()) for c in commands), "every pose is played"
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(rows) >= len(grid), "samples from the recording windows"
    for row in rows:
        assert row["channels"] == {"AU12": 1.0, "AU26": 2.0}
        assert row["joints"] == grid[row["pose"]]
    assert len({row["pose"] for row in rows}) >= 0.8 * len(grid)


def paced_frames(node, publisher, aus, seconds, latency=0.0, shift=0.0, fps=30.0):
    """Frames at ``fps`` for ``seconds``, stamped ``latency`` s before now plus ``shift`` s; their stamps."""
    stamps = []
    start = time.monotonic()
    for k in range(round(seconds * fps)):
        msg = au_frame(node, aus)
        stamp = to_ns(msg.header.stamp) - int(latency * 1e9) + int(shift * 1e9)
        msg.header.stamp = from_ns(stamp)
        publisher.publish(msg)
        stamps.append(stamp)
        while time.monotonic() < start + (k + 1) / fps:
            rclpy.spin_once(node, timeout_sec=0.005)
    return stamps


def test_node_keeps_imitating_through_late_future_and_stepped_back_stamps(node):
    """Issue 9 item 4, issue 10 item 5: a real retarget node fed frames 0.8 s late (above
    face_lost_timeout) with a gap, one frame stamped an hour ahead, then a camera clock 10 s back."""
    proc = start("humimic_retarget.retarget_node", "--params-file", str(config_file("humimic.yaml")))
    commands, stamps_status = {}, []
    node.create_subscription(JointState, "/joint_commands",
                             lambda m: commands.setdefault(to_ns(m.header.stamp), dict(zip(m.name, m.position))),
                             RELIABLE_QOS)
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: stamps_status.extend(
        s for s in m.status if s.name == "retarget: frame stamps"), RELIABLE_QOS)
    publisher = node.create_publisher(JointState, "/face/action_units", RELIABLE_QOS)
    smile, jaw_open = {"AU12_L": 4.0, "AU12_R": 4.0}, {"AU25": 5.0, "AU26": 5.0}
    try:
        deadline = time.time() + 30.0
        while time.time() < deadline and not (publisher.get_subscription_count() and stamps_status):
            rclpy.spin_once(node, timeout_sec=0.1)
        assert stamps_status, stop(proc)

        def followed(stamps):
            return [commands[s] for s in stamps if s in commands]

        paced_frames(node, publisher, smile, 1.0, latency=0.8)
        deadline = time.monotonic() + 0.3  # a perception hiccup shorter than face_lost_timeout
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.01)
        late = followed(paced_frames(node, publisher, smile, 1.0, latency=0.8))
        held = sum(c["lip_corner_left"] > 0.36 for c in late)
        assert held >= 0.9 * 30, f"smile held in {held} of {len(late)} commands for 30 late frames"
        late = followed(paced_frames(node, publisher, jaw_open, 1.0, latency=0.8))
        assert late and late[-1]["jaw"] > 0.3 and late[-1]["lip_corner_left"] < 0.01, "late frames are followed"

        future = au_frame(node, smile)
        future.header.stamp = from_ns(to_ns(future.header.stamp) + 3600 * 10 ** 9)
        publisher.publish(future)
        after = followed(paced_frames(node, publisher, jaw_open, 1.0))
        assert len(after) >= 25 and after[-1]["jaw"] > 0.3, f"{len(after)} commands for 30 frames after a future one"

        back = followed(paced_frames(node, publisher, smile, 1.0, shift=-10.0))
        # the jaw closes from 0.45 rad at its caps while the smile comes back (< 0.05: a busy core
        # can leave it a few hundredths short within the second)
        assert len(back) >= 25 and back[-1]["lip_corner_left"] > 0.36 and back[-1]["jaw"] < 0.05, \
            f"{len(back)} commands for 30 frames after the camera clock stepped back"
        count = len(stamps_status)
        deadline = time.time() + 5.0
        while time.time() < deadline and len(stamps_status) < count + 2:
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        output = stop(proc)
    assert proc.returncode == 0, output
    values = {kv.key: kv.value for kv in stamps_status[-1].values}
    assert (values["future"], values["behind"], values["jumped"]) == ("1", "1", "0"), values
    assert int(values["frames"]) >= 140 and float(values["latency_max_ms"]) < 60_000
    assert any(s.level == DiagnosticStatus.WARN and "1 refused" in s.message for s in stamps_status)
    assert "s ahead of this node's clock (tolerance 1 s): frame refused (1 so far)" in output
    assert "behind the previous frame's" in output


def test_node_on_sim_time_follows_a_replay_that_loops(node):
    """use_sim_time with /clock going back (a bag replay restarting): the time-jump callback keeps
    the node imitating, and with /clock running but no frames it still glides to neutral."""
    from rosgraph_msgs.msg import Clock as ClockMsg

    proc = start("humimic_retarget.retarget_node", "-p", "use_sim_time:=true")
    commands, statuses = [], []
    node.create_subscription(JointState, "/joint_commands", lambda m: commands.append(dict(zip(m.name, m.position))),
                             RELIABLE_QOS)
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: statuses.extend(
        s for s in m.status if s.name == "retarget: frame stamps"), RELIABLE_QOS)
    clock = node.create_publisher(ClockMsg, "/clock", RELIABLE_QOS)
    publisher = node.create_publisher(JointState, "/face/action_units", RELIABLE_QOS)

    def replay(start_s, seconds, aus):
        """30 fps of /clock from start_s, with frames stamped 20 ms before it (None: /clock alone)."""
        for k in range(round(seconds * 30)):
            now = int((start_s + k / 30) * 1e9)
            clock.publish(ClockMsg(clock=from_ns(now)))
            if aus is not None:
                msg = au_frame(node, aus)
                msg.header.stamp = from_ns(now - 20_000_000)
                publisher.publish(msg)
            deadline = time.monotonic() + 1 / 30
            while time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.005)

    try:
        deadline = time.time() + 30.0
        while time.time() < deadline and not (publisher.get_subscription_count() and clock.get_subscription_count()
                                              and statuses):
            rclpy.spin_once(node, timeout_sec=0.1)
        assert statuses, stop(proc)
        replay(1000.0, 1.0, {"AU12_L": 4.0, "AU12_R": 4.0})
        assert commands and commands[-1]["lip_corner_left"] > 0.36
        replay(1000.0, 1.0, {"AU25": 5.0, "AU26": 5.0})       # the replay starts again
        assert commands[-1]["jaw"] > 0.3 and commands[-1]["lip_corner_left"] < 0.01
        replay(1001.0, 2.0, None)                # the replay goes on without faces
        assert commands[-1]["jaw"] == pytest.approx(0.0, abs=1e-9)
        count = len(statuses)
        deadline = time.time() + 5.0
        while time.time() < deadline and len(statuses) < count + 2:
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        output = stop(proc)
    assert proc.returncode == 0, output
    values = {kv.key: kv.value for kv in statuses[-1].values}
    assert (values["clock_jumps"], values["behind"], values["future"]) == ("1", "1", "0"), values
    assert "this node's clock jumped by -0.967 s" in output, output


def test_node_refuses_a_stamp_tolerance_out_of_range():
    proc = start("humimic_retarget.retarget_node", "-p", "stamp_tolerance:=0.0")
    proc.wait(30)
    output = proc.communicate()[0]
    assert proc.returncode == 2 and "stamp_tolerance out of range" in output and "Traceback" not in output, output


def test_node_refuses_a_limit_it_cannot_use_in_one_line():
    """0 is in max_velocity's range (0..100) but no velocity limit: one line and exit 2, as a value out of
    range (before: a traceback)."""
    proc = start("humimic_retarget.retarget_node", "-p", "max_velocity:=0.0")
    proc.wait(30)
    output = proc.communicate()[0]
    assert proc.returncode == 2 and "max_velocity must be a positive finite number" in output, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize("priority", [3, 0])
def test_realtime_priority_applied_to_every_thread_or_refused_in_one_line(tmp_path: Path, priority: int) -> None:
    """The node's realtime_priority (run_node applies it): every thread of the process under SCHED_FIFO
    at it where the process may, else one log line says why and the process runs normally; 0 leaves
    the scheduling alone."""
    log = tmp_path / "retarget.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "humimic_retarget.retarget_node", "--ros-args",
                                 "-p", f"realtime_priority:={priority}"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30.0
        while "retargeting" not in log.read_text() and time.monotonic() < deadline:  # the node is built
            time.sleep(0.1)
        time.sleep(1.0)  # and spinning
        policies = {os.sched_getscheduler(int(tid)): os.sched_getparam(int(tid)).sched_priority
                    for tid in os.listdir(f"/proc/{proc.pid}/task")}
    finally:
        interrupt(proc, 10.0)
    text = log.read_text()
    assert "retargeting" in text, text
    if priority == 0:
        assert "real-time priority" not in text and policies == {os.SCHED_OTHER: 0}
    elif f"real-time priority {priority} (SCHED_FIFO)" in text:
        assert policies == {os.SCHED_FIFO: priority}
    else:
        assert f"real-time priority {priority} refused" in text and policies == {os.SCHED_OTHER: 0}
