"""Offline re-run: every frame, deterministic, stamps from the media; its output reports."""
from __future__ import annotations

import json

from humimic_experiments.bag_io import read_messages, topic_summary
from humimic_experiments.report import render_report
from humimic_experiments.rerun import VIDEO_EPOCH_NS, rerun
from humimic_experiments.session import load_session
from recording_factory import FRAME_NS, make_recording


def test_rerun_is_deterministic_and_complete(sample_media, tmp_path):
    video = sample_media / "single_face.mp4"
    first = rerun(video, tmp_path / "a")
    rerun(video, tmp_path / "b")
    a, b = list(read_messages(tmp_path / "a")), list(read_messages(tmp_path / "b"))
    assert a and a == b, "two re-runs of the same video differ"
    topics = topic_summary(tmp_path / "a")
    assert first["frames"] == topics["/camera/image_raw"][1] == topics["/face/action_units"][1] == 72
    assert topics["/joint_commands"][1] == 72 and first["frames_with_face"] >= 70
    # the driver on emulated servos: a write per command, states at its 50 Hz from its start 0.5 s
    # before the first frame to 0.1 s after the last (72 frames at 30 fps: 2.4 s)
    assert topics["/driver/written_goals"][1] == 72 and 140 <= topics["/joint_states"][1] <= 155
    assert first["driver_events"] == [] or all(e.startswith("info") for e in first["driver_events"])
    session = load_session(tmp_path / "a")
    stamps = [s for _, s in session.frames]
    assert stamps[0] == VIDEO_EPOCH_NS and stamps == sorted(stamps)
    assert [s.stamp for s in session.series["/joint_commands"]] == stamps
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["frames"] == 72


def test_rerun_of_a_recording_keeps_its_stamps_and_renders(sample_media, tmp_path):
    truth = make_recording(sample_media / "single_face.mp4", tmp_path / "rec", frames=20)
    rerun(tmp_path / "rec", tmp_path / "out", write_images=True)
    session = load_session(tmp_path / "out")
    assert [s for _, s in session.frames] == [t["stamp"] for t in truth]
    assert all(b - a == FRAME_NS for a, b in zip([t["stamp"] for t in truth], [t["stamp"] for t in truth][1:]))
    page = render_report(tmp_path / "out", tmp_path / "report")
    assert page.is_file() and (page.parent / "side_by_side.webm").stat().st_size > 10_000


def test_rerun_moves_as_the_live_node_with_every_retarget_parameter(sample_media, tmp_path):
    import yaml

    from humimic_core.parameters import node_parameters
    from humimic_core.paths import config_file
    from humimic_core.robot_config import load_robot_config
    from humimic_retarget.retargeter import RetargetParams

    shipped = yaml.safe_load(config_file("humimic.yaml").read_text())

    def params_file(name: str, **changes) -> str:
        data = yaml.safe_load(yaml.safe_dump(shipped))
        data["retarget"]["ros__parameters"].update(changes)
        (tmp_path / name).write_text(yaml.safe_dump(data))
        return str(tmp_path / name)

    settings = RetargetParams.from_parameters(node_parameters(params_file("all.yaml", mirror=False, smoothing=0.2,
                                                                          max_acceleration=5.0, gains={"AU12_L": 2.0}),
                                                              "retarget"))
    assert (settings.mirror, settings.smoothing, settings.max_acceleration, settings.gains) == (False, 0.2, 5.0,
                                                                                               {"AU12_L": 2.0})
    video = sample_media / "single_face.mp4"
    runs = {}
    for name, params in (("shipped", None), ("same_side", params_file("m.yaml", mirror=False)),
                         ("smooth", params_file("s.yaml", smoothing=0.5))):
        metrics = rerun(video, tmp_path / name, params, write_images=False, start_frame=30)
        assert metrics["frames"] == 42 and metrics["start_frame"] == 30
        runs[name] = load_session(tmp_path / name).curves("/joint_commands")
    assert runs["shipped"]["neck_yaw"][0][0] - VIDEO_EPOCH_NS * 1e-9 > 0.9  # frame 30 of 30 fps: 1 s in
    yaw = runs["shipped"]["neck_yaw"][1]
    assert abs(yaw).max() > 0.02 and (runs["same_side"]["neck_yaw"][1] == -yaw).all()  # mirror undone
    # a slower low-pass moves the joints that follow the node's `smoothing` less (the others, e.g. the
    # lids and the mouth, have their own constraints.smoothing in the robot config)
    own = load_robot_config(config_file("robot_face.yaml")).constraints.smoothing
    travel = {name: sum(abs(c[1][1:] - c[1][:-1]).sum() for joint, c in run.items() if joint not in own)
              for name, run in runs.items()}
    assert travel["shipped"] > 0.1 and travel["smooth"] < 0.7 * travel["shipped"], travel


def test_a_rerun_and_the_live_node_give_the_same_commands(tmp_path):
    """The re-run builds the retargeter's settings as the live node does (RetargetParams.from_parameters):
    with smoothing, mirror or a gain changed in the parameter file, the retarget node started on that
    file and the re-run's retargeter turn the same frames into the same commands, and into other
    commands than the shipped file gives."""
    import math

    import rclpy
    import yaml

    from humimic_core.parameters import node_parameters
    from humimic_core.paths import config_file
    from humimic_core.robot_config import load_robot_config
    from humimic_retarget.retarget_node import RetargetNode
    from humimic_retarget.retargeter import Retargeter, RetargetParams

    config = load_robot_config(config_file("robot_face.yaml"))
    shipped = yaml.safe_load(config_file("humimic.yaml").read_text())

    def commands(retargeter: Retargeter) -> list:
        channels = retargeter.mapping.channels
        frames = [{c: (1.5 + 1.5 * math.sin(0.3 * i + k) if c.startswith("AU") else 0.3 * math.sin(0.2 * i + k))
                   for k, c in enumerate(channels)} for i in range(60)]
        return [retargeter.update(i / 30.0, frame) for i, frame in enumerate(frames)]

    def offline(path) -> list:
        return commands(Retargeter(config, RetargetParams.from_parameters(node_parameters(path, "retarget"))))

    reference = offline(config_file("humimic.yaml"))
    for name, change in (("smoothing", {"smoothing": 0.3}), ("mirror", {"mirror": not config.mapping.mirror}),
                         ("gains", {"gains": {"AU12_L": 2.5, "AU26": 0.5}})):
        data = yaml.safe_load(yaml.safe_dump(shipped))
        data["retarget"]["ros__parameters"].update(change)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        rclpy.init(args=["--ros-args", "--params-file", str(path)])
        try:
            node = RetargetNode()
            try:
                live = commands(node.retargeter)
            finally:
                node.destroy_node()
        finally:
            rclpy.shutdown()
        assert live == offline(path), name
        assert live != reference, f"{name}: the change had no effect, the test proves nothing"
