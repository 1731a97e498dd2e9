"""ServoBus (dynamixel-sdk client) against the emulated bus on a pty."""
from __future__ import annotations

import contextlib
import copy
import time

import pytest
from dynamixel_sdk import COMM_SUCCESS, PacketHandler, PortHandler

from humimic_core import paths
from humimic_core.robot_config import load_robot_config, parse_robot_config
from humimic_driver.bus import ARRIVED_TICKS, BusError, ServoBus
from humimic_driver.control_tables import RAD_PER_TICK, X_SERIES_REGISTERS as REG
from humimic_driver.emulated_bus import emulator_process

pytestmark = pytest.mark.timeout(60)

CONFIG = load_robot_config(paths.config_file("robot_face.yaml"))
BAUD = 1000000


@pytest.fixture
def link(tmp_path):
    path = tmp_path / "servo_bus"
    with emulator_process(path):
        yield str(path)


@contextlib.contextmanager
def raw_port(link):
    """dynamixel-sdk straight on the emulator, to inspect its registers (use while no ServoBus is open)."""
    port = PortHandler(link)
    assert port.openPort()
    try:
        yield port, PacketHandler(2.0)
    finally:
        port.closePort()


def register(raw, servo_id, name):
    port, ph = raw
    reg = REG[name]
    reader = {1: ph.read1ByteTxRx, 2: ph.read2ByteTxRx, 4: ph.read4ByteTxRx}[reg.size]
    value, result, error = reader(port, servo_id, reg.address)
    assert result == COMM_SUCCESS and error == 0
    return value


def set_register(raw, servo_id, name, value):
    port, ph = raw
    reg = REG[name]
    writer = {1: ph.write1ByteTxRx, 2: ph.write2ByteTxRx, 4: ph.write4ByteTxRx}[reg.size]
    assert writer(port, servo_id, reg.address, value) == (COMM_SUCCESS, 0)


def config_with(edit):
    raw = copy.deepcopy(CONFIG.raw)
    edit(raw["servos"])
    return parse_robot_config(raw)


def test_start_up_sets_position_mode_holds_pose_and_enables_torque(link):
    with raw_port(link) as raw:
        set_register(raw, 1, "operating_mode", 1)  # velocity mode left over from elsewhere
        set_register(raw, 1, "goal_position", 3000)  # stale goal: must not be driven to on torque-on
    with ServoBus(CONFIG.servos) as bus:
        bus.open(link, BAUD)
        bus.start()
        positions = bus.read_positions()
    assert positions == pytest.approx({s.joint: s.neutral for s in CONFIG.servos}, abs=RAD_PER_TICK)
    with raw_port(link) as raw:
        assert register(raw, 1, "operating_mode") == 3
        assert register(raw, 1, "goal_position") == 2048
        assert all(register(raw, s.id, "torque_enable") == 1 for s in CONFIG.servos)


def test_start_up_names_servo_with_wrong_model(link):
    def swap_model(servos):
        servos[3]["model"] = "XM430-W350"  # ID 4 is an XL330-M288 on the bus

    with ServoBus(config_with(swap_model).servos) as bus:
        bus.open(link, BAUD)
        with pytest.raises(BusError) as err:
            bus.start()
    message = str(err.value)
    assert "servo ID 4 (joint brow_inner_left)" in message
    assert "expected model XM430-W350 (1020), found XL330-M288 (1200)" in message


def test_start_up_names_missing_servo(link):
    def add_servo(servos):
        servos.append({**servos[-1], "joint": "tongue", "id": 20})

    with ServoBus(config_with(add_servo).servos) as bus:
        bus.open(link, BAUD)
        with pytest.raises(BusError, match=r"servo ID 20 \(joint tongue\).*no answer to ping"):
            bus.start()


def test_open_names_the_port(tmp_path):
    missing = str(tmp_path / "no_such_port")
    with pytest.raises(BusError, match=f"cannot open servo bus port {missing}"):
        ServoBus(CONFIG.servos).open(missing, BAUD)


def test_goals_beyond_limits_are_clamped_on_the_bus(link):
    wild = {s.joint: (10.0 if i % 2 else -10.0) for i, s in enumerate(CONFIG.servos)}
    wild[CONFIG.servos[0].joint] = float("nan")
    with ServoBus(CONFIG.servos) as bus:
        bus.open(link, BAUD)
        bus.start()
        written = bus.write_goals(wild)
    with raw_port(link) as raw:
        for i, servo in enumerate(CONFIG.servos):
            tick = register(raw, servo.id, "goal_position")
            low, high = servo.tick_limits()
            assert low <= tick <= high, servo.joint
            expected = servo.neutral if i == 0 else (servo.max if i % 2 else servo.min)
            assert tick == servo.to_tick(expected), servo.joint
            assert written[servo.joint] == pytest.approx(expected, abs=RAD_PER_TICK)


def test_positions_follow_goals_and_neutral_and_torque_off(link):
    goals = {s.joint: s.min + 0.25 * (s.max - s.min) for s in CONFIG.servos}
    with ServoBus(CONFIG.servos) as bus:
        bus.open(link, BAUD)
        bus.start()
        bus.write_goals(goals)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            reading = bus.read_state()
            if reading.positions == pytest.approx(goals, abs=RAD_PER_TICK):
                break
        assert reading.positions == pytest.approx(goals, abs=RAD_PER_TICK)
        assert bus.move_to_neutral(timeout=5.0)
        assert bus.read_positions() == pytest.approx({s.joint: s.neutral for s in CONFIG.servos},
                                                     abs=ARRIVED_TICKS * RAD_PER_TICK)
        bus.torque_off()
    with raw_port(link) as raw:
        assert all(register(raw, s.id, "torque_enable") == 0 for s in CONFIG.servos)


def test_read_state_reports_velocity_in_joint_direction(link):
    left, right = CONFIG.servo("lip_corner_left"), CONFIG.servo("lip_corner_right")
    assert left.direction == 1 and right.direction == -1
    with raw_port(link) as raw:
        for servo in (left, right):  # slow enough to be caught moving, even on a loaded machine
            set_register(raw, servo.id, "profile_velocity", 10)
    with ServoBus(CONFIG.servos) as bus:
        bus.open(link, BAUD)
        bus.start()
        bus.write_goals({left.joint: left.max, right.joint: right.max})
        reading = bus.read_state()
    assert reading.velocities[left.joint] > 0 and reading.velocities[right.joint] > 0


def test_comm_failure_raises_bus_error(tmp_path):
    path = tmp_path / "servo_bus"
    with emulator_process(path):
        bus = ServoBus(CONFIG.servos)
        bus.open(str(path), BAUD)
        bus.start()
    with pytest.raises(BusError, match=f"servo bus port {path} failed"):
        bus.read_state()  # the emulator (the "device") is gone
    bus.close()
