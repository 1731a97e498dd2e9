"""The mapping and constraints sections of the robot config, channels, mirror image, response curves."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import yaml

from humimic_core.paths import config_file
from humimic_core.robot_config import ConfigError, load_robot_config, parse_robot_config
from humimic_perception import action_units
from humimic_core.channels import CODES, PUBLISHED, channel_range, is_channel, mirrored
from humimic_core.response_curve import Curve


@pytest.fixture()
def raw():
    return yaml.safe_load(config_file("robot_face.yaml").read_text())


def test_shipped_config_uses_every_mapping_feature():
    config = load_robot_config(config_file("robot_face.yaml"))
    assert config.mapping.mirror is True
    assert config.mapping["eyes_yaw"].weights == {"gaze_yaw": 0.7}
    assert config.mapping["neck_yaw"].weights == {"head_yaw": 1.0}
    assert config.mapping.curve("AU45_L").points and config.mapping.curve("AU12_L") == Curve()
    assert config.mapping.curve("AU01") == Curve()
    assert {c.name for c in config.constraints.couplings} >= {"left lids never cross", "right lids never cross"}
    assert config.constraints.velocity["neck_yaw"] < 3.0
    assert "gaze_pitch" in config.channels and "AU26" in config.channels


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["mapping"]["jaw"]["weights"].update(AU2=1.0), "mapping.jaw.weights.AU2"),
    (lambda d: d["mapping"]["jaw"]["weights"].update(nose_wiggle=1.0), "mapping.jaw.weights.nose_wiggle"),
    (lambda d: d["mapping"]["jaw"].update(gain=2.0), "mapping.jaw.gain"),
    (lambda d: d["mapping"].update(mirror="yes"), "mapping.mirror"),
    (lambda d: d["mapping"]["curves"].update(AU12={"deadband": -1}), "mapping.curves.AU12.deadband"),
    (lambda d: d["mapping"]["curves"].update(AU12={"points": [[0, 0], [0, 1]]}), r"mapping.curves.AU12.points\[1\]"),
    (lambda d: d["mapping"]["curves"].update(AU12={"points": [[0, 0]]}), "mapping.curves.AU12.points"),
    (lambda d: d["mapping"]["curves"].update(AU12={"gain": math.inf}), "mapping.curves.AU12.gain"),
    (lambda d: d["mapping"]["curves"].update(head_tilt={}), "mapping.curves.head_tilt"),
    (lambda d: d["mapping"].update(model={"path": ""}), "mapping.model.path"),
    (lambda d: d["constraints"]["velocity"].update(jaw=0.0), "constraints.velocity.jaw"),
    (lambda d: d["constraints"]["acceleration"].update(nose=1.0), "constraints.acceleration.nose"),
    (lambda d: d["constraints"].update(jerk={}), "constraints.jerk"),
    (lambda d: d["constraints"]["couplings"].append({"terms": {"jaw": 1.0}}), r"constraints.couplings\[4\]"),
    (lambda d: d["constraints"]["couplings"].append({"terms": {"nose": 1.0}, "max": 1}),
     r"constraints.couplings\[4\].terms.nose"),
    (lambda d: d["constraints"]["couplings"].append({"terms": {"jaw": 1.0}, "min": 0.2}),
     r"constraints.couplings\[4\]: the neutral pose violates it"),
    (lambda d: d["constraints"]["couplings"].append({"terms": {"jaw": 1.0}, "min": 0.2, "max": 0.1}),
     r"constraints.couplings\[4\].max"),
])
def test_bad_mapping_or_constraint_names_the_field(raw, edit, field):
    data = copy.deepcopy(raw)
    edit(data)
    with pytest.raises(ConfigError, match=field):
        parse_robot_config(data)


def test_model_path_is_relative_to_the_config_file(raw, tmp_path):
    raw["mapping"]["model"] = {"path": "models/face.onnx"}
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_robot_config(path).mapping.model == tmp_path / "models" / "face.onnx"


def test_sections_are_optional(raw):
    raw.pop("constraints")
    raw["mapping"] = {"jaw": {"weights": {"AU26": 0.1}}}
    config = parse_robot_config(raw)
    assert config.mapping.mirror is False and not config.constraints.couplings and config.mapping.curves == {}


def test_channel_vocabulary_and_mirror_image():
    assert all(is_channel(c) for c in ("AU01", "AU45", "AU45_L", "AU45_R", "head_roll", "gaze_pitch"))
    # names perception never publishes: AU62 has the AU shape, AU14_L is a side perception does not measure
    assert not any(is_channel(c) for c in ("AU1", "AU62", "AU14_L", "AU12_X", "au12", "head_tilt", "gaze"))
    assert len(CODES) == 17 and list(CODES) == sorted(CODES) and set(CODES) < set(PUBLISHED)
    assert list(action_units.CODES) == list(CODES)  # perception publishes the owner's vocabulary
    assert channel_range("AU45_L") == (0.0, 5.0) and channel_range("head_yaw") is None
    person = {"AU45_L": 4.0, "AU26": 2.0, "head_yaw": 0.3, "head_pitch": 0.1, "head_roll": -0.2, "gaze_yaw": 0.1}
    image = mirrored(person)
    assert image == {"AU45_R": 4.0, "AU26": 2.0, "head_yaw": -0.3, "head_pitch": 0.1, "head_roll": 0.2,
                     "gaze_yaw": -0.1}
    assert mirrored(image) == person


@pytest.mark.parametrize("edit, line", [
    (lambda d: d["mapping"]["jaw"]["weights"].update(AU62=0.1),
     "mapping.jaw.weights.AU62: unknown channel, perception never publishes it (did you mean AU26?; known: AU01, "),
    (lambda d: d["mapping"]["curves"].update(AU14_L={"gain": 2.0}),
     "mapping.curves.AU14_L: unknown channel, perception never publishes it (did you mean AU45_L?; known: AU01, "),
])
def test_unpublished_channel_is_refused_with_the_known_ones(raw, edit, line):
    data = copy.deepcopy(raw)
    edit(data)
    with pytest.raises(ConfigError) as err:
        parse_robot_config(data)
    message = str(err.value)
    assert message.startswith(line) and "\n" not in message
    assert all(c in message for c in PUBLISHED)


def test_response_curve_deadband_points_gain_and_inverse():
    curve = Curve(deadband=0.5, gain=2.0, points=((0.0, 0.0), (1.0, 3.0), (4.0, 4.0)))
    x = np.array([-1.0, 0.0, 0.3, 0.5, 1.0, 1.5, 3.0, 4.5, 10.0])
    shaped = curve.shape(x)
    # deadband shifts: 1.0 -> 0.5, 1.5 -> 1.0; points flat beyond their ends; negatives clamp to the first point
    assert shaped.tolist() == pytest.approx([0.0, 0.0, 0.0, 0.0, 1.5, 3.0, 3.0 + 1.5 / 3, 4.0, 4.0])
    y = shaped * 2.0
    back = curve.invert(y, 2.0)
    inside = (x > 0.5) & (x <= 4.5)
    np.testing.assert_allclose(back[inside], x[inside], atol=1e-12)
    assert back[1] == 0.0
    assert curve.invert(np.array([3.0]), 0.0).tolist() == [0.0]
    bumpy = Curve(points=((0, 0), (1, 2), (2, 1)))
    assert not bumpy.monotonic
    with pytest.raises(ValueError, match="monotonic"):
        bumpy.invert(np.array([1.0]), 1.0)
