"""Frames from a camera (V4L2), a video file or a folder of images, with their media time.

A source is named by one string: ``"0"`` (V4L2 index) or ``/dev/videoN``, a video file, a folder
of images (read in sorted name order) or ``""`` for the sample video. A source that cannot be
opened or yields no frame raises FrameSourceError naming it; a frame that cannot be decoded in the
middle of a video or folder is skipped and counted in ``skipped``. A video whose frames stop
decoding before the container's frame count (a truncated or damaged file) ends there and says so
in ``early_end``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Union

import cv2
import numpy as np

from humimic_core.paths import media_dir

SAMPLE_VIDEO = "WolfgangLanger_Pexels.mp4"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: Rate used when neither the fps argument nor the source gives one.
FALLBACK_FPS = 30.0
#: Undecodable frames in a row after which a video is taken to have ended (a camera to have failed).
MAX_CONSECUTIVE_FAILURES = 50
#: Frames a video may end short of the container's frame count without an early-end report: the
#: larger of a fraction of the count and a few frames (some containers only estimate the count from
#: the duration; a sample clip of 98 frames by its count decodes 95).
COUNT_TOLERANCE, COUNT_TOLERANCE_FRAMES = 0.05, 5


class FrameSourceError(RuntimeError):
    """A source that cannot be opened or read; the message names it."""


@dataclass(frozen=True)
class Frame:
    """A BGR uint8 image, its running index (0-based, over loops) and its media time in seconds:
    position in the file (continued over loops) or time since opening a camera."""

    image: np.ndarray
    index: int
    media_time: float


def resolve(spec: str) -> Union[int, str, Path]:
    """The camera index, camera device path or file/folder path a source string names."""
    spec = spec.strip()
    if spec == "":
        path = media_dir() / SAMPLE_VIDEO
        if not path.is_file():
            raise FrameSourceError(f"sample video {path} is missing: run tools/fetch_media.py")
        return path
    if spec.isdigit():
        return int(spec)
    if spec.startswith("/dev/video"):
        return spec
    path = Path(spec).expanduser()
    if not path.exists():
        raise FrameSourceError(f"source {spec!r}: no such camera, video file or image folder")
    return path


def check_source(spec: str) -> None:
    """FrameSourceError unless ``spec`` names a usable source: a file or folder that opens, or a
    camera device that exists (opening a camera would take it from the pipeline)."""
    target = resolve(spec)
    if isinstance(target, Path):
        FrameSource(spec).close()
    elif not Path(f"/dev/video{target}" if isinstance(target, int) else target).exists():
        raise FrameSourceError(f"no camera {spec!r} (no such device)")


class _Capture:
    """cv2.VideoCapture over a video file or a V4L2 camera."""

    def __init__(self, target: Union[int, str, Path], width: int, height: int) -> None:
        self.camera = not isinstance(target, Path)
        self.target = target
        self._width, self._height = width, height
        self._cap = self._open()
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        #: frames the container says the file holds (0: a camera, or unknown)
        self.frame_count = 0 if self.camera else max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))

    def _open(self) -> cv2.VideoCapture:
        if self.camera:
            cap = cv2.VideoCapture(self.target, cv2.CAP_V4L2)
            if cap.isOpened():
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
                if self._width > 0:
                    cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._width)
                if self._height > 0:
                    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._height)
        else:
            cap = cv2.VideoCapture(str(self.target))
        if not cap.isOpened():
            what = "camera" if self.camera else "video file"
            raise FrameSourceError(f"cannot open {what} {self.target}")
        return cap

    def rewind(self) -> None:
        self._cap.release()
        self._cap = self._open()

    def read(self) -> Optional[np.ndarray]:
        """The next image; an empty array for an undecodable frame, None past a file's last frame."""
        ok, image = self._cap.read()
        if ok and image is not None and image.size:
            return image
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        if not self.camera and 0 < count <= self._cap.get(cv2.CAP_PROP_POS_FRAMES):
            return None
        return np.empty((0, 0, 3), np.uint8)

    def close(self) -> None:
        self._cap.release()


class _Folder:
    """The images of a folder in sorted name order."""

    camera = False
    fps = 0.0

    def __init__(self, folder: Path) -> None:
        self.files: List[Path] = sorted(p for p in folder.iterdir()
                                        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise FrameSourceError(f"image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self._next = 0

    def rewind(self) -> None:
        self._next = 0

    def read(self) -> Optional[np.ndarray]:
        """The next image; an empty array for an unreadable file, None after the last one."""
        if self._next >= len(self.files):
            return None
        path = self.files[self._next]
        self._next += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return image if image is not None else np.empty((0, 0, 3), np.uint8)

    def close(self) -> None:
        pass


class FrameSource:
    """Iterates the frames of one source. ``fps`` (the rate to publish at) is the argument if > 0,
    else the source's own rate, else FALLBACK_FPS; media time follows the source's own rate where
    it has one. ``loop`` restarts files and folders at their end."""

    def __init__(self, spec: str, fps: float = 0.0, loop: bool = False, width: int = 0, height: int = 0) -> None:
        target = resolve(spec)
        self.name = str(target) if spec.strip() else f"{target} (sample video)"
        self._reader = _Folder(target) if isinstance(target, Path) and target.is_dir() \
            else _Capture(target, width, height)
        self.kind = "images" if isinstance(self._reader, _Folder) else "camera" if self._reader.camera else "video"
        native = self._reader.fps if self._reader.fps > 0 else 0.0
        self.fps = float(fps) if fps > 0 else native or FALLBACK_FPS
        self._media_fps = native or self.fps
        self.loop = loop and self.kind != "camera"
        #: frames that could not be decoded and were skipped
        self.skipped = 0
        #: why the last pass over a video ended before the container's frame count, or None
        self.early_end: Optional[str] = None
        self._index = 0
        self._pass_position = 0  # frames (read or skipped) in this pass over the file
        self._position = 0  # frames (read or skipped) since the start, over loops: the media clock
        self._opened_at = time.monotonic()
        self._first = self._decode()
        if self._first is None:
            self.close()
            raise FrameSourceError(f"{self.name}: no readable frame")

    def _decode(self) -> Optional[np.ndarray]:
        """Next decodable image of the current pass, or None at its end. Unreadable images and
        undecodable video frames followed by a good one count as skipped; a video ends after
        MAX_CONSECUTIVE_FAILURES."""
        failures = 0
        folder = isinstance(self._reader, _Folder)
        while failures < MAX_CONSECUTIVE_FAILURES or folder:
            image = self._reader.read()
            if image is None:
                self.skipped += failures if folder else 0
                return None
            if image.size:
                self.skipped += failures
                self._position += failures + 1
                self._pass_position += failures + 1
                return image
            failures += 1
        if self.kind == "camera":
            raise FrameSourceError(f"camera {self.name} stopped delivering frames")
        self._check_end(failures)
        return None

    def _check_end(self, failures: int) -> None:
        """A video whose frames stopped decoding: an early end when short of the container's count."""
        count = getattr(self._reader, "frame_count", 0)
        if count and count - self._pass_position > max(COUNT_TOLERANCE * count, COUNT_TOLERANCE_FRAMES):
            self.early_end = (f"{self.name} ended after {self._pass_position} of {count} frames (the container's "
                              f"frame count): {failures} frames in a row did not decode; the file is truncated "
                              "or damaged")

    def read(self) -> Optional[Frame]:
        """The next frame, or None at the end of a non-looping file or folder."""
        image, self._first = self._first, None
        if image is None:
            image = self._decode()
        if image is None and self.loop:
            self._reader.rewind()
            self._pass_position = 0
            image = self._decode()
        if image is None:
            return None
        if self.kind == "camera":
            media_time = time.monotonic() - self._opened_at
        else:
            media_time = (self._position - 1) / self._media_fps
        frame = Frame(image, self._index, media_time)
        self._index += 1
        return frame

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
