"""The evaluation command on real clips through the offline re-run: the kinematic measure sees the
robot's joints against the face's geometry, independently of the AUs and of the mapping."""
from __future__ import annotations

import json

import pytest
import yaml

from humimic_core.paths import config_file
from humimic_core.robot_config import load_robot_config
from humimic_experiments.bag_io import SegmentedBagWriter, deserialize, read_messages, serialize, typestore
from humimic_experiments.evaluate import evaluate, main
from humimic_experiments.report import session_metrics
from humimic_experiments.session import load_session, stamp_ns

CLIP = "pucker_then_mouth_open.mp4"  # neutral, pucker, mouth wide open (frames 71-148), neutral; 30 fps
FRAME_NS = 1_000_000_000 // 30
T = typestore().types


def test_evaluation_of_a_real_clip_prints_and_writes_the_table(shared_media, tmp_path, capsys):
    printed = []
    report = evaluate([CLIP, "no_such_clip.mp4"], tmp_path, log=printed.append)
    clip = report["clips"][0]
    assert clip["clip"] == CLIP and clip["frames"] == 216 and clip["robot_topic"] == "/joint_states"
    assert report["measured"] == "positions" and "measured on positions" in printed[-2]
    assert clip["groups"]["jaw"]["r"] > 0.0 and clip["groups"]["jaw"]["lag_frames"] >= 0
    assert {"upper_lids", "lip_corners", "brows", "eye_yaw"} <= set(clip["groups"])
    assert report["pooled"]["groups"]["jaw"]["r"] == clip["groups"]["jaw"]["r"]  # one clip: the same figure
    assert any("skipped no_such_clip.mp4" in line for line in printed)
    table = printed[-1].splitlines()
    assert table[0].split()[:6] == ["clip", "frames", "jaw", "upper_lid_left", "upper_lid_right", "upper_lids"]
    assert table[-2].startswith("pooled") and table[-1].startswith("person, one frame behind")
    reference = report["one_frame_behind"]["groups"]["jaw"]  # the person against themselves a frame later
    assert reference["lag_frames"] == 1 and reference["best_r"] == pytest.approx(1.0) and reference["r"] < 1.0
    assert json.loads((tmp_path / "fidelity.json").read_text())["clips"][0]["clip"] == CLIP
    assert "| pooled |" in (tmp_path / "fidelity.md").read_text()
    assert main([CLIP, "--out", str(tmp_path)]) == 2 and "pass --reuse" in capsys.readouterr().err
    again = evaluate([CLIP], tmp_path, reuse=True, log=lambda line: None)["clips"][0]
    assert again["groups"]["jaw"] == clip["groups"]["jaw"]
    # the commands, for comparison: the servos follow them within their caps, so a little later
    commands = evaluate([CLIP], tmp_path, reuse=True, log=lambda line: None, measured="commands")["clips"][0]
    assert commands["robot_topic"] == "/joint_commands"
    assert commands["groups"]["jaw"]["lag_frames"] <= clip["groups"]["jaw"]["lag_frames"]
    assert commands["groups"]["jaw"]["best_r"] == pytest.approx(clip["groups"]["jaw"]["best_r"], abs=0.05)

    # a recording with servo states is measured on them, as recorded: here the re-run's commands
    # reached by the servos two frames later (in place of the re-run's own states)
    live = tmp_path / "live"
    with SegmentedBagWriter(live, "mcap", split_seconds=3600.0) as bag:
        for m in read_messages(tmp_path / "reruns" / CLIP):
            if m.topic == "/joint_states":
                continue
            bag.write(m.topic, m.msgtype, m.timestamp, m.data)
            if m.topic == "/joint_commands":
                msg = deserialize(m)
                stamp = stamp_ns(msg) + 2 * FRAME_NS
                header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](
                    sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="")
                state = T["sensor_msgs/msg/JointState"](header=header, name=msg.name, position=msg.position,
                                                        velocity=msg.velocity, effort=msg.effort)
                bag.write("/joint_states", m.msgtype, stamp, serialize(state, m.msgtype))
    recorded = evaluate([str(live)], tmp_path / "live_eval", log=lambda line: None)["clips"][0]
    assert recorded["robot_topic"] == "/joint_states" and recorded["frames"] == 216
    # two frames later: the best lag (0..max, the robot never leading) moves by two frames, by less where
    # the forecast makes the commands lead (a lead counts as lag 0)
    assert commands["groups"]["jaw"]["lag_frames"] < recorded["groups"]["jaw"]["lag_frames"] \
        <= commands["groups"]["jaw"]["lag_frames"] + 2
    assert recorded["groups"]["jaw"]["best_r"] == pytest.approx(commands["groups"]["jaw"]["best_r"], abs=0.01)


def test_a_wrong_sign_in_the_mapping_shows_in_the_kinematic_measure_not_in_the_au_figure(shared_media, tmp_path):
    data = yaml.safe_load(config_file("robot_face.yaml").read_text())
    data["mapping"]["jaw"] = {"offset": 0.45, "weights": {"AU26": -0.07, "AU25": -0.02}}  # closes as the mouth opens
    path = tmp_path / "wrong_jaw.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_robot_config(path)
    report = evaluate([CLIP], tmp_path / "eval", config=config, log=lambda line: None)
    assert report["clips"][0]["groups"]["jaw"]["r"] < -0.5
    # the AU-based figure compares the AUs with the inverse of the same (wrong) mapping: all looks right
    session = load_session(tmp_path / "eval" / "reruns" / CLIP)
    au = {r["channel"]: r for r in session_metrics(session, config)["fidelity"] if r["segment"] == "all"}
    assert au["AU26"]["pearson"] > 0.5


def test_bad_input_is_one_line_before_any_work(tmp_path, capsys):
    pairing = tmp_path / "pairing.yaml"
    pairing.write_text("groups: {jaw: [{joint: jaw, signal: mouth_opening, sign: 1}]}\n")
    assert main([CLIP, "--out", str(tmp_path / "out"), "--pairing", str(pairing)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown signal 'mouth_opening'" in err and len(err.splitlines()) == 1
    assert main(["x.mp4@start", "--out", str(tmp_path / "out")]) == 2
    assert "start after '@' must be a frame number" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
