"""ServoDriver (the driver node's logic, no ROS) on a ServoBus against the emulated bus."""
from __future__ import annotations

import math

import pytest

from humimic_core import paths
from humimic_core.robot_config import load_robot_config
from humimic_driver.bus import ServoBus
from humimic_driver.control_tables import RAD_PER_TICK
from humimic_driver.emulated_bus import emulator_process
from humimic_driver.servo_driver import ServoDriver, percentile

pytestmark = pytest.mark.timeout(60)

CONFIG = load_robot_config(paths.config_file("robot_face.yaml"))
NEUTRAL = {s.joint: s.neutral for s in CONFIG.servos}
MS = 1_000_000
TIMEOUT_NS = 500 * MS


def make_driver(link: str) -> ServoDriver:
    bus = ServoBus(CONFIG.servos)
    bus.open(link, 1000000)
    bus.start()
    return ServoDriver(bus, TIMEOUT_NS, now_ns=0)


@pytest.fixture
def driver(tmp_path):
    link = tmp_path / "servo_bus"
    with emulator_process(link):
        driver = make_driver(str(link))
        yield driver
        driver.bus.close()


def test_partial_commands_merge_into_goals(driver):
    written = driver.command(["jaw", "ghost", "neck_yaw"], [0.2, 1.0, math.nan], stamp_ns=0, now_ns=5 * MS)
    assert written is not None and written.unknown == ["ghost"]
    assert written.goals == pytest.approx({**NEUTRAL, "jaw": 0.2}, abs=RAD_PER_TICK)
    written = driver.command(["neck_yaw"], [9.0], stamp_ns=10 * MS, now_ns=12 * MS)
    assert written.goals["jaw"] == pytest.approx(0.2, abs=RAD_PER_TICK)  # kept from the previous command
    assert written.goals["neck_yaw"] == pytest.approx(CONFIG.servo("neck_yaw").max, abs=RAD_PER_TICK)
    with pytest.raises(ValueError, match="2 names but 1 positions"):
        driver.command(["jaw", "neck_yaw"], [0.1], stamp_ns=0, now_ns=0)
    health = driver.health()
    assert health.ok and health.values["writes"] == "2"
    assert health.values["latency_p50_ms"] == "2.00" and health.values["latency_p99_ms"] == "5.00"


def test_watchdog_writes_neutral_once_per_silence(driver):
    driver.command(["jaw"], [0.3], stamp_ns=0, now_ns=0)
    assert driver.watchdog(TIMEOUT_NS) is None  # not yet past the timeout
    assert driver.watchdog(TIMEOUT_NS + 1) == pytest.approx(NEUTRAL, abs=RAD_PER_TICK)
    assert driver.watchdog(TIMEOUT_NS + 10 * MS) is None  # once
    assert driver.goals == pytest.approx(NEUTRAL, abs=RAD_PER_TICK)
    driver.command(["jaw"], [0.3], stamp_ns=0, now_ns=2 * TIMEOUT_NS)
    assert driver.watchdog(3 * TIMEOUT_NS + 1) is not None  # re-armed by the new command


def test_comm_errors_are_counted_not_raised(tmp_path):
    link = tmp_path / "servo_bus"
    with emulator_process(link):
        driver = make_driver(str(link))
    # The bus is gone: every operation fails, none raises.
    assert driver.command(["jaw"], [0.3], stamp_ns=0, now_ns=0) is None
    assert driver.read_state() is None
    assert driver.watchdog(10 * TIMEOUT_NS) is None
    health = driver.health()
    assert not health.ok and health.values["comm_errors"] == "3"
    assert str(link) in health.message
    problems = driver.shutdown(torque_off=True)
    assert any("move to neutral failed" in p for p in problems) and any("torque off failed" in p for p in problems)


def test_shutdown_reaches_neutral_then_torque_off(driver):
    driver.command(["jaw", "eyes_yaw"], [0.4, -0.4], stamp_ns=0, now_ns=0)
    assert driver.shutdown(torque_off=True) == []


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0 and percentile(values, 100) == 100.0
    assert math.isnan(percentile([], 50))
