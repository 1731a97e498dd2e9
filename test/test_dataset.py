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
