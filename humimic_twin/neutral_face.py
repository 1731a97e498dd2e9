"""The twin's neutral face: a real face image with its face mesh, as prepared by
humimic_twin.offline.prepare and cached in HUMIMIC_CACHE/twin/ (the image is read from the sample
media at preparation, never stored in the repository).

Vertices of the warp mesh: the 478 mesh points (irises 468-477, drawn, never warped), then the
centres of the right eye, the left eye and the mouth (their rings are fanned from them), then
fixed points on the image border (the background stretches between them and the face).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from humimic_core.face_regions import MESH_WITH_IRISES
from humimic_core.paths import cache_dir, shared_media_dir

#: index of the first centre vertex (right eye, left eye, mouth), then the border points
CENTRES = MESH_WITH_IRISES
BORDER = CENTRES + 3
#: the default neutral face: frame 0 of a real clip of ../shared/media (a frontal, relaxed face)
DEFAULT_SOURCE = "pucker_then_mouth_open.mp4"


@dataclass(frozen=True)
class NeutralFace:
    """``base``: the face image (BGR, irises painted out); ``original``: the same with its irises;
    ``vertices`` (V, 3) pixels (x right, y down, z away as the face mesh gives it; 0 off the face);
    ``triangles`` (T, 3) vertex indices of the warp mesh."""

    base: np.ndarray
    original: np.ndarray
    vertices: np.ndarray
    triangles: np.ndarray

    @property
    def size(self) -> int:
        return int(self.base.shape[0])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, base=self.base, original=self.original, vertices=self.vertices,
                            triangles=self.triangles)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "NeutralFace":
        with np.load(path) as data:
            return cls(data["base"], data["original"], data["vertices"], data["triangles"])


def resolve_source(source: str) -> Path:
    """The image or video file of a neutral face ("" = DEFAULT_SOURCE of ../shared/media; a bare
    name is looked up there)."""
    path = Path(source or DEFAULT_SOURCE)
    if not path.is_file() and len(path.parts) == 1:
        path = shared_media_dir() / path
    return path


def cache_path(source: str, frame: int, size: int) -> Path:
    """Where the prepared neutral face of (source, frame, size) is cached."""
    path = resolve_source(source)
    key = hashlib.sha1(f"{path.resolve()}:{frame}:{size}".encode()).hexdigest()[:10]
    return cache_dir() / "twin" / f"{path.stem}_{frame}_{size}_{key}.npz"
