"""The emulated servo bus: its logic directly, and the real console program over a pty via dynamixel-sdk."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import tempfile
import time
from pathlib import Path

import pytest
import dynamixel_sdk.port_handler
from dynamixel_sdk import COMM_RX_TIMEOUT, COMM_SUCCESS, GroupSyncRead, GroupSyncWrite, PacketHandler, PortHandler

from humimic_core import paths
from humimic_core.robot_config import load_robot_config
from humimic_driver import protocol as p
from humimic_core.control_tables import HW_INPUT_VOLTAGE, HW_OVERHEATING, HW_OVERLOAD, MODELS
from humimic_core.control_tables import X_SERIES_REGISTERS as REG
from humimic_driver.sim.emulated_bus import control_address, control_dir, emulator_process, main, send_command
from humimic_driver.sim.fault_injection import apply_fault
from humimic_driver.sim.servo_emulator import BOOT_TIME_S, EmulatedServo, ServoEmulator

pytestmark = pytest.mark.timeout(60)

CONFIG = load_robot_config(paths.config_file("robot_face.yaml"))


# --- logic, with a fake clock --------------------------------------------------------------------

def _replies(emulator: ServoEmulator, data: bytes, now: float) -> bytes:
    return b"".join(reply for _, reply in emulator.receive(data, now))


def _exchange(emulator: ServoEmulator, now: float, packet_id: int, inst: int, params: bytes = b""):
    return p.PacketParser().feed(_replies(emulator, p.encode_instruction(packet_id, inst, params), now))


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
    assert _write(emulator, 0.0, 1, "goal_position", 4000) == 0  # within the factory limits 0..4095
    assert _write(emulator, 0.0, 1, "max_position_limit", 2600) == 0  # then the limit moves below the goal
    assert _write(emulator, 0.0, 1, "profile_velocity", 100) == 0
    assert _write(emulator, 0.0, 1, "torque_enable", 1) == 0
    assert _write(emulator, 0.0, 1, "goal_position", 2700) == p.ERR_DATA_LIMIT  # refused: beyond the limit
    servo = emulator.servos[1]
    assert servo.get("goal_position") == 4000
    speed = 100 * servo.ticks_s_per_velocity_unit
    _exchange(emulator, 0.2, 1, p.INST_PING)  # the packets before took a few ms on the wire at 1 Mbps
    assert servo.get("present_position") == pytest.approx(2048 + 0.2 * speed, abs=0.005 * speed)
    assert servo.get("present_velocity") == 100 and servo.get("moving") == 1
    assert servo.get("present_current") > 0  # pushing toward the goal
    _exchange(emulator, 10.0, 1, p.INST_PING)
    assert servo.get("present_position") == 2600  # motion kept inside the limit registers
    assert servo.get("present_velocity") == 0 and servo.get("moving") == 0
    assert _write(emulator, 10.0, 1, "profile_velocity", 5000) == p.ERR_DATA_LIMIT  # above the velocity limit


def test_default_speed_is_the_velocity_limit_and_torque_off_servos_stay():
    emulator = ServoEmulator([EmulatedServo(1, "XM430-W350", 2048), EmulatedServo(2, "XM430-W350", 2048)])
    for sid in (1, 2):
        _write(emulator, 0.0, sid, "goal_position", 1000)
    _write(emulator, 0.0, 1, "torque_enable", 1)
    _exchange(emulator, 0.1, 1, p.INST_PING)
    limit = MODELS["XM430-W350"].defaults["velocity_limit"]
    speed = limit * emulator.servos[1].ticks_s_per_velocity_unit  # the writes before took a few ms on the wire
    assert emulator.servos[1].get("present_position") == pytest.approx(2048 - 0.1 * speed, abs=0.005 * speed)
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
    (status,) = p.PacketParser().feed(_replies(emulator, bytes(bad), 0.0))
    assert status.id == 1 and status.error == p.ERR_CRC


def test_partial_packet_is_dropped_after_silence():
    emulator = ServoEmulator([EmulatedServo(1, "XL330-M288", 2048)])
    ping = p.encode_instruction(1, p.INST_PING)
    assert emulator.receive(ping[:5], 0.0) == []
    assert emulator.receive(ping, 1.0) != []  # the stale prefix does not swallow the new packet


def test_id_write_moves_the_servo():
    emulator = ServoEmulator([EmulatedServo(1, "XL330-M288", 2048)])
    assert _write(emulator, 0.0, 1, "id", 42) == 0
    assert list(emulator.servos) == [42]
    assert _exchange(emulator, 0.0, 1, p.INST_PING) == []


# --- the console program over a pty, driven by dynamixel-sdk -------------------------------------

@pytest.fixture
def sdk_bus(tmp_path, monkeypatch):
    # The SDK waits 2 x its 16 ms latency timer for a reply; on a loaded 2-core machine the emulator
    # process is not always scheduled that soon (a COMM_RX_TIMEOUT seen with a busy core beside the
    # suite). These tests check the emulator's answers, not its speed: wait up to 0.2 s.
    monkeypatch.setattr(dynamixel_sdk.port_handler, "LATENCY_TIMER", 100)
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
    assert ph.ping(port, 5)[1] == COMM_RX_TIMEOUT  # still booting
    time.sleep(BOOT_TIME_S)
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


def test_control_socket_is_owner_only_in_a_private_directory(monkeypatch, request):
    tmp = Path(tempfile.mkdtemp(prefix="hm", dir="/tmp"))  # short: socket paths have at most 107 bytes
    request.addfinalizer(lambda: shutil.rmtree(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))  # the emulator's temp dir (a child process)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))  # and this process's
    private = tmp / f"humimic-{os.getuid()}"
    private.mkdir(mode=0o755)  # left too open by someone: tightened
    link = tmp / "servo_bus"
    with emulator_process(link):
        sock = control_address(link)
        assert sock.parent == private and stat.S_ISSOCK(sock.lstat().st_mode)
        assert stat.S_IMODE(private.lstat().st_mode) == 0o700
        assert stat.S_IMODE(sock.lstat().st_mode) == 0o600
        assert json.loads(send_command(link, "state 1"))["id"] == 1
    assert not sock.exists()  # removed on exit
    if os.getuid() == 0:  # a directory another user made for us is refused
        os.chown(private, 65534, 65534)
        with pytest.raises(OSError, match="not a directory of this user"):
            control_dir()


def test_sigterm_stops_the_emulator_and_removes_the_link(tmp_path):
    link = tmp_path / "servo_bus"
    with emulator_process(link) as proc:
        assert link.is_symlink()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert not link.is_symlink()


# --- realism and faults, logic with a fake clock ---------------------------------------------------

def test_replies_arrive_after_wire_time_and_return_delay():
    servos = [EmulatedServo(i, "XL330-M288", 2048) for i in (1, 2)]
    servos[0].set("return_delay_time", 50)  # 100 us
    servos[1].set("return_delay_time", 0)
    for baud in (1000000, 4000000):
        emulator = ServoEmulator(servos, baud)
        request = p.encode_instruction(p.BROADCAST_ID, p.INST_SYNC_READ, p.sync_read_params(132, 4, [1, 2]))
        start = 10.0 * baud / 1e6  # a fresh idle line each round

        def wire(n):
            return n * 10 / baud

        (t1, r1), (t2, r2) = emulator.receive(request, start)
        assert t1 == pytest.approx(start + wire(len(request)) + 100e-6 + wire(len(r1)))
        assert t2 == pytest.approx(t1 + wire(len(r2)))  # chained: ID 2 answers right after ID 1
        ping = p.encode_instruction(2, p.INST_PING)
        ((t3, r3),) = emulator.receive(ping, start)  # sent while the line is still busy: waits for it
        assert t3 == pytest.approx(t2 + wire(len(ping)) + wire(len(r3)))


def test_overheating_drops_torque_sets_alert_until_rebooted_cool():
    servo = EmulatedServo(1, "XL330-M288", 2048)
    emulator = ServoEmulator([servo])
    assert _write(emulator, 0.0, 1, "torque_enable", 1) == 0
    servo.overheat(0.0, 10.0)  # 30 C -> 71 C (limit 70 + 1) in 10 s
    (status,) = _exchange(emulator, 5.0, 1, p.INST_PING)
    assert status.error == 0 and servo.get("present_temperature") == pytest.approx(50.5, abs=1)
    (status,) = _exchange(emulator, 10.5, 1, p.INST_PING)
    assert status.error == p.ERR_ALERT and servo.hardware_error == HW_OVERHEATING
    assert not servo.torque  # overheating is in the Shutdown register's default 52
    (status,) = _exchange(emulator, 10.6, 1, p.INST_WRITE, p.write_params(64, b"\x01"))
    assert status.error == p.ERR_ALERT and not servo.torque  # no torque until rebooted
    _exchange(emulator, 11.0, 1, p.INST_REBOOT)
    assert _exchange(emulator, 11.0 + BOOT_TIME_S / 2, 1, p.INST_PING) == []  # booting
    (status,) = _exchange(emulator, 11.5, 1, p.INST_PING)
    assert status.error == p.ERR_ALERT  # still too hot: the error is back at once
    servo.set_temperature(12.0, 40.0)
    _exchange(emulator, 12.0, 1, p.INST_REBOOT)
    (status,) = _exchange(emulator, 12.5, 1, p.INST_PING)
    assert status.error == 0 and servo.hardware_error == 0
    assert _write(emulator, 12.5, 1, "torque_enable", 1) == 0 and servo.torque


def test_input_voltage_error_keeps_torque_where_the_model_says_injected_overload_drops_it():
    """Each model's Shutdown register as the e-Manual gives it: an XM430 (52) keeps torque through an
    input voltage error, an XL330 (53) drops it; both drop it on an overload."""
    xm, xl = EmulatedServo(1, "XM430-W350", 2048), EmulatedServo(2, "XL330-M288", 2048)
    emulator = ServoEmulator([xm, xl])
    for servo, volts in ((xm, "17.0"), (xl, "8.0")):  # above the 16.0 and 7.0 V limits
        _write(emulator, 0.0, servo.id, "torque_enable", 1)
        assert apply_fault(f"voltage {servo.id} {volts}", emulator, 0.1, None) == "ok"
        (status,) = _exchange(emulator, 0.2, servo.id, p.INST_PING)
        assert status.error == p.ERR_ALERT and servo.hardware_error == HW_INPUT_VOLTAGE
    assert xm.torque and xm.get("present_input_voltage") == 170  # not in its Shutdown register
    assert not xl.torque and xl.get("present_input_voltage") == 80  # in the XL330's
    apply_fault("overload 1", emulator, 0.3, None)
    assert xm.hardware_error == HW_INPUT_VOLTAGE | HW_OVERLOAD and not xm.torque


def test_dead_servo_is_silent_and_sync_read_skips_it_until_revived():
    emulator = ServoEmulator([EmulatedServo(i, "XL330-M288", 2000 + i) for i in (1, 2, 3)])
    _write(emulator, 0.0, 2, "torque_enable", 1)
    apply_fault("dead 2", emulator, 0.0, None)
    assert _exchange(emulator, 0.1, 2, p.INST_PING) == []
    replies = _exchange(emulator, 0.2, p.BROADCAST_ID, p.INST_SYNC_READ, p.sync_read_params(132, 4, [1, 2, 3]))
    assert [(r.id, p.le_int(r.data)) for r in replies] == [(1, 2001), (3, 2003)]
    apply_fault("revive 2", emulator, 1.0, None)  # power back: boots with torque off
    assert _exchange(emulator, 1.0 + BOOT_TIME_S / 2, 2, p.INST_PING) == []
    (status,) = _exchange(emulator, 1.5, 2, p.INST_PING)
    assert status.error == 0 and not emulator.servos[2].torque


def test_crc_and_drop_rates():
    emulator = ServoEmulator([EmulatedServo(1, "XL330-M288", 2048)], seed=7)
    apply_fault("crc 0.2", emulator, 0.0, None)
    apply_fault("drop 0.1", emulator, 0.0, None)
    parser = p.PacketParser()
    outcomes = []
    for i in range(2000):
        packets = parser.feed(_replies(emulator, p.encode_instruction(1, p.INST_PING), float(i)))
        if not packets:
            outcomes.append("dropped")
        elif isinstance(packets[0], p.CorruptPacket):
            outcomes.append("corrupt reply")
        else:
            outcomes.append("servo saw CRC error" if packets[0].error == p.ERR_CRC else "ok")
    share = {k: outcomes.count(k) / len(outcomes) for k in set(outcomes)}
    assert share["dropped"] == pytest.approx(0.1, abs=0.03)
    assert share["servo saw CRC error"] == pytest.approx(0.9 * 0.2 * 0.8, abs=0.03)  # instruction hit, reply not
    assert share["corrupt reply"] == pytest.approx(0.9 * 0.2, abs=0.03)


@pytest.mark.parametrize("command, message", [
    ("explode 1", "unknown fault command 'explode'"),
    ("crc 2", "crc rate: 2 outside 0..1"),
    ("dead 99", "no emulated servo with ID '99'"),
    ("overheat 1", "overheat: expected 2 arguments, got 1"),
    ("voltage 1 lots", "voltage: expected a number, got 'lots'"),
    ("", "empty command"),
])
def test_bad_fault_commands_are_refused_with_a_reason(command, message):
    emulator = ServoEmulator([EmulatedServo(1, "XL330-M288", 2048)])
    with pytest.raises(ValueError, match=message):
        apply_fault(command, emulator, 0.0, None)


# --- the console program: baud rate, control socket, command-line faults ------------------------

def test_client_at_another_baud_rate_gets_no_answer(tmp_path):
    link = tmp_path / "servo_bus"
    with emulator_process(link, args=["--baud", "4000000"]):
        port = PortHandler(str(link))
        assert port.openPort() and port.setBaudRate(1000000)
        try:
            assert PacketHandler(2.0).ping(port, 1)[1] == COMM_RX_TIMEOUT
            assert port.setBaudRate(4000000)
            assert _ok(PacketHandler(2.0).ping(port, 1)) == CONFIG.servos[0].spec.model_number
        finally:
            port.closePort()


def test_unplug_and_plug_through_the_control_socket(tmp_path):
    link = tmp_path / "servo_bus"
    with emulator_process(link):
        port = PortHandler(str(link))
        assert port.openPort()
        assert send_command(link, "unplug") == "ok"
        assert not link.exists()
        with pytest.raises(Exception):  # the open port fails like an unplugged USB adapter
            PacketHandler(2.0).ping(port, 1)
        port.closePort()
        assert json.loads(send_command(link, "state 1"))["alive"] is True  # servos keep their power
        assert send_command(link, "plug") == "ok" and link.is_symlink()
        port = PortHandler(str(link))
        assert port.openPort()
        try:
            assert _ok(PacketHandler(2.0).ping(port, 1)) == CONFIG.servos[0].spec.model_number
        finally:
            port.closePort()
        with pytest.raises(ValueError, match="unknown fault command"):
            send_command(link, "explode 1")
    with pytest.raises(ConnectionError, match="no servo emulator serving"):
        send_command(link, "state 1")


def test_command_line_faults(tmp_path, capsys):
    link = tmp_path / "servo_bus"
    args = ["--fault", "dead 3", "--fault", "overheat 4 0.3", "--at", "0.5", "unplug 0.3"]
    with emulator_process(link, args=args):
        port = PortHandler(str(link))
        assert port.openPort()
        try:
            assert PacketHandler(2.0).ping(port, 3)[1] == COMM_RX_TIMEOUT
            assert _ok(PacketHandler(2.0).ping(port, 2)) == CONFIG.servos[1].spec.model_number
        finally:
            port.closePort()
        time.sleep(0.35)
        assert main(["--link", str(link), "--send", "state 4"]) == 0
        state = json.loads(capsys.readouterr().out)
        assert state["hardware_error_status"] == HW_OVERHEATING and state["torque_enable"] == 0
        deadline = time.monotonic() + 5.0
        while link.exists():  # unplugged 0.5 s after start ...
            assert time.monotonic() < deadline
            time.sleep(0.01)
        while not link.exists():  # ... and back 0.3 s later
            assert time.monotonic() < deadline
            time.sleep(0.01)
