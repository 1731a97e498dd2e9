"""Motor babbling on the face twin (real renderer, real perception) and the inverse self-model fitted
on it with humimic-fit, loaded as the retarget node loads a learned mapping."""
from __future__ import annotations

import json

import numpy as np
import yaml

from humimic_core.paths import config_file
from humimic_core.robot_config import parse_robot_config

JOINTS = ("jaw", "upper_lid_left", "upper_lid_right", "brow_inner_left", "brow_inner_right")


def test_a_short_babbling_session_fits_a_self_model(tmp_path, sample_media):
    from humimic_experiments.babble import babble, moves
    from humimic_retarget.learned_mapping import LearnedMapping
    from humimic_retarget.offline.fit_tool import main as fit_main

    raw = yaml.safe_load(config_file("robot_face.yaml").read_text())
    raw = {"servos": [{**s, "parent": "base_link"} for s in raw["servos"] if s["joint"] in JOINTS]}
    config = parse_robot_config(raw)
    steps = list(moves({"jaw": 0.0}, {"jaw": 0.45}, {"jaw": 2.5}, 30.0))
    assert len(steps) == 6 and steps[-1]["jaw"] == 0.45  # 0.45 rad at 2.5 rad/s: 0.18 s, 6 frames
    summary = babble(config, tmp_path, levels=1, combos=6, settle=0.1, hold=0.2, images=True)
    rows = [json.loads(line) for line in (tmp_path / "babble.jsonl").read_text().splitlines()]
    assert summary["samples"] == len(rows) == summary["poses"] >= 12 and summary["no_face"] == 0
    for row in rows:
        for servo in config.servos:
            assert servo.min <= row["joints"][servo.joint] <= servo.max
        assert (tmp_path / row["image"]).is_file() and "mouth_open" in row["geometry"]
    jaw = np.array([r["joints"]["jaw"] for r in rows])
    opened = np.array([r["geometry"]["mouth_open"] for r in rows])
    assert np.corrcoef(jaw, opened)[0, 1] > 0.8  # the twin's mouth opens with its jaw, as perceived
    model = tmp_path / "self_model.onnx"
    assert fit_main([str(tmp_path / "babble.jsonl"), "--out", str(model), "--model", "ridge",
                     "--robot-config", str(_write(tmp_path, raw))]) == 0
    mapping = LearnedMapping(model, list(JOINTS))

    def jaw_of(channels):
        return mapping([channels[c] for c in mapping.channels])[mapping.joints.index("jaw")]

    closed = next(r for r in rows if r["joints"]["jaw"] == 0.0)
    widest = max(rows, key=lambda r: r["joints"]["jaw"])
    assert jaw_of(widest["channels"]) > jaw_of(closed["channels"]) + 0.15


def _write(folder, raw):
    path = folder / "robot.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_pairs_move_every_two_joint_groups_together():
    """pose_grid(pairs=True): each two joint groups at the ends of their ranges (jaw with the lip
    corners, inner with outer brows), within the limits and couplings."""
    from humimic_core.robot_config import load_robot_config
    from humimic_retarget.offline.pose_grid import joint_groups, pose_grid

    config = load_robot_config(config_file("robot_face.yaml"))
    plain = pose_grid(config, levels=1)
    paired = pose_grid(config, levels=1, pairs=True)
    groups = joint_groups(config.joint_names)
    assert paired[:len(plain)] == plain and len(paired) > len(plain) + len(groups) * (len(groups) - 1)
    for joints in (("jaw", "lip_corner_left"), ("brow_inner_left", "brow_outer_left")):
        together = [p for p in paired[len(plain):] if all(p[j] != 0.0 for j in joints)]
        assert {tuple(np.sign([p[j] for j in joints])) for p in together} >= {(1.0, 1.0), (1.0, -1.0)}
    servos = {s.joint: s for s in config.servos}
    assert all(servos[j].min <= v <= servos[j].max for p in paired for j, v in p.items())
