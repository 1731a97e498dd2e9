"""Dataset export round trip on a recording of real frames."""
from __future__ import annotations

import numpy as np
import pytest

from humimic_experiments.dataset import export_dataset, read_dataset
from recording_factory import make_recording


def test_export_round_trip(sample_media, tmp_path):
    truth = make_recording(sample_media / "single_face.mp4", tmp_path / "rec")
    n = export_dataset(tmp_path / "rec", tmp_path / "ds", levels=5)
    with_face = [t for t in truth if t["aus"]]
    assert n == len(with_face) == 9
    records = list(read_dataset(tmp_path / "ds"))
    assert len(records) == n
    for record, t in zip(records, with_face):
        assert record["stamp_ns"] == t["stamp"]
        assert record["action_units"] == pytest.approx(t["aus"])
        assert record["joint_commands"] == pytest.approx(t["command"])
        assert record["joint_states"] == pytest.approx(t["state"])
        assert record["head"]["head_yaw"] == pytest.approx(0.0, abs=1e-9)
        assert np.abs(record["pixels"].astype(int) - t["image"]).mean() < 3  # JPEG, quality 95
        assert "jaw dropped" in record["text"] or t["aus"]["AU26"] < 0.5
    assert records[0]["text"] == "jaw dropped 5/5"
    assert records[-1]["text"].startswith("lip corners pulled up 4/5")


@pytest.fixture(scope="module")
def twin_camera():
    from humimic_core.paths import config_file
    from humimic_core.robot_config import load_robot_config
    from humimic_experiments.dataset import twin_camera

    camera = twin_camera(config_file("humimic.yaml"), load_robot_config(config_file("robot_face.yaml")))
    yield camera
    camera.close()


def test_the_twin_camera_describes_the_expression_the_robot_shows(sample_media, twin_camera):
    """The robot's face rendered by the twin and read by the robot-face perception, in words: its
    rest pose is a neutral face, an open jaw reads as lips parted and jaw dropped, raised brows as
    raised brows, each at an intensity level."""
    from humimic_experiments.describe import describe

    texts = {}
    for name, pose in (("rest", {}), ("jaw", {"jaw": 0.45}), ("brows", {j: 0.35 for j in (
            "brow_inner_left", "brow_inner_right", "brow_outer_left", "brow_outer_right")})):
        for second in range(3):  # held: the perception's filters settle
            image, aus, head = twin_camera.shot(pose, len(texts) + second * 0.1)
        assert image.shape == (512, 512, 3)
        texts[name] = describe(aus, 5, 0.5, head=head)
    assert texts["rest"] == "neutral face", texts
    assert "lips parted" in texts["jaw"] and "jaw dropped" in texts["jaw"] and "brows" not in texts["jaw"], texts
    assert "inner brows raised" in texts["brows"] and "jaw" not in texts["brows"], texts


def test_a_recorded_robot_face_camera_is_paired_with_each_frame(sample_media, tmp_path):
    """A recording with the robot-face camera on: each record gets the first robot-face image
    stamped at or after its frame's command (the jaw commanded a frame earlier, shown two frames
    later: the first frame's own), with the robot face's AUs and their text."""
    from humimic_core.paths import config_file
    from humimic_core.robot_config import load_robot_config
    from humimic_experiments.describe import describe
    from humimic_perception.sim.face_twin import FaceTwin
    from humimic_perception.sim.neutral_face import prepare
    from recording_factory import make_watched_recording

    twin = FaceTwin(prepare(), load_robot_config(config_file("robot_face.yaml")).servos)
    jaw = np.linspace(0.0, 0.45, 10)
    make_watched_recording(sample_media / "single_face.mp4", tmp_path / "rec", twin, jaw, lag_frames=2, std={})
    assert export_dataset(tmp_path / "rec", tmp_path / "ds") == 10
    records = list(read_dataset(tmp_path / "ds"))
    for i, record in enumerate(records):
        robot = record["robot_face"]
        assert robot["source"] == "camera" and robot["action_units"]["AU26"] == pytest.approx(5 * jaw[max(i - 1, 0)])
        assert robot["text"] == describe(robot["action_units"], 5, 0.5, head=robot["head"])
        assert (tmp_path / "ds" / robot["image"]).is_file()
    assert records[0]["robot_face"]["text"] == "neutral face" and records[-1]["robot_face"]["text"] == "jaw dropped 2/5"  # 5 x 0.4
