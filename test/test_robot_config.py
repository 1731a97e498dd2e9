"""Robot config validation, tick conversions and the generated URDF."""
from __future__ import annotations

import copy
import math
import xml.etree.ElementTree as ET

import pytest
import yaml

from humimic_core.paths import config_file
from humimic_core.robot_config import ConfigError, load_robot_config, parse_robot_config
from humimic_bringup.urdf import default_urdf_path, robot_urdf
from humimic_core.control_tables import RAD_PER_TICK


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


@pytest.mark.parametrize("edit, line", [
    (lambda d: d.update(constraint=d.pop("constraints")),
     "constraint: unknown key (did you mean constraints?; known: bus, constraints, fixed_links, mapping, robot, "
     "servos)"),
    (lambda d: d["robot"].update(base=1), "robot.base: unknown key (did you mean base_link?; known: base_link, name)"),
    (lambda d: d["bus"].update(baud=57600), "bus.baud: unknown key (did you mean baud_rate?; "),
    (lambda d: d["servos"][2].update(neutrl=0.0), "servos[2].neutrl: unknown key (did you mean neutral?; "),
    (lambda d: d["fixed_links"][1].update(xzy=[0, 0, 0]), "fixed_links[1].xzy: unknown key (did you mean xyz?; "),
    (lambda d: d["mapping"].update(mirrror=True), "mapping.mirrror: unknown key (did you mean mirror?; "),
    (lambda d: d["mapping"].update(jaws={"weights": {}}), "mapping.jaws: unknown key (did you mean jaw?; "),
    (lambda d: d["mapping"]["curves"]["AU45_L"].update(deadbnd=0.1),
     "mapping.curves.AU45_L.deadbnd: unknown key (did you mean deadband?; known: deadband, gain, points)"),
    (lambda d: d["mapping"]["jaw"].update(weight={"AU26": 1.0}),
     "mapping.jaw.weight: unknown key (did you mean weights?; known: offset, weights)"),
    (lambda d: d["constraints"].update(velocities={}),
     "constraints.velocities: unknown key (did you mean velocity?; known: acceleration, couplings, smoothing, velocity)"),
    (lambda d: d["constraints"]["couplings"][0].update(maximum=1.0),
     "constraints.couplings[0].maximum: unknown key (did you mean max?; known: max, min, name, terms)"),
])
def test_unknown_key_at_every_level_is_one_line_naming_its_path(raw, edit, line):
    data = copy.deepcopy(raw)
    edit(data)
    with pytest.raises(ConfigError) as err:
        parse_robot_config(data)
    assert str(err.value).startswith(line) and "\n" not in str(err.value)


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
    # the velocity the driver lets each joint reach: its own cap, not one figure for every joint
    velocity = {j: float(joints[j].find("limit").get("velocity")) for j in joints}
    assert velocity["upper_lid_left"] == velocity["eyes_yaw"] == 36.0 and velocity["neck_pitch"] == 1.5
    assert velocity["jaw"] == 4.5
    links = {link.get("name") for link in root.iter("link")}
    for joint in root.iter("joint"):
        assert joint.find("parent").get("link") in links and joint.find("child").get("link") in links


def test_committed_urdf_is_generated_from_the_config():
    generated = robot_urdf(load_robot_config(config_file("robot_face.yaml")))
    assert default_urdf_path().read_text() == generated, "urdf/ is stale: run `python -m humimic_bringup.urdf`"
