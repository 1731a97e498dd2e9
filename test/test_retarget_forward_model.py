"""Forward model: the expression (in the person's channels) that a robot pose shows."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from humimic_core.paths import config_file
from humimic_core.robot_config import parse_robot_config
from humimic_retarget.expression_mapping import ExpressionMapping
from humimic_retarget.offline.forward_model import ForwardModel
from humimic_retarget.offline.synthetic_pairs import synthetic_session

RAW = yaml.safe_load(config_file("robot_face.yaml").read_text())
#: Channels the shipped mapping can tell apart from the joints (AU25/AU26 both only open the jaw,
#: AU12/AU15 both only move the lip corners, AU01/AU02/AU04 move the brows with two joint pairs:
#: those come back as one least-squares split).
IDENTIFIABLE = ["AU05", "AU45_L", "AU45_R", "head_yaw", "head_pitch", "head_roll", "gaze_yaw", "gaze_pitch"]


def config(mirror):
    data = copy.deepcopy(RAW)
    data["mapping"]["mirror"] = mirror
    return parse_robot_config(data)


@pytest.mark.parametrize("mirror", [False, True])
def test_inverts_the_linear_mapping_curves_and_mirror(mirror):
    cfg = config(mirror)
    forward, mapping = ForwardModel.from_config(cfg), ExpressionMapping(cfg)
    rng = np.random.default_rng(3)
    for _ in range(20):
        person = {"AU01": rng.uniform(0, 4), "AU02": rng.uniform(0, 4), "AU04": rng.uniform(0, 3), "AU05": rng.uniform(0, 4),
                  "AU45_L": rng.uniform(0.2, 3.8), "AU45_R": rng.uniform(0.2, 3.8), "AU12": rng.uniform(0.5, 4), "AU15": 0.0, "AU25": 1.0,
                  "AU26": rng.uniform(0, 5), "head_yaw": rng.uniform(-0.3, 0.3), "head_pitch": rng.uniform(-0.2, 0.2),
                  "head_roll": rng.uniform(-0.2, 0.2), "gaze_yaw": rng.uniform(-0.3, 0.3), "gaze_pitch": 0.1}
        joints, _ = mapping(person)
        shown = forward.expression(dict(zip(cfg.joint_names, joints)))
        assert [shown[c] for c in IDENTIFIABLE] == pytest.approx([person[c] for c in IDENTIFIABLE], abs=1e-6)
        w = RAW["mapping"]["jaw"]["weights"]
        jaw = w["AU26"] * shown["AU26"] + w["AU25"] * shown["AU25"]
        expected = w["AU26"] * person["AU26"] + w["AU25"]
        assert jaw == pytest.approx(expected, abs=1e-6), "jaw channels: a consistent split"


def test_expressions_stay_in_channel_ranges():
    cfg = config(False)
    forward = ForwardModel.from_config(cfg)
    wide = {s.joint: s.max for s in cfg.servos}
    shown = forward.expression(wide)
    assert all(0.0 <= v <= 5.0 for c, v in shown.items() if c.startswith("AU"))
    assert shown["head_yaw"] == pytest.approx(cfg.servo("neck_yaw").max)
    assert forward.expression({})["AU01"] == 0.0, "joints left out count as at neutral"


def test_fitted_forward_model_from_recordings():
    cfg = config(False)
    names, x, y = synthetic_session(cfg, seconds=30.0, seed=4)
    forward = ForwardModel.fit(cfg.joint_names, names, y, x)
    predicted = forward.expressions(y)
    yaw = names.index("head_yaw")
    assert np.sqrt(np.mean((predicted[:, yaw] - x[:, yaw]) ** 2)) < 0.03
    assert forward.expression(dict(zip(cfg.joint_names, y[0]))).keys() == set(names)


def test_non_monotonic_curve_cannot_be_inverted():
    data = copy.deepcopy(RAW)
    data["mapping"]["curves"]["AU01"] = {"points": [[0, 0], [2, 3], [5, 1]]}
    with pytest.raises(ValueError, match="mapping.curves.AU01"):
        ForwardModel.from_config(parse_robot_config(data))
