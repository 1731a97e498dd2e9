"""Faults injected into the emulated bus while the real driver logic (ServoDriver on ServoBus over a
pty, the real byte path) runs its loop: hardware errors with reboots, the port vanishing, a hot servo.
CRC errors, dropped replies and a dead servo run in-process on simulated time
(test_driver_in_process.py)."""
from __future__ import annotations

import dataclasses
import json
import time
from typing import Callable, Dict, Optional

import pytest

from humimic_core import paths
from humimic_core.robot_config import load_robot_config
from humimic_driver.bus import ServoBus
from humimic_core.control_tables import RAD_PER_TICK
from humimic_driver.diagnostics import ERROR, OK, WARN
from humimic_driver.sim.emulated_bus import emulator_process, send_command
from humimic_driver.driver_settings import DriverSettings
from humimic_driver.servo_driver import ServoDriver
from servo_loop import settle

pytestmark = pytest.mark.timeout(60)

CONFIG = load_robot_config(paths.config_file("robot_face.yaml"))
#: Quick retries so that recoveries happen within a test's seconds; patient reply deadlines, because
#: here the servos (the emulator) share the loaded test machine, unlike real ones.
FAST = dict(reping_backoff_min=0.05, reping_backoff_max=0.4, reopen_backoff_min=0.05, reopen_backoff_max=0.3,
            reboot_backoff=0.1, reply_timeout_margin_ms=30.0)
POSE = {s.joint: s.neutral + 0.3 * (s.max - s.neutral) for s in CONFIG.servos}


@pytest.fixture
def link(tmp_path):
    path = tmp_path / "servo_bus"
    with emulator_process(path, args=["--seed", "1"]):
        yield str(path)


def start(link: str, **settings) -> ServoDriver:
    bus = ServoBus(CONFIG.servos, dataclasses.replace(CONFIG.bus, port=link))
    driver = ServoDriver(bus, DriverSettings(**{**FAST, **settings}), now_ns=0)
    driver.start()
    return driver


def run(driver: ServoDriver, seconds: float, until: Optional[Callable[[], bool]] = None,
        command: Optional[Dict[str, float]] = None) -> bool:
    """The node's loop, quicker: command + state read every 10 ms, health every 100 ms, until
    ``until()`` holds (True) or ``seconds`` pass (False)."""
    deadline, next_health = time.monotonic() + seconds, 0.0
    while time.monotonic() < deadline:
        if command:
            driver.command(list(command), list(command.values()), 0, 0)
        driver.read_state(budget_s=0.005)
        if time.monotonic() >= next_health:
            driver.poll_health()
            next_health = time.monotonic() + 0.1
        if until is not None and until():
            return True
        time.sleep(0.01)
    return until is None


def at(driver: ServoDriver, pose: Dict[str, float]) -> bool:
    return all(abs(driver.health[j].position - v) <= 2 * RAD_PER_TICK for j, v in pose.items())


def report(driver: ServoDriver, joint: str):
    return next(r for r in driver.diagnostics() if r.name.startswith(f"dynamixel_driver: {joint} "))


def emulated(link: str, servo_id: int) -> dict:
    return json.loads(send_command(link, f"state {servo_id}"))


def test_hardware_error_is_reported_then_rebooted_and_torque_and_position_restored(link):
    driver = start(link)
    jaw = driver.health["jaw"]
    assert run(driver, 10.0, until=lambda: at(driver, POSE), command=POSE)
    send_command(link, f"overload {jaw.servo.id}")
    assert run(driver, 2.0, until=lambda: jaw.mode == "fault", command=POSE)
    status = report(driver, "jaw")
    assert status.level == ERROR and "hardware error: overload" in status.message
    assert status.values["hardware_error"] == "overload" and status.values["hardware_error_status"] == "0x20"
    assert emulated(link, jaw.servo.id)["torque_enable"] == 0  # the servo dropped torque itself

    assert run(driver, 5.0, until=lambda: jaw.mode == "active", command=POSE)  # rebooted, restored
    assert jaw.reboots == 1 and any("jaw (ID 14): rebooted (1 of 3)" in m for _, m in driver.events)
    state = emulated(link, jaw.servo.id)
    assert state["torque_enable"] == 1 and state["hardware_error_status"] == 0
    assert state["goal_position"] == jaw.servo.to_tick(POSE["jaw"])
    assert run(driver, 10.0, until=lambda: at(driver, POSE), command=POSE)
    assert report(driver, "jaw").level == OK
    driver.bus.close()


def test_overheated_servo_is_rebooted_only_once_it_has_cooled_down(link):
    """The servo switches its torque off at its temperature limit and stays hot for a while: no reboot
    is wasted on it meanwhile (they used to run out in seconds, leaving it limp once cool), the
    diagnostics and the log say it waits to cool; cooled below cool_down_temperature, it is
    rebooted once and driven again."""
    driver = start(link, max_reboots=2, reboot_backoff=0.05, cool_down_temperature=60.0)
    jaw = driver.health["jaw"]
    assert run(driver, 10.0, until=lambda: at(driver, POSE), command=POSE)
    send_command(link, f"overheat {jaw.servo.id} 0.4")  # XM430 limit 80 C: 81 C after 0.4 s, and stays there
    assert run(driver, 3.0, until=lambda: jaw.mode == "fault", command=POSE)
    faulted = time.monotonic()
    run(driver, 2.0, command=POSE)
    assert jaw.mode == "fault" and jaw.reboots == 0 and jaw.temperature >= 80
    status = report(driver, "jaw")
    assert status.level == ERROR and "overheating" in status.message
    assert "torque off by the servo, waiting to cool below 60 C before reboot 1 of 2" in status.message
    messages = [m for _, m in driver.events]
    assert any("hardware error overheating; torque off by the servo; reboot 1 of 2 once it has cooled below 60 C"
               in m for m in messages), messages
    assert not any("full motion" in m for m in messages)  # it is not moving at all
    send_command(link, f"temperature {jaw.servo.id} 62")  # cooler, not cool enough
    run(driver, 1.0, command=POSE)
    assert jaw.mode == "fault" and jaw.reboots == 0
    send_command(link, f"temperature {jaw.servo.id} 45")
    cooled = time.monotonic()
    assert run(driver, 5.0, until=lambda: jaw.mode == "active" and at(driver, POSE), command=POSE)
    resumed = time.monotonic()
    assert jaw.reboots == 1 and emulated(link, jaw.servo.id)["torque_enable"] == 1
    assert any("jaw cooled to 45 C: not driven (fault)" in m for _, m in driver.events)
    assert all(h.mode == "active" for h in driver.health.values())
    print(f"overheat: held hot {cooled - faulted:.1f} s after the fault with 0 reboots, "
          f"driven again {resumed - cooled:.2f} s after cooling")
    driver.bus.close()


def test_port_vanishing_is_survived_and_the_bus_reopened(link):
    driver = start(link)
    assert run(driver, 10.0, until=lambda: at(driver, POSE), command=POSE)
    send_command(link, "unplug 0.6")
    assert run(driver, 2.0, until=lambda: not driver.connected, command=POSE)
    assert driver.command(["jaw"], [0.1], 0, 0) is None and driver.read_state() is None
    bus = driver.diagnostics()[0]
    assert bus.level == ERROR and "port lost" in bus.message
    assert run(driver, 5.0, until=lambda: driver.connected and all(h.mode == "active" for h in driver.health.values()),
               command=POSE)
    assert driver.disconnects == 1
    messages = [m for _, m in driver.events]
    assert any("reopened" in m for m in messages) and any("torque still on: resumed" in m for m in messages)
    neutral = {s.joint: s.neutral for s in CONFIG.servos}
    assert run(driver, 10.0, until=lambda: at(driver, neutral), command=neutral)  # driven again
    assert driver.diagnostics()[0].level == OK
    driver.bus.close()


@pytest.mark.parametrize("action, expected", [("reduce", 0.2), ("neutral", 0.0)])
def test_hot_servo_reduces_motion_or_goes_neutral(link, action, expected):
    driver = start(link, hot_action=action, temperature_warn=55.0)
    lip = driver.health["lip_corner_left"]
    send_command(link, f"temperature {lip.servo.id} 58")
    driver.poll_health()
    assert lip.hot
    status = report(driver, "lip_corner_left")
    assert status.level == WARN and "temperature 58 C >= 55" in status.message
    driver.command(["lip_corner_left"], [0.4], 0, 0)
    assert driver.target("lip_corner_left") == pytest.approx(expected)
    settle(driver)  # the setpoint goes there within the caps
    assert emulated(link, lip.servo.id)["goal_position"] == lip.servo.to_tick(expected)
    send_command(link, f"temperature {lip.servo.id} 52")  # 2 C of hysteresis below 55
    driver.poll_health()
    assert not lip.hot
    driver.command(["lip_corner_left"], [0.4], 0, 0)
    settle(driver)
    assert emulated(link, lip.servo.id)["goal_position"] == lip.servo.to_tick(0.4)
    driver.bus.close()


def test_low_input_voltage_warns(link):
    driver = start(link)
    send_command(link, "voltage 15 3.7")  # XL330: limits 3.5..7.0 V
    driver.poll_health()
    status = report(driver, "lip_corner_left")
    assert status.level == WARN and "input voltage 3.7 V near or outside 3.5..7.0 V" in status.message
    assert status.values["voltage_v"] == "3.7"
    driver.bus.close()
