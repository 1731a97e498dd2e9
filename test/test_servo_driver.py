"""ServoDriver (the driver node's logic, no ROS) on a ServoBus against the emulated bus."""
from __future__ import annotations

import dataclasses
import json
import math
import time

import pytest
from dynamixel_sdk import PacketHandler, PortHandler

from humimic_core import paths
from humimic_core.robot_config import load_robot_config
from humimic_driver.bus import BusError, ServoBus, velocity_units
from humimic_core.control_tables import RAD_PER_TICK, X_SERIES_REGISTERS as REG
from humimic_driver.diagnostics import OK
from humimic_driver.sim.emulated_bus import send_command
from humimic_driver.driver_settings import DriverNodeSettings, DriverSettings
from humimic_driver.servo_driver import ServoDriver, percentile
from servo_loop import settle

pytestmark = pytest.mark.timeout(60)

CONFIG = load_robot_config(paths.config_file("robot_face.yaml"))
NEUTRAL = {s.joint: s.neutral for s in CONFIG.servos}
CAPS = CONFIG.motion_caps(3.0, 40.0)
MS = 1_000_000


def make_driver(link: str, **settings) -> ServoDriver:
    bus = ServoBus(CONFIG.servos, dataclasses.replace(CONFIG.bus, port=link))
    driver = ServoDriver(bus, DriverSettings(command_timeout=0.5, reply_timeout_margin_ms=30.0, **settings), now_ns=0,
                         caps=CAPS)
    driver.start()
    return driver


@pytest.fixture
def driver(link):
    driver = make_driver(link)
    yield driver
    driver.bus.close()


def test_start_up_moves_slowly_to_neutral_then_restores_the_profile(link):
    port = PortHandler(link)  # the jaw left open by someone else
    assert port.openPort()
    ph = PacketHandler(2.0)
    ph.write4ByteTxRx(port, 14, REG["goal_position"].address, 2300)
    ph.write1ByteTxRx(port, 14, REG["torque_enable"].address, 1)
    time.sleep(0.2)
    port.closePort()
    driver = make_driver(link, homing_velocity=0.4)
    jaw = driver.health["jaw"]
    state = json.loads(send_command(link, "state 14"))
    assert state["torque_enable"] == 1 and state["goal_position"] == 2048
    assert state["profile_velocity"] == int(0.4 / (0.229 * 2 * math.pi / 60))  # slowly to neutral (a cap: rounded down)
    assert [j for j, h in driver.health.items() if h.homing_until is not None] == ["jaw"]  # the others are there
    deadline = time.monotonic() + 5.0
    while jaw.homing_until is not None and time.monotonic() < deadline:
        assert driver.read_state()["jaw"].velocity >= -0.45  # never faster than the slow move (rad/s)
        driver.poll_health()
        time.sleep(0.02)
    assert jaw.homing_until is None and abs(jaw.position) <= 2 * RAD_PER_TICK
    state = json.loads(send_command(link, "state 14"))  # the jaw's caps, 4.5 rad/s and 225 rad/s^2, in its profile
    assert (state["profile_velocity"], state["profile_acceleration"]) == (velocity_units(jaw.servo, 4.5), 600)
    driver.bus.close()


def test_start_up_refuses_missing_servo_unless_allowed(link):
    send_command(link, "dead 5")
    with pytest.raises(BusError, match=r"start-up failed: servo ID 5 \(joint brow_inner_right\).*no answer"):
        make_driver(link)
    # the servos it had started are not left holding with nobody driving them (before: torque on)
    assert [json.loads(send_command(link, f"state {s.id}"))["torque_enable"] for s in CONFIG.servos if s.id != 5] \
        == [0] * (len(CONFIG.servos) - 1)
    driver = make_driver(link, require_all_servos=False)
    assert driver.health["brow_inner_right"].mode == "stale"
    assert any("brow_inner_right (ID 5) stale" in message for _, message in driver.events)
    driver.bus.close()


def test_start_up_survives_lost_replies_by_starting_a_servo_again(link):
    """A third of all replies lost (a stalled bus): transactions run out of retries now and then,
    and the servo's whole start-up begins again instead of the driver refusing to start."""
    send_command(link, "drop 0.3")
    driver = make_driver(link)
    try:
        assert all(h.mode == "active" for h in driver.health.values())
        again = [message for _, message in driver.events if "starting this servo again" in message]
        assert again and all("no answer (timeout) after 3 tries" in m for m in again)
        send_command(link, "drop 0")
        for servo in CONFIG.servos:  # configured despite the losses
            state = json.loads(send_command(link, f"state {servo.id}"))
            assert state["torque_enable"] == 1 and state["return_delay_time"] == 0
    finally:
        driver.bus.close()
    with pytest.raises(ValueError, match="startup_attempts must be >= 1"):
        DriverSettings(startup_attempts=0)


def test_partial_commands_merge_into_goals(driver):
    written = driver.command(["jaw", "ghost", "neck_yaw"], [0.2, 1.0, math.nan], stamp_ns=0, now_ns=5 * MS)
    assert written is not None and written.unknown == ["ghost"]
    assert set(written.goals) == set(NEUTRAL) and driver.goals == {**NEUTRAL, "jaw": 0.2}
    assert NEUTRAL["jaw"] <= written.goals["jaw"] < 0.2  # the setpoint is on its way at the jaw's speed caps
    settle(driver)
    written = driver.command(["neck_yaw"], [9.0], stamp_ns=10 * MS, now_ns=12 * MS)
    assert written.goals["jaw"] == pytest.approx(0.2, abs=RAD_PER_TICK)  # kept from the previous command
    assert driver.goals["neck_yaw"] == CONFIG.servo("neck_yaw").max  # clamped
    settle(driver)
    assert driver.limiter.position["neck_yaw"] == CONFIG.servo("neck_yaw").max
    with pytest.raises(ValueError, match="2 names but 1 positions"):
        driver.command(["jaw", "neck_yaw"], [0.1], stamp_ns=0, now_ns=0)
    bus_report = driver.diagnostics()[0]
    assert bus_report.level == OK and int(bus_report.values["writes"]) > 2  # the commands', then on the way
    assert bus_report.values["latency_samples"] == "2" and bus_report.values["rejected_commands"] == "1"
    assert bus_report.values["latency_p50_ms"] == "2.00" and bus_report.values["latency_p99_ms"] == "5.00"


def test_watchdog_sends_neutral_once_per_silence(driver):
    timeout_ns = 500 * MS
    driver.command(["jaw"], [0.3], stamp_ns=0, now_ns=0)
    settle(driver)
    assert driver.watchdog(timeout_ns) is None  # not yet past the timeout
    assert driver.watchdog(timeout_ns + 1)["jaw"] > 0.29  # gliding from 0.3 ...
    assert driver.watchdog(timeout_ns + 10 * MS) is None  # once
    assert driver.goals == NEUTRAL  # ... to neutral
    settle(driver)
    assert driver.limiter.position == NEUTRAL
    driver.command(["jaw"], [0.3], stamp_ns=0, now_ns=2 * timeout_ns)
    assert driver.watchdog(3 * timeout_ns + 1) is not None  # re-armed by the new command


def test_states_carry_position_velocity_effort(driver):
    driver.command(["jaw"], [0.4], stamp_ns=0, now_ns=0)
    states = driver.read_state()
    assert set(states) == set(NEUTRAL)
    assert all(math.isfinite(v) for s in states.values() for v in (s.position, s.velocity, s.effort))


@pytest.mark.parametrize("torque_off", [True, False])
def test_shutdown_leaves_neutral_and_the_configured_torque(link, torque_off):
    driver = make_driver(link, torque_off_on_shutdown=torque_off)
    driver.command(["jaw", "eyes_yaw"], [0.4, -0.4], stamp_ns=0, now_ns=0)
    assert driver.shutdown() == []
    assert not driver.bus.is_open
    for servo in CONFIG.servos:
        state = json.loads(send_command(link, f"state {servo.id}"))
        assert state["torque_enable"] == (0 if torque_off else 1), servo.joint
        assert abs(state["present_position"] - servo.to_tick(servo.neutral)) <= 2, servo.joint


def test_settings_are_validated():
    with pytest.raises(ValueError, match="hot_action must be one of reduce, neutral, none"):
        DriverSettings(hot_action="panic")
    with pytest.raises(ValueError, match="stale_after must be > 0"):
        DriverSettings(stale_after=0.0)
    assert {p.name for p in DriverSettings.parameters()} >= {"command_timeout", "max_reboots", "temperature_warn"}
    assert DriverSettings.from_parameters({"max_reboots": 1, "retries": 4}) == DriverSettings(max_reboots=1, retries=4)
    # the baud rate override is checked as the robot config's bus.baud_rate is (before: any number passed)
    with pytest.raises(ValueError, match=r"baud_rate: 100000 is not a Dynamixel baud rate \(one of 57600, "):
        DriverNodeSettings(baud_rate=100000)
    assert DriverNodeSettings(baud_rate=57600).baud_rate == 57600 and DriverNodeSettings().baud_rate == 0


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0 and percentile(values, 100) == 100.0
    assert math.isnan(percentile([], 50))


def test_hostile_commands_move_no_joint_faster_than_its_cap_and_the_watchdog_glides(link):
    """Full-range jumps of every joint every 0.6 s, as any publisher could send: the emulated servos
    (which move at up to their hardware limit, 4.8 rad/s for the XM430s, 10.7 for the XL330s) stay
    within each joint's cap; then, commands stopped, the watchdog glides to neutral at 0.8 rad/s."""
    driver = make_driver(link, neutral_velocity=0.8)
    samples, velocities = [], []  # (time, positions), {joint: present velocity}
    commanded, fired = [], []  # times of the commands, of the watchdog

    def loop(seconds: float, command=None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            now = time.monotonic()
            if command is not None:
                driver.command(list(command(now)), list(command(now).values()), 0, int(now * 1e9))
                commanded.append(now)
            elif driver.watchdog(int(now * 1e9)) is None:
                driver.follow()
            else:
                fired.append(now)
            asked = time.monotonic()
            states = driver.read_state()
            samples.append((asked, {j: s.position for j, s in states.items()}))
            velocities.append({j: s.velocity for j, s in states.items()})
            time.sleep(0.01)

    start = time.monotonic()
    loop(2.4, lambda now: {s.joint: (s.max if int((now - start) / 0.6) % 2 else s.min) for s in CONFIG.servos})
    hostile = len(samples)
    loop(3.0)
    driver.bus.close()
    assert len(fired) == 1 and 0.5 <= fired[0] - commanded[-1] <= 0.7  # command_timeout, plus a loop

    def max_speed(rows, joint):
        """Fastest motion over any 0.3 s or longer between two samples (rad/s)."""
        best = 0.0
        for i, (t0, p0) in enumerate(rows):
            later = next(((t, p) for t, p in rows[i + 1:] if t - t0 >= 0.3), None)
            if later and joint in p0 and joint in later[1]:
                best = max(best, abs(later[1][joint] - p0[joint]) / (later[0] - t0))
        return best

    measured = {j: max_speed(samples[:hostile], j) for j in NEUTRAL}
    reported = {j: max(abs(v.get(j, 0.0)) for v in velocities[:hostile]) for j in NEUTRAL}
    for joint, cap in CAPS.items():  # the servos' own present velocity; positions over time (the test's
        assert reported[joint] <= cap.velocity * 1.001, (joint, reported[joint], cap.velocity)  # reads are
        assert measured[joint] <= cap.velocity * 1.25, (joint, measured[joint], cap.velocity)  # late at times)
    assert reported["neck_yaw"] > 0.95 * CAPS["neck_yaw"].velocity  # it did move fast: the test can fail
    gliding = [i for i, (t, _) in enumerate(samples) if t > fired[0] + 0.3]  # after braking to the glide speed
    glide = {j: max_speed([samples[i] for i in gliding], j) for j in NEUTRAL}
    glide_reported = {j: max(abs(velocities[i].get(j, 0.0)) for i in gliding) for j in NEUTRAL}
    assert 0.5 < max(glide.values()) <= 0.8 * 1.25, glide  # (a servo catching up with its goal may be faster
    assert all(glide_reported[j] <= cap.velocity * 1.001 for j, cap in CAPS.items())  # for a moment, not past its cap)
    print("max speed (rad/s) positions / present velocity / cap:",
          {j: f"{measured[j]:.2f}/{reported[j]:.2f}/{CAPS[j].velocity:.2f}" for j in NEUTRAL},
          "glide:", {j: f"{v:.2f}/{glide_reported[j]:.2f}" for j, v in glide.items()})


@pytest.mark.parametrize("garbage", [([], []), (["jaw", "neck_yaw"], [math.nan, math.inf]), (["ghost"], [0.1])],
                         ids=["empty", "nan", "unknown"])
def test_garbage_commands_do_not_feed_the_watchdog(driver, garbage):
    """A stuck publisher sending empty messages, all-NaN positions or unknown names at 20 Hz: the
    watchdog still sends neutral command_timeout (0.5 s) after the last real command; each message is
    refused with a reason and counted."""
    driver.command(["jaw"], [0.3], stamp_ns=0, now_ns=0)
    fired_at = None
    for now_ns in range(50 * MS, 3000 * MS, 50 * MS):
        with pytest.raises(ValueError, match="not a command"):
            driver.command(*garbage, stamp_ns=now_ns, now_ns=now_ns)
        if driver.watchdog(now_ns + 1) is not None and fired_at is None:
            fired_at = now_ns
    assert fired_at == 500 * MS
    assert driver.goals == NEUTRAL
    assert driver.diagnostics()[0].values["rejected_commands"] == str(59)


def test_absurd_stamps_are_counted_not_kept_in_the_latency_window(driver):
    now = 1_800_000_000 * 1_000_000_000
    driver.command(["jaw"], [0.1], stamp_ns=now - 8 * MS, now_ns=now)
    driver.command(["jaw"], [0.1], stamp_ns=0, now_ns=now)  # a 1970 stamp
    driver.command(["jaw"], [0.1], stamp_ns=now + 500 * MS, now_ns=now)  # from the future
    values = driver.diagnostics()[0].values
    assert values["latency_p99_ms"] == "8.00" and values["latency_samples"] == "1"
    assert values["latency_rejected"] == "2"
