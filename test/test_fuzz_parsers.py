"""Hypothesis fuzzing of both sides' packet handling: random bytes, truncated and corrupted packets.

Servo side: the emulator's parser and instruction handling. Driver side: the serial link's reply
handling (dynamixel-sdk's rxPacket, replies judged by ID) over a real pty, and the driver's goals. No exception escapes, and no goal outside the
limits is ever accepted or written.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import tty

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from humimic_core import paths
from humimic_core.robot_config import load_robot_config
from humimic_driver import protocol as p
from humimic_driver.bus import ServoBus
from humimic_core.control_tables import X_SERIES_REGISTERS as REG
from humimic_driver.sim.emulated_bus import emulator_process, send_command
from humimic_driver.serial_link import SerialLink
from humimic_driver.driver_settings import DriverSettings
from humimic_driver.servo_driver import ServoDriver
from humimic_driver.sim.servo_emulator import EmulatedServo, ServoEmulator

pytestmark = pytest.mark.timeout(120)

CONFIG = load_robot_config(paths.config_file("robot_face.yaml"))
IDS = (1, 2, 3)
LIMITS = (1000, 3000)
ADDRESSES = sorted({r.address for r in REG.values()} | {0, 146, 147, 500})


instruction_params = st.one_of(
    st.binary(max_size=48),
    st.builds(lambda a, d: p.write_params(a, d), st.sampled_from(ADDRESSES), st.binary(min_size=1, max_size=8)),
    st.builds(lambda a, n: p.read_params(a, n), st.sampled_from(ADDRESSES), st.integers(0, 300)),
    st.builds(lambda v: p.write_params(REG["goal_position"].address, p.le_bytes(v, 4)), st.integers(-5000, 9000)),
    st.builds(lambda ids, v: p.sync_write_params(REG["goal_position"].address, 4, {i: p.le_bytes(v, 4) for i in ids}),
              st.lists(st.sampled_from(IDS + (9,)), min_size=1, max_size=4, unique=True), st.integers(-5000, 9000)),
    st.builds(lambda a, n, ids: p.sync_read_params(a, n, ids), st.sampled_from(ADDRESSES), st.integers(0, 40),
              st.lists(st.sampled_from(IDS + (9,)), max_size=5)),
)
INSTRUCTIONS = [p.INST_PING, p.INST_READ, p.INST_WRITE, p.INST_REBOOT, p.INST_SYNC_READ, p.INST_SYNC_WRITE,
                p.INST_STATUS, 0x7E]


def instructions(kinds=INSTRUCTIONS):
    return st.builds(p.encode, st.sampled_from(IDS + (p.BROADCAST_ID, 200)), st.sampled_from(kinds),
                     instruction_params)


@st.composite
def damaged(draw, packets):
    """A packet, maybe truncated, with a byte flipped, or with garbage around it, or pure garbage."""
    packet = draw(packets)
    how = draw(st.sampled_from(["intact", "truncated", "flipped", "garbage around", "garbage"]))
    if how == "truncated":
        return packet[:draw(st.integers(0, len(packet) - 1))]
    if how == "flipped":
        i = draw(st.integers(0, len(packet) - 1))
        return packet[:i] + bytes((packet[i] ^ draw(st.integers(1, 255)),)) + packet[i + 1:]
    if how == "garbage around":
        return draw(st.binary(max_size=12)) + packet + draw(st.binary(max_size=12))
    if how == "garbage":
        return draw(st.binary(max_size=64))
    return packet


# --- the parser itself -----------------------------------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(st.lists(damaged(instructions()), max_size=6), st.data())
def test_parser_never_raises_and_does_not_depend_on_chunking(pieces, data):
    stream = b"".join(pieces)
    whole = p.PacketParser().feed(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    parser, chunked = p.PacketParser(), []
    for start, end in zip([0] + cuts, cuts + [len(stream)]):
        chunked += parser.feed(stream[start:end])
    assert chunked == whole
    for packet in whole:
        if isinstance(packet, p.Packet):  # a good packet re-encodes to bytes that are in the stream
            assert p.encode(packet.id, packet.instruction, packet.params) in stream


# --- servo side: the emulator ------------------------------------------------------------------------

def _servos():
    servos = []
    for sid in IDS:
        servo = EmulatedServo(sid, "XL330-M288", 2048)
        servo.set("min_position_limit", LIMITS[0])
        servo.set("max_position_limit", LIMITS[1])
        servo.set("return_delay_time", 0)
        servo.set("torque_enable", 1)
        servos.append(servo)
    return servos


@settings(max_examples=300, deadline=None)
@given(st.lists(damaged(instructions([k for k in INSTRUCTIONS if k != p.INST_REBOOT])), min_size=1, max_size=12))
def test_emulator_answers_any_bytes_and_never_accepts_a_goal_outside_its_limits(stream):
    """(Without reboots: a rebooting servo takes its present position as goal, wherever that is.)"""
    emulator = ServoEmulator(_servos(), seed=0)
    now = 100.0
    for chunk in stream:
        before = {sid: (s.get("goal_position"), s.get("min_position_limit"), s.get("max_position_limit"),
                        s.get("present_position")) for sid, s in emulator.servos.items()}
        replies = emulator.receive(chunk, now)
        times = [t for t, _ in replies]
        assert times == sorted(times) and all(t >= now for t in times)
        for _, reply in replies:
            (status,) = p.PacketParser().feed(reply)
            assert isinstance(status, p.Packet) and status.is_status
        now += 1.0
        for sid, servo in emulator.servos.items():
            if sid not in before:
                continue  # its ID was changed
            goal, lo, hi, position = before[sid]
            if servo.get("goal_position") != goal:  # an accepted goal is inside the limits in force
                assert servo.get("min_position_limit") <= servo.get("goal_position") <= servo.get("max_position_limit")
            servo.update(now)
            inside = servo.get("min_position_limit") <= position <= servo.get("max_position_limit")
            if servo.torque and inside:  # and motion never leaves them
                low, high = servo.get("min_position_limit"), servo.get("max_position_limit")
                assert low <= servo.get("present_position") <= high


# --- driver side: reply parsing on a real pty, goals ------------------------------------------------

@pytest.fixture(scope="module")
def pty_link():
    master, slave = os.openpty()
    tty.setraw(slave)
    link = SerialLink(os.ttyname(slave), 1000000)
    link.open()
    yield master, link
    link.close()
    os.close(master)
    os.close(slave)


status_packet = st.builds(lambda sid, err, data: p.encode_status(sid, err, data), st.sampled_from(IDS + (7,)),
                          st.integers(0, 255), st.binary(max_size=12))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(damaged(status_packet), max_size=6))
def test_link_reply_parsing_survives_any_bytes(pty_link, pieces):
    master, link = pty_link
    stream = b"".join(pieces)
    os.write(master, stream)
    replies = link.collect(IDS, 0.002)
    assert set(replies.packets) <= set(IDS) and set(replies.corrupt) <= set(IDS)
    assert not set(replies.packets) & set(replies.corrupt)
    for sid, status in replies.packets.items():  # a good reply is one of the status packets sent
        assert p.encode_status(sid, status.error, status.data) in stream
    link.collect(IDS, 0.002)  # drain what is left for the next example
    link.port_handler.clearPort()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    link = str(tmp_path_factory.mktemp("fuzz") / "servo_bus")
    with emulator_process(link):
        bus = ServoBus(CONFIG.servos, dataclasses.replace(CONFIG.bus, port=link))
        driver = ServoDriver(bus, DriverSettings(reply_timeout_margin_ms=30.0), now_ns=0)
        driver.start()
        yield driver, link
        driver.bus.close()


wild = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-10.0, 10.0))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from([s.joint for s in CONFIG.servos] + ["ghost"]), wild, max_size=8))
def test_no_command_puts_a_goal_outside_the_limits(driver, command):
    driver, link = driver
    usable = any(j in driver.goals and math.isfinite(v) for j, v in command.items())
    try:
        written = driver.command(list(command), list(command.values()), 0, 0)
    except ValueError as exc:  # no finite position for a joint of the robot: refused, nothing written
        assert not usable and "not a command" in str(exc)
        return
    assert written is not None and usable
    for joint, goal in written.goals.items():
        servo = driver.bus.servo(joint)
        assert servo.min <= goal <= servo.max and math.isfinite(goal)
        low, high = servo.tick_limits()  # the servo's own limit registers
        assert low <= servo.to_tick(goal) <= high
    for servo in CONFIG.servos[::5]:
        low, high = servo.tick_limits()
        assert low <= json.loads(send_command(link, f"state {servo.id}"))["goal_position"] <= high
