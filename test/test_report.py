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
