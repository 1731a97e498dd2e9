"""The emulated servo bus: its logic directly, and the real console program over a pty via dynamixel-sdk."""
from __future__ import annotations

import signal
import time

import pytest
from dynamixel_sdk import COMM_RX_TIMEOUT, COMM_SUCCESS, GroupSyncRead, GroupSyncWrite, PacketHandler, PortHandler

from humimic_core import paths
from humimic_core.robot_config import load_robot_config
from humimic_driver import protocol as p
from humimic_driver.control_tables import MODELS, X_SERIES_REGISTERS as REG
from humimic_driver.emulated_bus import emulator_process
from humimic_driver.servo_emulator import TICKS_S_PER_VELOCITY_UNIT, EmulatedServo, ServoEmulator

pytestmark = pytest.mark.timeout(60)

CONFIG = load_robot_config(paths.config_file("robot_face.yaml"))


# --- logic, with a fake clock --------------------------------------------------------------------

def _exchange(emulator: ServoEmulator, now: float, packet_id: int, inst: int, params: bytes = b""):
    return p.PacketParser().feed(emulator.receive(p.encode_instruction(packet_id, inst, params), now))


def _write(emulator, now, sid, name, value):
    reg = REG[name]
    (status,) = _exchange(emulator, now, sid, p.INST_WRITE, p.write_params(reg.address, p.le_bytes(value, reg.size)))
    return status.error


def test_control_table_starts_from_model_defaults():
    servo = EmulatedServo(7, "XL330-M288", 2100)
    spec = MODELS["XL330-M288"]
    assert servo.get("model_number") == 1200 and servo.id == 7
    for name, value in spec.defaults.items():
        assert servo.get(name) == value, name
    assert servo.get("present_position") == servo.get("goal_position") == 2100
    assert servo.get("torque_enable") == 0


def test_sync_read_replies_in_the_listed_order_and_skips_absent_ids():
    emulator = ServoEmulator([EmulatedServo(i, "XL330-M288", 2000 + i) for i in (1, 2, 3)])
    replies = _exchange(emulator, 0.0, p.BROADCAST_ID, p.INST_SYNC_READ, p.sync_read_params(132, 4, [3, 9, 1, 2]))
    assert [(r.id, p.le_int(r.data)) for r in replies] == [(3, 2003), (1, 2001), (2, 2002)]


def test_broadcast_ping_answers_every_servo_in_id_order():
    emulator = ServoEmulator([EmulatedServo(i, m, 2048) for i, m in ((5, "XM430-W350"), (2, "XL330-M288"))])
    replies = _exchange(emulator, 0.0, p.BROADCAST_ID, p.INST_PING)
    assert [(r.id, p.le_int(r.data[:2])) for r in replies] == [(2, 1200), (5, 1020)]


def test_motion_follows_profile_velocity_and_position_limits():
    emulator = ServoEmulator([EmulatedServo(1, "XL330-M288", 2048)])
    assert _write(emulator, 0.0, 1, "max_position_limit", 2600) == 0
    assert _write(emulator, 0.0, 1, "profile_velocity", 100) == 0
    assert _write(emulator, 0.0, 1, "torque_enable", 1) == 0
    assert _write(emulator, 0.0, 1, "goal_position", 4000) == 0  # beyond the limit register
    servo = emulator.servos[1]
    speed = 100 * TICKS_S_PER_VELOCITY_UNIT
    _exchange(emulator, 0.2, 1, p.INST_PING)
    assert servo.get("present_position") == round(2048 + 0.2 * speed)
    assert servo.get("present_velocity") == 100 and servo.get("moving") == 1
    _exchange(emulator, 10.0, 1, p.INST_PING)
    assert servo.get("present_position") == 2600  # clamped to max_position_limit
    assert servo.get("present_velocity") == 0 and servo.get("moving") == 0
    assert servo.get("goal_position") == 4000  # the register keeps what was written


def test_default_speed_is_the_velocity_limit_and_torque_off_servos_stay():
    emulator = ServoEmulator([EmulatedServo(1, "XM430-W350", 2048), EmulatedServo(2, "XM430-W350", 2048)])
    for sid in (1, 2):
        _write(emulator, 0.0, sid, "goal_position", 1000)
    _write(emulator, 0.0, 1, "torque_enable", 1)
    _exchange(emulator, 0.1, 1, p.INST_PING)
    limit = MODELS["XM430-W350"].defaults["velocity_limit"]
    assert emulator.servos[1].get("present_position") == round(2048 - 0.1 * limit * TICKS_S_PER_VELOCITY_UNIT)
    assert emulator.servos[1].get("present_velocity") == -limit
    assert emulator.servos[2].get("present_position") == 2048


def test_write_errors_match_the_control_table_access_rules():
    emulator = ServoEmulator([EmulatedServo(1, "XL330-M288", 2048)])
    assert _write(emulator, 0.0, 1, "present_position", 5) == p.ERR_ACCESS  # read-only
    assert _write(emulator, 0.0, 1, "torque_enable", 1) == 0
    assert _write(emulator, 0.0, 1, "operating_mode", 1) == p.ERR_ACCESS  # EEPROM while torque on
    (status,) = _exchange(emulator, 0.0, 1, p.INST_READ, p.read_params(140, 100))
    assert status.error == p.ERR_ACCESS
    (status,) = _exchange(emulator, 0.0, 1, 0x7E)
    assert status.error == p.ERR_INSTRUCTION


def test_status_return_level_and_corrupt_packets():
    emulator = ServoEmulator([EmulatedServo(1, "XL330-M288", 2048)])
    assert _write(emulator, 0.0, 1, "status_return_level", 1) == 0
    assert _exchange(emulator, 0.0, 1, p.INST_WRITE, p.write_params(65, b"\x01")) == []  # no reply to WRITE
    assert emulator.servos[1].get("led") == 1
    bad = bytearray(p.encode_instruction(1, p.INST_PING))
    bad[-2] ^= 0xFF
    (status,) = p.PacketParser().feed(emulator.receive(bytes(bad), 0.0))
    assert status.id == 1 and status.error == p.ERR_CRC


def test_partial_packet_is_dropped_after_silence():
    emulator = ServoEmulator([EmulatedServo(1, "XL330-M288", 2048)])
    ping = p.encode_instruction(1, p.INST_PING)
    assert emulator.receive(ping[:5], 0.0) == b""
    assert emulator.receive(ping, 1.0) != b""  # the stale prefix does not swallow the new packet


def test_id_write_moves_the_servo():
    emulator = ServoEmulator([EmulatedServo(1, "XL330-M288", 2048)])
    assert _write(emulator, 0.0, 1, "id", 42) == 0
    assert list(emulator.servos) == [42]
    assert _exchange(emulator, 0.0, 1, p.INST_PING) == []


# --- the console program over a pty, driven by dynamixel-sdk -------------------------------------

@pytest.fixture
def sdk_bus(tmp_path):
    link = tmp_path / "servo_bus"
    with emulator_process(link):
        port = PortHandler(str(link))
        assert port.openPort() and port.setBaudRate(1000000)
        try:
            yield port, PacketHandler(2.0)
        finally:
            port.closePort()
    assert not link.exists() and not link.is_symlink()  # removed on exit


def _ok(result_error):
    *value, result, error = result_error
    assert result == COMM_SUCCESS and error == 0, (result, error)
    return value[0] if value else None


def test_ping_answers_configured_models(sdk_bus):
    port, ph = sdk_bus
    for servo in CONFIG.servos:
        assert _ok(ph.ping(port, servo.id)) == servo.spec.model_number
    assert ph.ping(port, 200)[1] == COMM_RX_TIMEOUT


def test_write_and_read_back(sdk_bus):
    port, ph = sdk_bus
    servo = CONFIG.servos[3]
    assert _ok(ph.read4ByteTxRx(port, servo.id, REG["present_position"].address)) == servo.to_tick(servo.neutral)
    _ok(ph.write4ByteTxRx(port, servo.id, REG["goal_position"].address, 1234))
    assert _ok(ph.read4ByteTxRx(port, servo.id, REG["goal_position"].address)) == 1234
    _ok(ph.write1ByteTxRx(port, servo.id, REG["torque_enable"].address, 1))
    result, error = ph.write1ByteTxRx(port, servo.id, REG["operating_mode"].address, 1)
    assert result == COMM_SUCCESS and error == p.ERR_ACCESS


def test_sync_write_sync_read_and_motion(sdk_bus):
    port, ph = sdk_bus
    ids = [s.id for s in CONFIG.servos]
    torque = GroupSyncWrite(port, ph, REG["torque_enable"].address, 1)
    goals = GroupSyncWrite(port, ph, REG["goal_position"].address, 4)
    for sid in ids:
        torque.addParam(sid, [1])
        goals.addParam(sid, list(p.le_bytes(2048 + 10 * sid, 4)))
    assert torque.txPacket() == COMM_SUCCESS and goals.txPacket() == COMM_SUCCESS
    read = GroupSyncRead(port, ph, REG["goal_position"].address, 4)
    for sid in ids:
        read.addParam(sid)
    assert read.txRxPacket() == COMM_SUCCESS
    assert [read.getData(sid, REG["goal_position"].address, 4) for sid in ids] == [2048 + 10 * sid for sid in ids]
    state = GroupSyncRead(port, ph, REG["present_velocity"].address, 8)
    for sid in ids:
        state.addParam(sid)
    deadline = time.monotonic() + 5.0
    while True:
        assert state.txRxPacket() == COMM_SUCCESS
        present = [state.getData(sid, REG["present_position"].address, 4) for sid in ids]
        if present == [2048 + 10 * sid for sid in ids] or time.monotonic() > deadline:
            break
        moving = [p.le_int(p.le_bytes(state.getData(sid, REG["present_velocity"].address, 4), 4), signed=True)
                  for sid in ids]
        assert all(v >= 0 for v in moving)  # every servo moves up toward its goal, never away
    assert present == [2048 + 10 * sid for sid in ids]


def test_torque_off_servo_does_not_move(sdk_bus):
    port, ph = sdk_bus
    _ok(ph.write4ByteTxRx(port, 2, REG["goal_position"].address, 2300))
    time.sleep(0.1)
    assert _ok(ph.read4ByteTxRx(port, 2, REG["present_position"].address)) == 2048


def test_reboot_resets_ram_and_keeps_eeprom(sdk_bus):
    port, ph = sdk_bus
    _ok(ph.write4ByteTxRx(port, 5, REG["max_position_limit"].address, 3000))
    _ok(ph.write1ByteTxRx(port, 5, REG["torque_enable"].address, 1))
    _ok(ph.write1ByteTxRx(port, 5, REG["led"].address, 1))
    _ok(ph.reboot(port, 5))
    assert _ok(ph.read1ByteTxRx(port, 5, REG["torque_enable"].address)) == 0
    assert _ok(ph.read1ByteTxRx(port, 5, REG["led"].address)) == 0
    assert _ok(ph.read4ByteTxRx(port, 5, REG["max_position_limit"].address)) == 3000
    assert _ok(ph.ping(port, 5)) == 1200


def test_emulator_refuses_to_replace_a_regular_file(tmp_path):
    path = tmp_path / "not_a_link"
    path.write_text("keep me")
    with pytest.raises(RuntimeError, match="not a symlink"):
        with emulator_process(path):
            pass
    assert path.read_text() == "keep me"


def test_sigterm_stops_the_emulator_and_removes_the_link(tmp_path):
    link = tmp_path / "servo_bus"
    with emulator_process(link) as proc:
        assert link.is_symlink()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert not link.is_symlink()
