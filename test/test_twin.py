"""The face twin: the real renderer read by the project's own perception (ONNX face mesh, AUs)."""
from __future__ import annotations

from typing import Dict, List, Mapping

import numpy as np
import pytest

from humimic_core.paths import config_file
from humimic_core.robot_config import ConfigError, load_robot_config, parse_robot_config
from humimic_perception.intrinsics import Intrinsics
from humimic_perception.landmarks import make_backend
from humimic_perception.perception import FacePerception
from humimic_perception.sim.face_twin import FaceTwin

NEUTRAL_FRAMES = 10
BROWS = ("brow_inner_left", "brow_inner_right", "brow_outer_left", "brow_outer_right")


@pytest.fixture(scope="module")
def twin(shared_media) -> FaceTwin:
    from humimic_perception.sim.neutral_face import prepare

    return FaceTwin(prepare(), load_robot_config(config_file("robot_face.yaml")).servos)


def perceive(twin: FaceTwin, poses: List[Mapping[str, float]]) -> List[Dict[str, float]]:
    """The AUs perception reads from the twin in each pose, after NEUTRAL_FRAMES neutral renders."""
    perception = FacePerception(make_backend("onnx", device="cpu"), NEUTRAL_FRAMES)
    size = twin.face.size
    intrinsics = Intrinsics.from_fov(size, size, 60.0)
    perception.recapture_neutral()
    results = [perception.process(twin.render(pose), intrinsics) for pose in [{}] * NEUTRAL_FRAMES + list(poses)]
    perception.close()
    assert all(r.face for r in results), "the twin is not read as a face"
    return [r.action_units for r in results[NEUTRAL_FRAMES:]]


def ramp(joints, top: float, steps: int = 4) -> List[Dict[str, float]]:
    return [{j: top * k / steps for j in joints} for k in range(steps + 1)]


def test_jaw_lids_and_brows_read_as_their_action_units(twin):
    """Opening the jaw raises lips part and jaw drop, closing the lids raises AU45, raising the
    brows raises AU01/AU02, each more as the joint moves further; the other AUs stay put."""
    jaw = perceive(twin, ramp(["jaw"], 0.45))
    for code in ("AU25", "AU26"):
        series = [a[code] for a in jaw]
        assert series[-1] > series[0] + 1.0, (code, series)
        assert series[-1] >= series[len(series) // 2] >= series[0], (code, series)
    assert abs(jaw[-1]["AU45"] - jaw[0]["AU45"]) < 0.5
    lids = perceive(twin, ramp(["upper_lid_left", "upper_lid_right"], 0.9))
    series = [a["AU45"] for a in lids]
    assert series[-1] > series[0] + 2.0 and series[-1] >= series[2], series
    assert abs(lids[-1]["AU26"] - lids[0]["AU26"]) < 0.5
    brows = perceive(twin, ramp(BROWS, 0.35))
    for code in ("AU01", "AU02"):
        series = [a[code] for a in brows]
        assert series[-1] > series[0] + 1.0, (code, series)
    assert brows[-1]["AU04"] <= brows[0]["AU04"] + 0.2


def test_the_twin_moves_only_where_a_joint_moves_it(twin):
    neutral = twin.render({})
    assert np.array_equal(neutral, twin.render({"jaw": 0.0, "neck_yaw": 0.0}))
    opened = twin.render({"jaw": 0.45})
    changed = np.argwhere(np.abs(opened.astype(int) - neutral.astype(int)).max(2) > 8)
    assert changed[:, 0].min() > twin.neutral[[145, 374], 1].max()  # the eyes and above stay put
    assert changed[:, 0].max() > twin.neutral[14, 1] + 0.3 * twin.iod  # the chin drops
    left = twin.vertices({"eyes_yaw": 0.4})
    assert left[473, 0] > twin.neutral[473, 0] + 1.0 and left[468, 0] > twin.neutral[468, 0] + 1.0
    shut = twin.vertices({"upper_lid_left": 0.9, "lower_lid_left": -0.4})
    assert shut[386, 1] <= shut[374, 1]  # a lid stops at the other


def test_twin_entries_are_validated():
    raw = {"servos": [{"joint": "jaw", "id": 1, "model": "XL330-M288", "min": 0.0, "max": 0.4, "neutral": 0.0}]}
    for twin_entry, message in (([{"region": "chin"}], "region"), ([{"region": "jaw", "move": [1]}], "move"),
                                ([{"rotate": [0, 0, 0]}], "rotate"), ([{"region": "jaw", "move": [0, 1], "falloff": -1}],
                                                                      "falloff"),
                                ([{"rotate": [0, 1, 0], "region": "jaw"}], "rotate")):
        raw["servos"][0]["twin"] = twin_entry
        with pytest.raises(ConfigError, match=rf"servos\[0\]\.twin\[0\].*{message}|{message}"):
            parse_robot_config(raw)
    raw["servos"][0]["twin"] = [{"region": "jaw", "move": [0, 0.8], "falloff": 0.5}, {"rotate": [0, 2, 0]}]
    servo = parse_robot_config(raw).servos[0]
    assert servo.twin[0].move == (0.0, 0.8) and servo.twin[1].rotate == (0.0, 1.0, 0.0)
