"""Face landmark backends: the common result type, the backend interface and the backend registry.

Every backend returns the 478-point MediaPipe face mesh topology (468 mesh points + 2 x 5 iris
points) so head pose and action units work unchanged whichever backend produced the points.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Dict, Optional, Protocol, Tuple

import numpy as np

NUM_LANDMARKS = 478

#: backend name -> "module:class"; the class takes keyword options (min_detection_confidence,
#: min_tracking_confidence) and implements LandmarkBackend. Imported only when chosen.
BACKENDS: Dict[str, str] = {
    "mediapipe": "humimic_perception.landmarks_mediapipe:MediaPipeLandmarks",
    "onnx": "humimic_perception.landmarks_onnx:OnnxLandmarks",
}


@dataclass(frozen=True)
class FaceLandmarks:
    """One face: ``points`` (N, 3) float64 in pixels: x right, y down, z away from the camera in
    the same scale as x, relative to the centre of the head (MediaPipe convention). ``confidence``
    (0..1) is the backend's face presence score where it has one; ``box`` (x0, y0, x1, y1) the face's
    bounding box in pixels where the backend reports it."""

    points: np.ndarray
    width: int
    height: int
    confidence: float = 1.0
    box: Optional[Tuple[float, float, float, float]] = None


class LandmarkBackend(Protocol):
    """Finds one face in a BGR uint8 image (H, W, 3); None when there is none."""

    name: str

    def process(self, bgr: np.ndarray) -> Optional[FaceLandmarks]:
        ...

    def close(self) -> None:
        ...


def make_backend(name: str, **options: Any) -> LandmarkBackend:
    """Build a backend by its registered name (ValueError lists the known ones), passing it the
    options its constructor takes; options meant for other backends are left out."""
    if name not in BACKENDS:
        raise ValueError(f"unknown landmark backend {name!r} (known: {', '.join(sorted(BACKENDS))})")
    module, cls_name = BACKENDS[name].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in options.items() if k in accepted})
