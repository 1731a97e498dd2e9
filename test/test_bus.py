"""ServoBus (dynamixel-sdk underneath: PortHandler, GroupSyncWrite, GroupSyncRead, PacketHandler) against the
emulated bus on a pty."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import time
import tty

import pytest
import yaml
from dynamixel_sdk import COMM_SUCCESS, PacketHandler, PortHandler

from humimic_core import paths
from humimic_core.robot_config import load_robot_config, parse_robot_config
from humimic_driver.bus import STATE, LinkError, ServoBus, ServoError, velocity_units
from humimic_core.control_tables import RAD_PER_TICK, X_SERIES_REGISTERS as REG
from humimic_driver.sim.emulated_bus import emulator_process, send_command
from humimic_driver.serial_link import SerialLink, usb_latency_timer_ms

pytestmark = pytest.mark.timeout(60)

CONFIG = load_robot_config(paths.config_file("robot_face.yaml"))


def make_bus(link, servos=CONFIG.servos) -> ServoBus:
    """A bus with patient reply deadlines: the emulated servos share the loaded test machine."""
    bus = ServoBus(servos, dataclasses.replace(CONFIG.bus, port=link), timeout_margin_s=0.03)
    assert bus.open() is None  # a pty has no USB latency timer to warn about
    return bus


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


def test_configure_writes_mode_limits_return_delay_profiles_then_torque(link):
    def tune(servos):
        servos[3].update(return_delay_us=100, profile_velocity=2.0, profile_acceleration=20.0)

    servos = config_with(tune).servos
    with raw_port(link) as raw:
        set_register(raw, 1, "operating_mode", 1)  # velocity mode left over from elsewhere
        set_register(raw, 1, "goal_position", 3000)  # stale goal: must not be driven to on torque-on
        set_register(raw, 5, "goal_position", 2100)  # ID 5 left away from neutral
        set_register(raw, 5, "torque_enable", 1)
        time.sleep(0.1)
    with make_bus(link, servos) as bus:
        for servo in servos:
            bus.configure(servo, servo.neutral, 0.5 if servo.id == 5 else servo.profile_velocity)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            positions = {j: s.position for j, s in bus.read_states(servos)[0].items()}
            if positions == pytest.approx({s.joint: s.neutral for s in servos}, abs=RAD_PER_TICK):
                break
    assert positions == pytest.approx({s.joint: s.neutral for s in servos}, abs=RAD_PER_TICK)
    with raw_port(link) as raw:
        for servo in servos:
            low, high = servo.tick_limits()
            assert register(raw, servo.id, "min_position_limit") == low, servo.joint
            assert register(raw, servo.id, "max_position_limit") == high, servo.joint
            assert register(raw, servo.id, "operating_mode") == 3
            assert register(raw, servo.id, "goal_position") == servo.to_tick(servo.neutral)
            assert register(raw, servo.id, "torque_enable") == 1
        assert register(raw, 1, "return_delay_time") == 0  # factory 250 (500 us) -> 0
        assert register(raw, 1, "profile_velocity") == 0  # configured: no profile
        assert register(raw, 5, "profile_velocity") == velocity_units(servos[4], 0.5)
        assert register(raw, 4, "return_delay_time") == 50
        assert register(raw, 4, "profile_velocity") == round(2.0 / (0.229 * 2 * 3.141592653589793 / 60))
        assert register(raw, 4, "profile_acceleration") == round(20.0 / (214.577 * 2 * 3.141592653589793 / 3600))


def test_configure_names_servo_with_wrong_model(link):
    def swap_model(servos):
        servos[3]["model"] = "XM430-W350"  # ID 4 is an XL330-M288 on the bus

    servos = config_with(swap_model).servos
    with make_bus(link, servos) as bus, pytest.raises(ServoError) as err:
        bus.configure(servos[3], 0.0, 0.5)
    assert err.value.model_mismatch
    message = str(err.value)
    assert "servo ID 4 (joint brow_inner_left)" in message
    assert "expected model XM430-W350 (1020), found XL330-M288 (1200)" in message


def test_missing_servo_is_named(link):
    def add_servo(servos):
        servos.append({**servos[-1], "joint": "tongue", "id": 20})

    servos = config_with(add_servo).servos
    with make_bus(link, servos) as bus, pytest.raises(ServoError, match=r"servo ID 20 \(joint tongue\).*"
                                                                         r"ping: no answer \(timeout\) after 3 tries"):
        bus.check_model(servos[-1])


def test_open_names_the_port(tmp_path):
    missing = str(tmp_path / "no_such_port")
    with pytest.raises(LinkError, match=f"cannot open servo bus port {missing}"):
        ServoBus(CONFIG.servos, dataclasses.replace(CONFIG.bus, port=missing)).open()


def test_goals_beyond_limits_are_clamped_on_the_bus(link):
    wild = {s.joint: (10.0 if i % 2 else -10.0) for i, s in enumerate(CONFIG.servos)}
    wild[CONFIG.servos[0].joint] = float("nan")
    with make_bus(link) as bus:
        written = bus.write_goals(wild)
    with raw_port(link) as raw:
        for i, servo in enumerate(CONFIG.servos):
            tick = register(raw, servo.id, "goal_position")
            low, high = servo.tick_limits()
            assert low <= tick <= high, servo.joint
            expected = servo.neutral if i == 0 else (servo.max if i % 2 else servo.min)
            assert tick == servo.to_tick(expected), servo.joint
            assert written[servo.joint] == pytest.approx(expected, abs=RAD_PER_TICK)


def test_sync_read_keeps_the_others_when_one_servo_is_dead(link):
    with make_bus(link) as bus:
        for servo in CONFIG.servos:  # return delay 0 instead of the factory 500 us, as the deadlines assume
            bus.configure(servo, servo.neutral, 0.5)
        send_command(link, "dead 4")
        states, result = bus.read_states(CONFIG.servos, retries=1)
    assert set(states) == {s.joint for s in CONFIG.servos} - {"brow_inner_left"}
    assert result.missing == [4] and result.failures == {4: 2}  # first try and one retry


def test_corrupt_replies_are_retried_and_counted(tmp_path):
    path = tmp_path / "servo_bus"
    with emulator_process(path, args=["--seed", "3"]):
        with make_bus(str(path)) as bus:
            for servo in CONFIG.servos:
                bus.configure(servo, servo.neutral, 0.5)
            send_command(path, "crc 0.1")
            results = [bus.sync_read(STATE, CONFIG.servos, retries=3) for _ in range(40)]
    assert sum(sum(r.crc_errors.values()) for r in results) > 10  # ~10% of 640 replies
    assert sum(len(r.missing) for r in results) <= 2  # retries got almost every one through
    assert all(len(data) == STATE.length(CONFIG.servos[0].spec) for r in results for data in r.data.values())


def test_single_transactions_retry_corrupt_packets(tmp_path):
    path = tmp_path / "servo_bus"
    with emulator_process(path, args=["--seed", "5", "--fault", "crc 0.2"]):  # requests and replies
        bus = ServoBus(CONFIG.servos, dataclasses.replace(CONFIG.bus, port=str(path)), retries=10,
                       timeout_margin_s=0.03)
        with bus:
            bus.open()
            assert [bus.ping(s) for s in CONFIG.servos] == [s.spec.model_number for s in CONFIG.servos]
            for servo in CONFIG.servos:
                bus.write(servo, "led", 1)
                assert bus.read(servo, "led") == 1


def test_states_report_velocity_and_effort_in_joint_direction(link):
    def slow_lips(servos):  # slow enough to be caught moving, even on a loaded machine
        for servo in servos:
            if servo["joint"].startswith("lip_corner"):
                servo["profile_velocity"] = 0.2

    config = config_with(slow_lips)
    left, right = config.servo("lip_corner_left"), config.servo("lip_corner_right")
    assert left.direction == 1 and right.direction == -1
    with make_bus(link) as bus:
        for servo in (left, right):
            bus.configure(servo, servo.neutral, servo.profile_velocity)
        bus.write_goals({left.joint: left.max, right.joint: right.max})
        time.sleep(0.05)  # under way
        states, _ = bus.read_states([left, right])
    for joint in (left.joint, right.joint):
        assert states[joint].velocity > 0 and states[joint].effort > 0


def test_sync_read_keeps_each_servos_error_byte(link):
    with make_bus(link) as bus:
        for servo in CONFIG.servos:
            bus.configure(servo, servo.neutral, 0.5)
        send_command(link, "overload 3")  # its status packets carry the hardware-alert bit from now on
        states, result = bus.read_states(CONFIG.servos)
    assert result.missing == [] and len(states) == len(CONFIG.servos)  # the alert is not a failed read
    assert bus.alerts == {3}


def test_second_driver_on_the_bus_is_refused(link):
    with make_bus(link), pytest.raises(LinkError, match=f"cannot open servo bus port {link}: in use"):
        ServoBus(CONFIG.servos, dataclasses.replace(CONFIG.bus, port=link)).open()


@pytest.fixture
def idle_link():
    """A SerialLink on a pty that nobody answers."""
    master, slave = os.openpty()
    tty.setraw(slave)
    link = SerialLink(os.ttyname(slave), 1000000)
    link.open()
    yield link
    link.close()
    os.close(master)
    os.close(slave)


def test_packet_timeouts_come_from_the_wire_not_the_sdk_latency_timer(idle_link):
    port = idle_link.port_handler
    port.slack_ms = 1.5
    port.writePort(bytes(14))  # what the SDK calls for a READ of 4 bytes: the request, then the reply's length
    port.setPacketTimeout(4 + 11)
    assert port.packet_timeout == pytest.approx((14 + 15) * 10 / 1000000 * 1e3 + 1.5)  # the SDK: 2 x 16 + 2 ms


def test_waiting_for_replies_sleeps_instead_of_spinning(idle_link):
    wall, cpu = time.monotonic(), time.process_time()
    assert idle_link.collect([1, 2], 0.2).missing([1, 2]) == [1, 2]
    assert time.monotonic() - wall >= 0.2
    assert time.process_time() - cpu < 0.05  # the SDK's own readPort loop would keep a core busy all along


def test_port_failure_raises_link_error(tmp_path):
    path = tmp_path / "servo_bus"
    with emulator_process(path):
        bus = make_bus(str(path))
    with pytest.raises(LinkError, match=f"servo bus port {path} failed"):
        bus.read_states(CONFIG.servos)  # the emulator (the "device") is gone
    assert not bus.is_open
    bus.close()


def test_usb_latency_timer_read_from_sysfs(tmp_path):
    devices = tmp_path / "devices"
    (devices / "ttyUSB7").mkdir(parents=True)
    (devices / "ttyUSB7" / "latency_timer").write_text("16\n")
    by_id = tmp_path / "usb-FTDI_U2D2-if00-port0"
    by_id.symlink_to("/dev/ttyUSB7")
    assert usb_latency_timer_ms(str(by_id), devices) == 16
    assert usb_latency_timer_ms("/dev/pts/3", devices) is None


def test_every_model_family_on_one_bus(tmp_path):
    models = ["XL330-M288", "XC330-M288", "XM430-W350", "XM540-W270"]
    document = {"robot": {"name": "mixed"}, "bus": {"port": str(tmp_path / "servo_bus"), "baud_rate": 4000000},
                "servos": [{"joint": f"j{i}", "id": i + 1, "model": m, "min": -0.5, "max": 0.5, "neutral": 0.0}
                           for i, m in enumerate(models)]}
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(document))
    config = parse_robot_config(document, str(path))
    with emulator_process(config.bus.port, path), ServoBus(config.servos, config.bus) as bus:
        bus.open()
        for servo in config.servos:
            assert bus.ping(servo) == servo.spec.model_number
            bus.configure(servo, 0.3, 0.0)
        time.sleep(0.3)
        states, result = bus.read_states(config.servos)  # one sync read across the models: shared layout
    assert result.missing == [] and set(states) == {"j0", "j1", "j2", "j3"}
    assert all(abs(s.position - 0.3) <= RAD_PER_TICK for s in states.values())


def test_a_late_reply_to_an_earlier_read_is_not_taken_as_data():
    """A status packet of the right servo but the wrong length (the late answer to an earlier
    request) is a corrupt reply, not the data asked for."""
    from dynamixel_sdk import COMM_RX_CORRUPT
    from humimic_driver.protocol import encode_status as status_packet
    from humimic_driver.serial_link import CheckedPacketHandler

    class Replay:
        """A port that answers any request with one prepared status packet."""

        def __init__(self, reply: bytes) -> None:
            self.reply, self.is_using = bytearray(reply), False

        def clearPort(self):
            pass

        def writePort(self, packet):
            return len(packet)

        def setPacketTimeout(self, length):
            pass

        def readPort(self, length):
            out, self.reply = bytes(self.reply[:length]), self.reply[length:]
            return list(out)

        def isPacketTimeout(self):
            return not self.reply

    position_reply = status_packet(1, 0, (2048).to_bytes(4, "little"))  # answers a 4-byte read
    handler = CheckedPacketHandler()
    data, result, _ = handler.readTxRx(Replay(position_reply), 1, 0, 2)  # asks for the 2-byte model number
    assert result == COMM_RX_CORRUPT
    data, result, _ = handler.readTxRx(Replay(status_packet(1, 0, (1020).to_bytes(2, "little"))), 1, 0, 2)
    assert result == COMM_SUCCESS and data == [0xFC, 0x03]
