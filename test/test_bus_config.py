"""The bus and servo-motion parts of the robot config: defaults, validation naming the field."""
from __future__ import annotations

import copy

import pytest
import yaml

from humimic_core.paths import config_file
from humimic_core.robot_config import BusConfig, ConfigError, parse_robot_config
from humimic_retarget.retargeter import Retargeter, RetargetParams


@pytest.fixture()
def raw():
    return yaml.safe_load(config_file("robot_face.yaml").read_text())


def test_bus_section_and_servo_motion_fields_load(raw):
    data = copy.deepcopy(raw)
    data["bus"] = {"port": "/dev/ttyUSB3", "baud_rate": 4000000, "latency_timer_ms": 16}
    data["servos"][0].update(profile_velocity=2.0, profile_acceleration=30.0, return_delay_us=20)
    config = parse_robot_config(data)
    assert config.bus == BusConfig("/dev/ttyUSB3", 4000000, 16.0)
    servo = config.servos[0]
    assert (servo.profile_velocity, servo.profile_acceleration, servo.return_delay_us) == (2.0, 30.0, 20)
    assert config.servos[1].return_delay_us == 0  # default: answer at once


def test_missing_bus_section_means_the_defaults(raw):
    data = copy.deepcopy(raw)
    del data["bus"]
    assert parse_robot_config(data).bus == BusConfig()


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["bus"].update(baud_rate=250000), r"bus.baud_rate: 250000 is not a Dynamixel baud rate"),
    (lambda d: d["bus"].update(baud_rate=[1]), r"bus.baud_rate: \[1\] is not a Dynamixel baud rate"),
    (lambda d: d["bus"].update(baud_rate=9600), r"bus.baud_rate: 9600"),  # below the supported 57600
    (lambda d: d["bus"].update(port=""), r"bus.port: expected a serial port path"),
    (lambda d: d["bus"].update(latency_timer_ms=-1), r"bus.latency_timer_ms: -1.0 is outside 0..255"),
    (lambda d: d["bus"].update(parity="odd"), r"bus.parity: unknown key"),
    (lambda d: d.update(bus="fast"), r"bus: expected a mapping"),
    (lambda d: d["servos"][3].update(profile_velocity=50.0), r"servos\[3\].profile_velocity: 50.0 rad/s is outside "
                                                            r"0..10.671 \(the XL330-M288 velocity limit"),
    (lambda d: d["servos"][3].update(profile_velocity=-1.0), r"servos\[3\].profile_velocity"),
    (lambda d: d["servos"][0].update(profile_acceleration=1e6), r"servos\[0\].profile_acceleration"),
    (lambda d: d["servos"][0].update(return_delay_us=3), r"servos\[0\].return_delay_us: expected an even integer"),
    (lambda d: d["servos"][0].update(return_delay_us=600), r"servos\[0\].return_delay_us: expected an even integer "
                                                           r"0..508, got 600"),
    (lambda d: d["servos"][0].update(return_delay_us=True), r"servos\[0\].return_delay_us"),
])
def test_bad_bus_and_motion_fields_name_the_field(raw, edit, message):
    data = copy.deepcopy(raw)
    edit(data)
    with pytest.raises(ConfigError, match=message):
        parse_robot_config(data)


def test_motion_caps_take_the_constraints_entry_else_the_default_never_above_the_model(raw):
    data = copy.deepcopy(raw)
    data["constraints"]["velocity"] = {"upper_lid_left": 10.0, "neck_yaw": 9.0, "jaw": 2.5}
    data["constraints"]["acceleration"] = {"upper_lid_left": 200.0}
    caps = parse_robot_config(data).motion_caps(3.0, 40.0)
    assert caps["upper_lid_left"] == (10.0, 200.0)  # above the defaults: a fast eyelid
    assert caps["jaw"] == (2.5, 40.0) and caps["brow_inner_left"] == (3.0, 40.0)
    assert caps["neck_yaw"].velocity == pytest.approx(200 * 0.229 * 2 * 3.141592653589793 / 60)  # XM430: 4.8 rad/s


def test_motion_caps_keep_the_acceleration_the_model_can_do(raw):
    """A PH42's Profile Acceleration reaches 10,765 rev/min^2 (18.8 rad/s^2): the driver's setpoints keep to
    that, not to the 40 rad/s^2 default the servo's own profile cannot follow (before: 40)."""
    data = copy.deepcopy(raw)
    data["servos"][0].update(model="PH42-020-S300-R", zero_tick=0)
    joint = data["servos"][0]["joint"]
    data["constraints"]["acceleration"] = {joint: 100.0}
    config = parse_robot_config(data)
    caps = config.motion_caps(3.0, 40.0)
    assert caps[joint].acceleration == pytest.approx(10765 * 2 * 3.141592653589793 / 3600)
    limits = Retargeter(config, RetargetParams(max_velocity=3.0, max_acceleration=40.0)).limits  # the same rule
    assert {j: (v, a) for j, v, a in zip(limits.joints, limits.vmax, limits.amax)} == caps
