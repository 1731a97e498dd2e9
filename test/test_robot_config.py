"""Robot config validation, tick conversions and the generated URDF."""
from __future__ import annotations

import copy
import math
import xml.etree.ElementTree as ET

import pytest
import yaml

from humimic_core.paths import config_file
from humimic_core.robot_config import ConfigError, load_robot_config, parse_robot_config
from humimic_core.urdf import default_urdf_path, robot_urdf
from humimic_driver.control_tables import RAD_PER_TICK


@pytest.fixture()
def raw():
    return yaml.safe_load(config_file("robot_face.yaml").read_text())


def test_default_config_loads(raw):
    config = load_robot_config(config_file("robot_face.yaml"))
    assert 12 <= len(config.servos) <= 20
    assert len({s.id for s in config.servos}) == len(config.servos)
    assert {"jaw", "neck_yaw", "eyes_yaw", "upper_lid_left"} <= set(config.joint_names)


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["servos"][1].update(id=d["servos"][0]["id"]), "servos[1].id"),
    (lambda d: d["servos"][2].update(model="XL999"), "servos[2].model"),
    (lambda d: d["servos"][0].update(min=0.5, max=0.1), "servos[0].max"),
    (lambda d: d["servos"][0].update(neutral=2.0), "servos[0].neutral"),
    (lambda d: d["servos"][0].update(max=float("nan")), "servos[0].max"),
    (lambda d: d["servos"][0].update(max=3.5), "servos[0].min/max"),
    (lambda d: d["servos"][3].pop("joint"), "servos[3].joint"),
    (lambda d: d["servos"][3].update(direction=2), "servos[3].direction"),
    (lambda d: d["servos"][3].update(speed=2), "servos[3].speed"),
    (lambda d: d["mapping"].update(nose={"weights": {"AU01": 1.0}}), "mapping.nose"),
    (lambda d: d["mapping"]["jaw"]["weights"].update(AU26="lots"), "mapping.jaw.weights.AU26"),
    (lambda d: d["servos"][0].update(parent="nowhere"), "servos[0].parent"),
])
def test_bad_config_names_the_field(raw, edit, field):
    data = copy.deepcopy(raw)
    edit(data)
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_robot_config(data)


def test_unreadable_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read robot config"):
        load_robot_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("servos: [ {joint: a, id: 1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_robot_config(broken)


def test_tick_conversion_round_trip_and_clamp():
    config = load_robot_config(config_file("robot_face.yaml"))
    for servo in config.servos:
        for angle in (servo.min, servo.neutral, servo.max, 0.5 * (servo.min + servo.max)):
            assert abs(servo.from_tick(servo.to_tick(angle)) - angle) <= RAD_PER_TICK / 2 + 1e-12
        low, high = servo.tick_limits()
        for wild in (-100.0, 100.0, math.inf, -math.inf, math.nan):
            assert low <= servo.to_tick(wild) <= high
        assert servo.to_tick(math.nan) == servo.to_tick(servo.neutral)
    right = config.servo("brow_inner_right")
    assert right.direction == -1 and right.to_tick(0.2) < right.zero_tick


def test_urdf_joints_are_the_config_joints():
    config = load_robot_config(config_file("robot_face.yaml"))
    root = ET.fromstring(robot_urdf(config))
    joints = {j.get("name"): j for j in root.iter("joint") if j.get("type") == "revolute"}
    assert set(joints) == set(config.joint_names)
    for servo in config.servos:
        limit = joints[servo.joint].find("limit")
        assert float(limit.get("lower")) == pytest.approx(servo.min)
        assert float(limit.get("upper")) == pytest.approx(servo.max)
    links = {link.get("name") for link in root.iter("link")}
    for joint in root.iter("joint"):
        assert joint.find("parent").get("link") in links and joint.find("child").get("link") in links


def test_committed_urdf_is_generated_from_the_config():
    generated = robot_urdf(load_robot_config(config_file("robot_face.yaml")))
    assert default_urdf_path().read_text() == generated, "urdf/ is stale: run `python -m humimic_core.urdf`"
