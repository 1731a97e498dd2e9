"""The session report: files, video frames, and the page as headless Chromium renders it."""
from __future__ import annotations

import json
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from humimic_experiments.report import render_report, summary_lines
from recording_factory import make_recording


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.skip("no Chromium on this machine (./run test installs Debian's chromium when run as root)")
    return exe


def test_report_renders_and_displays(sample_media, tmp_path):
    make_recording(sample_media / "single_face.mp4", tmp_path / "rec", frames=24)
    page = render_report(tmp_path / "rec", tmp_path / "report")
    out = page.parent
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames"] == 24 and metrics["frames_with_face"] == 18
    assert metrics["latency_from_camera_stamp"]["/joint_commands"]["p50_ms"] == pytest.approx(11.0, abs=0.01)
    # fidelity through the forward model: the recording's lip corner rises with AU12_R while its jaw
    # closes as AU26 falls, so the robot's expected AU12_R (its mirrored left corner) follows the human's
    # and its AU26 opposes it
    overall = {r["channel"]: r for r in metrics["fidelity"] if r["segment"] == "all"}
    assert overall["AU12_R"]["pearson"] > 0.9 and overall["AU26"]["pearson"] < -0.5
    assert {r["segment"] for r in metrics["fidelity"]} == {"all", "part 1/4", "part 2/4", "part 3/4", "part 4/4"}
    printed = {line.split()[0]: line.split()[1:] for line in summary_lines(metrics)}
    assert printed["/joint_commands"][0] == "11"  # p50 ms
    assert float(printed["AU12_R"][0]) == pytest.approx(overall["AU12_R"]["pearson"], abs=1e-3)
    video = cv2.VideoCapture(str(out / "side_by_side.webm"))
    count = 0
    while True:
        ok, frame = video.read()
        if not ok:
            break
        count += 1
        assert frame.shape[0] == 360 and frame.shape[1] > 360 + 600  # 640x360 human | 360x360 robot
    assert count == 24
    exe = chromium()
    shot = tmp_path / "page.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chrome'}", "--window-size=1300,2400", "--hide-scrollbars"]
    dom = subprocess.run([exe, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert 'id="curves"' in dom.stdout and 'id="latency-table"' in dom.stdout and "side_by_side.webm" in dom.stdout
    subprocess.run([exe, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    img = cv2.imread(str(shot))
    assert img is not None, "Chromium wrote no screenshot"
    # the plots are drawn: the page is far from a plain text page in colour content
    colours = len(np.unique(img.reshape(-1, 3) // 16, axis=0))
    assert colours > 40, f"only {colours} colour bins on the rendered page"


def test_report_shows_visual_fidelity_and_self_model_uncertainty(sample_media, tmp_path):
    """A recording with the robot face's images and perception (/robot_face/...) and the self-model's
    /retarget/self_model_std: the report correlates the person's jaw and AU26 with the robot face's,
    which shows them two frames later (r at lag 0 low, best r at lag 2 near 1), summarises the
    predicted standard deviations per joint, and its video shows the recorded robot face."""
    from humimic_core.paths import config_file
    from humimic_core.robot_config import load_robot_config
    from humimic_perception.sim.face_twin import FaceTwin
    from humimic_perception.sim.neutral_face import prepare
    from recording_factory import make_watched_recording

    twin = FaceTwin(prepare(), load_robot_config(config_file("robot_face.yaml")).servos)
    jaw = 0.2 + 0.2 * np.sin(2 * np.pi * np.arange(36) / 12)
    make_watched_recording(sample_media / "single_face.mp4", tmp_path / "rec", twin, jaw, lag_frames=2,
                           std={"jaw": 0.02, "brow_inner_left": 0.1})
    page = render_report(tmp_path / "rec", tmp_path / "report")
    metrics = json.loads((page.parent / "metrics.json").read_text())
    for name in ("jaw", "AU26"):
        figures = metrics["visual"][name]
        assert figures["r"] < 0.7 and figures["best_r"] > 0.95 and figures["lag_frames"] == 2, (name, figures)
    assert np.isnan(metrics["visual"]["AU12"]["r"])  # not recorded: no figure
    std = metrics["self_model_std"]
    assert std["jaw"]["median"] == pytest.approx(0.02) and std["brow_inner_left"]["p95"] == pytest.approx(0.1)
    text = page.read_text()
    assert "id='visual'" in text and "id='self-model-std'" in text
    printed = {line.split()[0]: line.split()[1:] for line in summary_lines(metrics)}
    assert float(printed["AU26"][1]) == pytest.approx(metrics["visual"]["AU26"]["best_r"], abs=1e-3)
    # the video shows the robot face as recorded: at the last frame, the render received by then (frame 32's)
    video = cv2.VideoCapture(str(page.parent / "side_by_side.webm"))
    frames = []
    while (frame := video.read())[0]:
        frames.append(frame[1])
    assert len(frames) == 36 and frames[-1].shape[:2] == (360, 640 + 360)
    errors = [np.abs(frames[-1][:, 640:].astype(int) - cv2.resize(twin.render({"jaw": float(j)}), (360, 360),
                                                                   interpolation=cv2.INTER_AREA)).mean()
              for j in (jaw[32], jaw[26])]
    assert errors[0] < 8 and errors[0] < errors[1], errors


def test_the_robot_face_is_resampled_without_bridging_a_gap():
    """The robot face's series onto the person's frames: interpolated between two seen frames, NaN
    next to a frame where it was not seen and outside its span."""
    from humimic_experiments.visual import resample

    out = resample(np.array([0, 10, 20, 30]), np.array([0.0, np.nan, 2.0, 3.0]), np.array([5, 25, 30, 40, -1]))
    assert np.isnan(out[0]) and out[1] == pytest.approx(2.5) and np.isnan(out[3]) and np.isnan(out[4])
    assert out[2] == pytest.approx(3.0)
