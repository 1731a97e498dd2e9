"""humimic-scan against the emulated bus on a pty, and the driver's start-up when no servo answers."""
from __future__ import annotations

import dataclasses
import time

import pytest

from humimic_core import paths
from humimic_core.robot_config import load_robot_config
from humimic_driver.bus import BusError, ServoBus
from humimic_driver.driver_settings import DriverSettings
from humimic_driver.sim.emulated_bus import emulator_process
from humimic_driver.scan import id_ranges, main, parse_ids
from humimic_driver.servo_driver import ServoDriver

pytestmark = pytest.mark.timeout(60)

CONFIG = load_robot_config(paths.config_file("robot_face.yaml"))


@pytest.fixture
def slow_link(tmp_path):
    """The robot's servos at 57600 baud, while its config says 1 Mbps."""
    path = tmp_path / "servo_bus"
    with emulator_process(path, args=["--baud", "57600"]):
        yield str(path)


def test_driver_names_what_it_tried_and_suggests_a_scan_when_no_servo_answers(slow_link):
    bus = ServoBus(CONFIG.servos, dataclasses.replace(CONFIG.bus, port=slow_link))
    driver = ServoDriver(bus, DriverSettings(), now_ns=0)
    began = time.monotonic()
    with pytest.raises(BusError) as caught:
        driver.start()
    message = str(caught.value)
    assert message.startswith(f"no servo answers on {slow_link} at 1000000 baud (pinged IDs 1..16, 3 tries each)")
    assert f"`humimic-scan --port {slow_link}` pings every ID at every baud rate" in message
    assert time.monotonic() - began < 5.0  # one round of pings, not every servo's start-up attempts
    assert not bus.is_open


def test_scan_finds_every_servo_at_its_baud_rate(slow_link, capsys):
    assert main(["--port", slow_link, "--baud", "1000000", "57600", "--ids", "1-20"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"ID {s.id}: {s.spec.name} ({s.spec.model_number}) at 57600 baud"
                                for s in CONFIG.servos]
    assert "1000000 baud: pinging IDs 1..20" in err and "57600 baud: pinging IDs 1..20" in err
    assert main(["--port", slow_link, "--baud", "1000000", "--ids", "1-3"]) == 1
    assert "no servo answered" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [(["--ids", "300"], "IDs are 0..252"), (["--ids", "a-b"], "expected IDs"),
                                           (["--baud", "250000"], "not a Dynamixel baud rate")])
def test_scan_refuses_bad_arguments(argv, message, capsys):
    assert main(["--port", "/nonexistent", *argv]) == 2
    assert message in capsys.readouterr().err


def test_id_ranges_and_parsing():
    assert id_ranges([5, 1, 2, 3, 7, 8]) == "1..3, 5, 7..8"
    assert parse_ids("1-3,7") == [1, 2, 3, 7]
