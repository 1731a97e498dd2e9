"""The dynamixel_driver node as a real process against the emulated bus, seen from a test rclpy node."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from dynamixel_sdk import COMM_SUCCESS, PacketHandler, PortHandler
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState

from humimic_core import paths
from humimic_core.robot_config import load_robot_config
from humimic_core.ros_util import RELIABLE_QOS
from humimic_core.stamps import from_ns, to_ns
from humimic_driver.bus import arrived
from humimic_core.control_tables import RAD_PER_TICK, X_SERIES_REGISTERS as REG
from humimic_driver.sim.emulated_bus import send_command

pytestmark = pytest.mark.timeout(90)

CONFIG = load_robot_config(paths.config_file("robot_face.yaml"))
LIMITS = {s.joint: (s.min, s.max) for s in CONFIG.servos}
NEUTRAL = {s.joint: s.neutral for s in CONFIG.servos}
TOL = 2 * RAD_PER_TICK
ROOT = Path(__file__).resolve().parent.parent


class Probe:
    """A test node: publishes /joint_commands, records /joint_states, written goals and diagnostics."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("driver_test_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.commands = self.node.create_publisher(JointState, "/joint_commands", RELIABLE_QOS)
        self.states, self.written, self.diagnostics = [], [], []
        self.node.create_subscription(JointState, "/joint_states", self.states.append, RELIABLE_QOS)
        self.node.create_subscription(JointState, "/driver/written_goals", self.written.append, RELIABLE_QOS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def spin_until(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
            self.executor.spin_once(timeout_sec=0.02)

    def send(self, command: dict, stamp_ns: int) -> None:
        msg = JointState(name=list(command), position=[float(v) for v in command.values()])
        msg.header.stamp = from_ns(stamp_ns)
        self.commands.publish(msg)

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def latest_positions(self) -> dict:
        """The latest position of each joint (a message carries only the joints read fresh)."""
        positions = {}
        for msg in self.states[-20:]:
            positions.update(zip(msg.name, msg.position))
        return positions

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def probe():
    probe = Probe()
    yield probe
    probe.close()


@pytest.fixture
def driver(link, tmp_path):
    """Start the driver node process on the emulator; returns a function that stops it with SIGINT."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log = open(tmp_path / "driver.log", "w+")
    proc = subprocess.Popen(  # patient reply deadlines: the emulated servos share the loaded test machine
        [sys.executable, "-m", "humimic_driver.driver_node", "--ros-args", "-p", f"port:={link}",
         "-p", "command_timeout:=0.6", "-p", "state_rate:=50.0", "-p", "reply_timeout_margin_ms:=30.0"],
        stdout=log, stderr=subprocess.STDOUT, env=env)

    def stop(twice: bool = False) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            if twice:
                time.sleep(0.3)  # shutdown under way: slow moves to neutral take about a second here
                proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise

    yield stop
    try:
        stop()
    finally:
        log.seek(0)
        sys.stdout.write(log.read())  # shown by pytest when a test fails
        log.close()


def within_limits(msg: JointState) -> bool:
    return all(LIMITS[n][0] - TOL <= x <= LIMITS[n][1] + TOL for n, x in zip(msg.name, msg.position))


def near(positions: dict, targets: dict, tol: float = TOL) -> bool:
    return all(j in positions and abs(positions[j] - v) <= tol for j, v in targets.items())


def wait_for_driver(probe: Probe) -> None:
    probe.spin_until(lambda: probe.states and probe.commands.get_subscription_count() > 0, 30.0,
                     "/joint_states from the driver and its /joint_commands subscription")


def test_driver_follows_commands_within_limits(probe, driver, link):
    wait_for_driver(probe)
    stamp = probe.now_ns() - 20_000_000  # as if the camera frame was taken 20 ms ago
    command = {"jaw": 0.3, "lip_corner_left": 2.0, "not_a_joint": 1.0}  # subset, one beyond max, one unknown
    probe.send(command, stamp)
    probe.spin_until(lambda: any(to_ns(m.header.stamp) == stamp for m in probe.written), 10.0, "written goals")
    goals = next(m for m in probe.written if to_ns(m.header.stamp) == stamp)
    written = dict(zip(goals.name, goals.position))
    assert set(written) == set(LIMITS)
    assert 0.0 <= written["jaw"] < 0.3  # the setpoint, on its way within the jaw's speed caps
    assert 0.0 <= written["lip_corner_left"] < LIMITS["lip_corner_left"][1]
    target = {"jaw": 0.3, "lip_corner_left": LIMITS["lip_corner_left"][1]}
    probe.spin_until(lambda: near(probe.latest_positions(), target), 10.0, "joint states at the command")
    assert all(within_limits(m) for m in probe.states)
    state = probe.states[-1]
    assert len(state.velocity) == len(state.effort) == len(state.name) == len(LIMITS)

    nan_stamp = probe.now_ns()
    probe.send({"jaw": math.nan, "neck_yaw": 0.2}, nan_stamp)  # NaN: jaw keeps its goal
    probe.spin_until(lambda: any(to_ns(m.header.stamp) == nan_stamp for m in probe.written), 10.0,
                     "written goals of the NaN command")
    after = dict(zip(probe.written[-1].name, probe.written[-1].position))
    assert after["jaw"] == pytest.approx(0.3, abs=RAD_PER_TICK)
    assert 0.0 <= after["neck_yaw"] < 0.2
    probe.spin_until(lambda: near(probe.latest_positions(), {"jaw": 0.3, "neck_yaw": 0.2}), 10.0, "the NaN command")

    probe.spin_until(lambda: any(int(dict((v.key, v.value) for v in d.status[0].values)["writes"]) >= 2
                                 for d in probe.diagnostics), 5.0, "diagnostics counting the writes")
    bus, *servos = probe.diagnostics[-1].status
    values = {v.key: v.value for v in bus.values}
    assert bus.level == DiagnosticStatus.OK and bus.name == "dynamixel_driver: servo bus"
    assert int(values["reads"]) > 0 and int(values["comm_errors"]) <= 2  # the emulator may be late on a busy box
    assert 0.0 < float(values["latency_p99_ms"]) < 5000.0
    assert len(servos) == len(LIMITS)
    jaw = next(s for s in servos if s.name == "dynamixel_driver: jaw (ID 14)")
    jaw_values = {v.key: v.value for v in jaw.values}
    assert jaw_values["temperature_c"] == "30" and jaw_values["voltage_v"] == "12.0"
    assert jaw_values["hardware_error"] == "none"

    send_command(link, "overload 14")  # the jaw's servo reports a hardware error: decoded per servo

    def jaw_overloaded() -> bool:
        for status in probe.diagnostics[-1].status:
            if status.name == "dynamixel_driver: jaw (ID 14)":
                return (status.level == DiagnosticStatus.ERROR
                        and {v.key: v.value for v in status.values}["hardware_error"] == "overload")
        return False

    probe.spin_until(jaw_overloaded, 5.0, "an ERROR diagnostic of the jaw naming the overload")

    def jaw_restored() -> bool:
        return any(s.name == "dynamixel_driver: jaw (ID 14)" and s.level == DiagnosticStatus.OK
                   for s in probe.diagnostics[-1].status)

    probe.spin_until(jaw_restored, 10.0, "the jaw rebooted and restored")  # errors, warnings, infos logged
    assert json.loads(send_command(link, "state 14"))["torque_enable"] == 1


def test_watchdog_neutral_and_sigint_torque_off(probe, driver, link):
    wait_for_driver(probe)
    pose = {"jaw": 0.4, "neck_yaw": 0.5}
    probe.send(pose, probe.now_ns())
    probe.spin_until(lambda: near(probe.latest_positions(), pose), 10.0, "joint states at the pose")
    # A stuck publisher sending NaN at 20 Hz: no real command, so after command_timeout (0.6 s) the
    # driver glides to neutral (the watchdog's goals are published with the time they were written).
    last = probe.now_ns()
    probe.send(pose, last)
    probe.spin_until(lambda: any(to_ns(m.header.stamp) == last for m in probe.written), 5.0, "the last command")
    next_nan = time.monotonic()

    def stuck_publisher() -> bool:
        nonlocal next_nan
        if time.monotonic() >= next_nan:
            probe.send({"jaw": math.nan, "neck_yaw": math.nan}, probe.now_ns())
            next_nan += 0.05
        return any(to_ns(m.header.stamp) > last for m in probe.written)

    probe.spin_until(stuck_publisher, 5.0, "the watchdog despite the NaN commands")
    # on the driver's own stamps: the probe's receipt of the last command's goals and of the watchdog's
    # come with their own DDS delays, which a busy machine stretches
    glide = min(to_ns(m.header.stamp) for m in probe.written if to_ns(m.header.stamp) > last)
    waited = (glide - last) * 1e-9
    assert 0.6 <= waited <= 1.5, waited
    print(f"watchdog under 20 Hz of NaN commands: neutral after {waited:.2f} s (command_timeout 0.6 s)")
    probe.spin_until(lambda: near(probe.latest_positions(), NEUTRAL), 10.0, "watchdog return to neutral")
    probe.spin_until(lambda: int({v.key: v.value for v in probe.diagnostics[-1].status[0].values}
                                 ["rejected_commands"]) >= 10, 5.0, "the NaN commands counted on /diagnostics")

    probe.send(pose, probe.now_ns())
    probe.spin_until(lambda: near(probe.latest_positions(), pose), 10.0, "joint states at the pose again")
    assert driver(twice=True) == 0  # SIGINT (and an impatient second one): neutral, then torque off, clean exit

    port, ph = PortHandler(link), PacketHandler(2.0)
    assert port.openPort()
    try:
        for servo in CONFIG.servos:
            torque, result, _ = ph.read1ByteTxRx(port, servo.id, REG["torque_enable"].address)
            tick, result2, _ = ph.read4ByteTxRx(port, servo.id, REG["present_position"].address)
            assert result == result2 == COMM_SUCCESS
            assert torque == 0, servo.joint
            assert arrived(servo, servo.from_tick(tick), servo.neutral), servo.joint
    finally:
        port.closePort()
