"""Landmark backend on MediaPipe 0.10.21 FaceMesh (legacy solution API, models bundled in the wheel)."""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from humimic_perception.landmarks import NUM_LANDMARKS, FaceLandmarks


class MediaPipeLandmarks:
    """FaceMesh in tracking mode (one face, refined eyes/lips/irises: 478 points)."""

    name = "mediapipe"

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False, max_num_faces=1, refine_landmarks=True,
            min_detection_confidence=min_detection_confidence, min_tracking_confidence=min_tracking_confidence)

    def process(self, bgr: np.ndarray) -> Optional[FaceLandmarks]:
        """Landmarks in pixels (z scaled like x, as MediaPipe documents) or None without a face."""
        if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 image (H, W, 3), got {bgr.dtype} {bgr.shape}")
        height, width = bgr.shape[:2]
        result = self._mesh.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        faces = result.multi_face_landmarks
        if not faces or len(faces[0].landmark) != NUM_LANDMARKS:
            return None
        points = np.array([(p.x, p.y, p.z) for p in faces[0].landmark], dtype=np.float64)
        points *= (width, height, width)
        return FaceLandmarks(points, width, height)

    def close(self) -> None:
        self._mesh.close()
