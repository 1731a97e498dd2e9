"""FrameSource on real video files, image folders written here, corrupt data and missing sources."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from humimic_core.paths import media_dir
from humimic_perception.frame_source import FrameSource, FrameSourceError

SINGLE_FACE = media_dir() / "single_face.mp4"


def _numbered(i: int, size=(48, 64)) -> np.ndarray:
    """A frame whose mean grey level encodes i."""
    return np.full((*size, 3), 20 * i, np.uint8)


def _mjpeg_with_zeroed_frame(path: Path, frames: int, zeroed: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(frames):
        writer.write(_numbered(i % 12))
    writer.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    assert len(starts) == frames
    data[starts[zeroed]:starts[zeroed + 1]] = bytes(starts[zeroed + 1] - starts[zeroed])
    path.write_bytes(bytes(data))


def test_video_file_frames_fps_and_media_time():
    with FrameSource(str(SINGLE_FACE)) as source:
        assert (source.kind, source.fps) == ("video", pytest.approx(30.0))
        frames = list(source)
    assert len(frames) == 72 and source.skipped == 0
    assert [f.index for f in frames] == list(range(72))
    assert frames[0].image.shape == (360, 640, 3) and frames[0].image.dtype == np.uint8
    assert frames[30].media_time == pytest.approx(1.0)


def test_fps_argument_sets_the_rate_but_not_the_media_clock():
    with FrameSource(str(SINGLE_FACE), fps=10.0) as source:
        assert source.fps == 10.0
        frames = [source.read() for _ in range(31)]
    assert frames[30].media_time == pytest.approx(1.0)


def test_loop_restarts_with_continuing_index_and_media_time(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), _numbered(i))
    with FrameSource(str(tmp_path), fps=5.0, loop=True) as source:
        frames = [source.read() for _ in range(7)]
    assert [round(f.image.mean() / 20) for f in frames] == [0, 1, 2, 0, 1, 2, 0]
    assert [f.index for f in frames] == list(range(7))
    assert frames[6].media_time == pytest.approx(6 / 5.0)


def test_image_folder_sorted_skips_corrupt_and_non_images(tmp_path):
    for i in (4, 1, 3, 0):
        cv2.imwrite(str(tmp_path / f"frame_{i:02d}.png"), _numbered(i))
    for name in ("frame_02.png", "frame_09.jpg"):
        (tmp_path / name).write_bytes(b"not an image at all")
    (tmp_path / "notes.txt").write_text("ignored")
    with FrameSource(str(tmp_path)) as source:
        assert (source.kind, source.fps) == ("images", 30.0)
        levels = [round(f.image.mean() / 20) for f in source]
    assert levels == [0, 1, 3, 4]
    assert source.skipped == 2


def test_corrupt_frame_inside_a_video_is_skipped_and_counted(tmp_path):
    path = tmp_path / "clip.avi"
    _mjpeg_with_zeroed_frame(path, frames=20, zeroed=10)
    with FrameSource(str(path)) as source:
        frames = list(source)
    assert source.skipped >= 1
    assert len(frames) >= 15
    assert frames[0].image.mean() == pytest.approx(0.0, abs=3)


@pytest.mark.parametrize("make", ["missing", "garbage_video", "empty_folder", "unreadable_images"])
def test_unusable_source_raises_an_error_naming_it(tmp_path, make):
    if make == "missing":
        spec = tmp_path / "nowhere.mp4"
    elif make == "garbage_video":
        spec = tmp_path / "broken.mp4"
        spec.write_bytes(b"\x00garbage" * 100)
    elif make == "empty_folder":
        spec = tmp_path
    else:
        spec = tmp_path
        (tmp_path / "a.jpg").write_bytes(b"junk")
    with pytest.raises(FrameSourceError, match=str(spec.name)):
        FrameSource(str(spec))


def test_missing_camera_raises_an_error_naming_it():
    with pytest.raises(FrameSourceError, match="camera 97"):
        FrameSource("97")


def test_default_source_is_the_sample_video_or_says_how_to_fetch_it(tmp_path, monkeypatch):
    with FrameSource("") as source:
        assert "WolfgangLanger_Pexels.mp4" in source.name and source.read() is not None
    monkeypatch.setenv("HUMIMIC_CACHE", str(tmp_path))
    with pytest.raises(FrameSourceError, match="tools/fetch_media.py"):
        FrameSource("")


SAMPLE = media_dir() / "WolfgangLanger_Pexels.mp4"  # 472 frames, index (moov) before the frames


def truncated(tmp_path: Path, fraction: float) -> Path:
    """A copy of the sample video cut after ``fraction`` of its bytes, as an interrupted download."""
    data = SAMPLE.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def test_truncated_video_reports_its_early_end_against_the_frame_count(tmp_path):
    with FrameSource(str(truncated(tmp_path, 0.5))) as source:
        frames = list(source)
    assert 150 < len(frames) < 300
    assert source.early_end is not None and "of 472 frames" in source.early_end and "truncated" in source.early_end
    assert f"ended after {len(frames) + source.skipped} of 472" in source.early_end
    with FrameSource(str(SAMPLE)) as whole:
        assert sum(1 for _ in whole) == 472 and whole.early_end is None and whole.skipped == 0


def test_looping_a_truncated_video_goes_on_and_keeps_the_report(tmp_path):
    with FrameSource(str(truncated(tmp_path, 0.5)), loop=True) as source:
        frames = [source.read() for _ in range(400)]
    assert all(f is not None for f in frames) and source.early_end is not None
    assert [f.index for f in frames] == list(range(400))


def test_camera_node_logs_one_warning_line_for_a_truncated_video(tmp_path):
    """The real camera node on a truncated copy: one warning naming the early end, then exit 0."""
    import subprocess
    import sys

    path = truncated(tmp_path, 0.5)
    done = subprocess.run([sys.executable, "-m", "humimic_perception.camera_node", "--ros-args",
                           "-p", f"source:={path}", "-p", "fps:=1000.0", "-p", "min_subscribers:=0"],
                          capture_output=True, text=True, timeout=60)
    lines = (done.stdout + done.stderr).splitlines()
    warnings = [line for line in lines if line.startswith("[WARN]")]
    assert done.returncode == 0, lines[-5:]
    assert len(warnings) == 1 and "ended after" in warnings[0] and "of 472 frames" in warnings[0], warnings


def test_offline_rerun_warns_of_a_truncated_video(tmp_path):
    import subprocess
    import sys

    path = truncated(tmp_path, 0.125)
    done = subprocess.run([sys.executable, "-m", "humimic_experiments.rerun", str(path), "--out",
                           str(tmp_path / "out"), "--no-images"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("humimic-rerun: warning:")]
    assert any("of 472 frames" in line and "truncated" in line for line in warnings), done.stderr[-2000:]
