"""The driver on an in-process bus (EmulatorLink) on simulated time: fault tests that count
failures exactly, without a pty, a process or the machine's load in the result. The real byte
path (pty, emulator process) stays covered by test_driver_faults.py and test_bus.py."""
from __future__ import annotations

import json
from typing import Callable, Dict, Optional, Tuple

import pytest

from humimic_core import paths
from humimic_core.control_tables import RAD_PER_TICK
from humimic_core.robot_config import load_robot_config
from humimic_driver.bus import ServoBus
from humimic_driver.diagnostics import OK, STALE_LEVEL, WARN
from humimic_driver.driver_settings import DriverSettings
from humimic_driver.servo_driver import ServoDriver
from humimic_driver.sim.emulator_link import EmulatorLink, SimClock
from humimic_driver.sim.fault_injection import apply_fault
from humimic_driver.sim.servo_emulator import ServoEmulator, servos_from_config

CONFIG = load_robot_config(paths.config_file("robot_face.yaml"))
FAST = dict(reping_backoff_min=0.05, reping_backoff_max=0.4, reboot_backoff=0.1)
POSE = {s.joint: s.neutral + 0.3 * (s.max - s.neutral) for s in CONFIG.servos}


def start(seed: int = 1, **settings) -> Tuple[ServoDriver, ServoEmulator, SimClock]:
    clock = SimClock(100.0)
    emulator = ServoEmulator(servos_from_config(CONFIG.servos, CONFIG.bus.baud_rate), CONFIG.bus.baud_rate, seed=seed)
    link = EmulatorLink(emulator, clock, CONFIG.bus.baud_rate)
    bus = ServoBus(CONFIG.servos, CONFIG.bus, link=link, clock=clock, sleep=clock.sleep)
    driver = ServoDriver(bus, DriverSettings(**{**FAST, **settings}), now_ns=0, clock=clock)
    driver.start()
    return driver, emulator, clock


def run(driver: ServoDriver, clock: SimClock, seconds: float, until: Optional[Callable[[], bool]] = None,
        command: Optional[Dict[str, float]] = None) -> bool:
    """The node's loop on simulated time: command + state read every 10 ms, health every 100 ms."""
    deadline, next_health = clock() + seconds, 0.0
    while clock() < deadline:
        if command:
            driver.command(list(command), list(command.values()), 0, 0)
        driver.read_state(budget_s=0.005)
        if clock() >= next_health:
            driver.poll_health()
            next_health = clock() + 0.1
        if until is not None and until():
            return True
        clock.sleep(0.01)
    return until is None


def at(driver: ServoDriver, pose: Dict[str, float]) -> bool:
    return all(abs(driver.health[j].position - v) <= 2 * RAD_PER_TICK for j, v in pose.items())


def failures(fault: str, seed: int = 1) -> Tuple[int, int, bool]:
    driver, emulator, clock = start(seed)
    apply_fault(fault, emulator, clock())
    arrived = run(driver, clock, 10.0, until=lambda: at(driver, POSE), command=POSE)
    run(driver, clock, 0.6, command=POSE)
    healths = driver.health.values()
    assert all(h.mode == "active" for h in healths)  # retries within the cycle: nobody went stale
    reports = driver.diagnostics()
    assert any(r.level == WARN and "comm error rate" in r.message for r in reports[1:])
    return sum(h.failures for h in healths), sum(h.crc_errors for h in healths), arrived and at(driver, POSE)


@pytest.mark.parametrize("fault", ["crc 0.05", "drop 0.08"])
def test_corrupt_and_lost_replies_are_retried_counted_and_survived_in_simulated_time(fault):
    """The same run twice gives the same counts (no wall clock in it), and the pose is reached."""
    first = failures(fault)
    assert first == failures(fault)
    count, crc_errors, arrived = first
    assert arrived and count > 20
    assert crc_errors > 10 if fault.startswith("crc") else crc_errors == 0  # lost replies are timeouts


def report(driver: ServoDriver, joint: str):
    return next(r for r in driver.diagnostics() if r.name.startswith(f"dynamixel_driver: {joint} "))


def test_dead_servo_goes_stale_others_keep_moving_it_is_repinged_and_restored():
    driver, emulator, clock = start()
    dead = driver.health["brow_inner_left"]
    apply_fault(f"dead {dead.servo.id}", emulator, clock())
    assert run(driver, clock, 5.0, until=lambda: dead.mode == "stale", command=POSE)
    others = {j: v for j, v in POSE.items() if j != dead.servo.joint}
    assert run(driver, clock, 10.0, until=lambda: at(driver, others), command=POSE)  # the others keep being driven
    assert dead.servo.joint not in driver.read_state()
    assert run(driver, clock, 3.0, until=lambda: dead.retry.delay >= 0.4)  # re-pinged with a growing backoff
    status = report(driver, dead.servo.joint)
    assert status.level == STALE_LEVEL and "no answer" in status.message
    assert driver.diagnostics()[0].level == WARN  # the bus as a whole: up, one servo missing

    apply_fault(f"revive {dead.servo.id}", emulator, clock())  # power back: it boots with torque off
    assert run(driver, clock, 5.0, until=lambda: dead.mode == "active", command=POSE)
    assert run(driver, clock, 10.0, until=lambda: at(driver, POSE), command=POSE)
    state = json.loads(apply_fault(f"state {dead.servo.id}", emulator, clock()))
    low, high = dead.servo.tick_limits()
    assert state["torque_enable"] == 1 and state["goal_position"] == dead.servo.to_tick(POSE[dead.servo.joint])
    assert (state["min_position_limit"], state["max_position_limit"], state["return_delay_time"]) == (low, high, 0)
    status = report(driver, dead.servo.joint)
    # simulated time: the count of failed transactions is the same on every machine
    assert status.level == OK and status.values["mode"] == "active" and int(status.values["failed"]) >= 5
