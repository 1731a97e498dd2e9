"""The state timer's part of the driver's loop, for tests that drive a ServoDriver themselves."""
from __future__ import annotations

import time

from humimic_driver.servo_driver import ServoDriver


def settle(driver: ServoDriver, seconds: float = 5.0) -> None:
    """follow() every 20 ms until every setpoint is at its goal."""
    deadline = time.monotonic() + seconds
    while driver.follow() is not None:
        assert time.monotonic() < deadline, "setpoints did not reach their goals"
        time.sleep(0.02)
