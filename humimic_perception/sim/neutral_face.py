"""The twin's neutral face: a real face (a frame of a clip or an image, by default frame 0 of the
sample media's single_face.mp4, never stored in the repository), cropped to a square around the
face, with its face mesh from the project's own perception, the warp
mesh (MediaPipe's face tessellation, the eye and mouth openings fanned from their centres, Delaunay
triangles from the face oval to the image border) and the image with its irises painted out (the
twin draws them where the eyes look). Prepared once and cached in HUMIMIC_CACHE/twin/:

    humimic-twin-prepare [--source FILE] [--frame N] [--size 512]

Vertices of the warp mesh: the 478 mesh points (irises 468-477, drawn, never warped), then the
centres of the right eye, the left eye and the mouth (their rings are fanned from them), then
fixed points on the image border (the background stretches between them and the face).
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np

from humimic_core.face_regions import EYE_RINGS, FACE_OVAL, IRISES, MESH, MESH_WITH_IRISES, MOUTH_RING
from humimic_core.paths import cache_dir, media_dir, shared_media_dir

#: index of the first centre vertex (right eye, left eye, mouth), then the border points
CENTRES = MESH_WITH_IRISES
BORDER = CENTRES + 3
#: border points per image side (corners included once)
BORDER_STEPS = 4
#: the default neutral face: frame 0 of a real clip of the sample media (a frontal, relaxed face)
DEFAULT_SOURCE = "single_face.mp4"
#: side of the square crop around the face, in face heights (the jaw and a turned head keep room)
CROP_FACE_HEIGHTS = 1.8


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
    """The image or video file of a neutral face ("" = DEFAULT_SOURCE; a bare name is looked up in
    the sample media, then in ../shared/media)."""
    path = Path(source or DEFAULT_SOURCE)
    if not path.is_file() and len(path.parts) == 1:
        found = [d / path for d in (media_dir(), shared_media_dir()) if (d / path).is_file()]
        path = found[0] if found else media_dir() / path
    return path


def cache_path(source: str, frame: int, size: int) -> Path:
    """Where the prepared neutral face of (source, frame, size) is cached."""
    path = resolve_source(source)
    if not path.is_file():
        raise ValueError(f"{path}: no such image or video file")
    stat = path.stat()  # a file replaced at the same path is prepared anew
    key = hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{frame}:{size}:{CROP_FACE_HEIGHTS}"
                       .encode()).hexdigest()[:10]
    return cache_dir() / "twin" / f"{path.stem}_{frame}_{size}_{key}.npz"


def read_frame(path: Path, frame: int) -> np.ndarray:
    """Frame ``frame`` of a video (or an image file)."""
    image = cv2.imread(str(path)) if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") else None
    if image is None:
        capture = cv2.VideoCapture(str(path))
        capture.set(cv2.CAP_PROP_POS_FRAMES, frame)
        ok, image = capture.read()
        capture.release()
        if not ok:
            raise ValueError(f"{path}: cannot read frame {frame}")
    return image


def face_square(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The square of ``image`` centred on the face (mesh ``points``), CROP_FACE_HEIGHTS face heights
    on a side (at most the image's shorter side, moved inside the image)."""
    h, w = image.shape[:2]
    top, bottom = points[:, 1].min(), points[:, 1].max()
    side = int(min(h, w, round(CROP_FACE_HEIGHTS * (bottom - top))))
    x0 = int(np.clip(round(points[:, 0].mean() - side / 2), 0, w - side))
    y0 = int(np.clip(round((top + bottom - side) / 2), 0, h - side))
    return image[y0:y0 + side, x0:x0 + side]


def tessellation() -> List[tuple]:
    """MediaPipe's face mesh triangles (its 3-cliques of tessellation edges)."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    neighbours = defaultdict(set)
    for a, b in FACEMESH_TESSELATION:
        neighbours[a].add(b)
        neighbours[b].add(a)
    return sorted({tuple(sorted((a, b, c))) for a, b in FACEMESH_TESSELATION for c in neighbours[a] & neighbours[b]})


def warp_triangles(vertices: np.ndarray) -> np.ndarray:
    """The warp mesh over ``vertices`` (the layout above), largest triangles
    first: the renderer draws them in this order, so a 3-clique of the tessellation that is no face
    (three points around a fourth) is overdrawn by the faces inside it."""
    xy = vertices[:, :2]
    tris = [t for t in tessellation() if max(t) < MESH]
    for centre, ring in zip(range(CENTRES, CENTRES + 3), (EYE_RINGS["R"], EYE_RINGS["L"], MOUTH_RING)):
        tris += [(a, b, centre) for a, b in zip(ring, ring[1:] + ring[:1])]
    size = float(np.ceil(xy[BORDER:].max()))
    subdiv = cv2.Subdiv2D((-1, -1, int(size) + 3, int(size) + 3))
    outer = list(FACE_OVAL) + list(range(BORDER, len(xy)))
    for i in outer:
        subdiv.insert((float(xy[i, 0]), float(xy[i, 1])))
    oval = xy[list(FACE_OVAL)].astype(np.float32)
    for corners in subdiv.getTriangleList().reshape(-1, 3, 2):
        nearest = [outer[int(np.argmin(np.linalg.norm(xy[outer] - c, axis=1)))] for c in corners]
        if np.linalg.norm(xy[nearest] - corners, axis=1).max() < 0.01:  # not one of Subdiv2D's outer corners
            centroid = tuple(float(v) for v in corners.mean(0))
            if cv2.pointPolygonTest(oval, centroid, False) < 0:
                tris.append(tuple(nearest))
    area = [abs(np.cross(xy[b] - xy[a], xy[c] - xy[a])) for a, b, c in tris]
    return np.array([tris[i] for i in np.argsort(area)[::-1]], dtype=np.int32)


def border_points(size: int) -> np.ndarray:
    steps = np.linspace(0.0, size - 1.0, BORDER_STEPS + 1)
    edge = [(x, y) for x, y in itertools.product(steps, steps) if x in (steps[0], steps[-1]) or y in (steps[0], steps[-1])]
    return np.array([(x, y, 0.0) for x, y in edge])


def paint_out_irises(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The image with each iris inpainted from the white of its eye."""
    mask = np.zeros(image.shape[:2], np.uint8)
    for side in "RL":
        centre, *rim = IRISES[side]
        radius = float(np.linalg.norm(points[rim, :2] - points[centre, :2], axis=1).mean())
        disk = np.zeros_like(mask)
        cv2.circle(disk, tuple(int(round(v)) for v in points[centre, :2]), int(np.ceil(radius * 1.2)), 255, -1)
        eye = np.zeros_like(mask)
        cv2.fillPoly(eye, [np.round(points[list(EYE_RINGS[side]), :2]).astype(np.int32)], 255)
        mask |= disk & cv2.dilate(eye, np.ones((3, 3), np.uint8))
    return cv2.inpaint(image, mask, 5, cv2.INPAINT_TELEA)


def prepare(source: str = "", frame: int = 0, size: int = 512) -> NeutralFace:
    """The neutral face of (source, frame, size), from the cache or made and cached."""
    path = cache_path(source, frame, size)
    if path.is_file():
        return NeutralFace.load(path)
    from humimic_perception.landmarks_onnx import OnnxLandmarks

    backend = OnnxLandmarks(max_faces=1, device="cpu")
    try:
        image = read_frame(resolve_source(source), frame)
        face = None
        for _ in range(2):  # the face in the whole frame, then in its square at ``size``
            if face is not None:
                image = cv2.resize(face_square(image, face.points), (size, size), interpolation=cv2.INTER_AREA)
                backend.reset()  # a detection in the new image, not a track from the old one
            face = backend.process(image)
            if face is None:
                raise ValueError(f"{resolve_source(source)} frame {frame}: no face found")
    finally:
        backend.close()
    points = face.points.astype(np.float64)
    centres = [points[list(ring)].mean(0) for ring in (EYE_RINGS["R"], EYE_RINGS["L"], MOUTH_RING)]
    vertices = np.vstack([points, centres, border_points(size)])
    neutral = NeutralFace(paint_out_irises(image, points), image, vertices, warp_triangles(vertices))
    neutral.save(path)
    return neutral


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="", help="image or video file ('' = single_face.mp4 of the sample media)")
    parser.add_argument("--frame", type=int, default=0)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args(argv)
    neutral = prepare(args.source, args.frame, args.size)
    print(f"{cache_path(args.source, args.frame, args.size)}: {len(neutral.triangles)} triangles")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
