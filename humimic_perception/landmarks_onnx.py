"""Landmark backend on MediaPipe's face models exported to ONNX (onnx_export), run by onnxruntime.

Per frame, as MediaPipe's face mesh does it:

1. Faces tracked from the previous frame keep the region of interest (ROI) made from their landmarks:
   a square 1.5x the longer side of the landmarks' bounding box, rotated so that the line from mesh
   point 33 to 263 (the outer eye corners) is horizontal.
2. The detector (face_detector) runs only while fewer than ``max_faces`` faces are tracked, and
   every ``redetect_interval`` frames when that is > 0. A detection whose ROI (1.5x the longer box
   side, rotated by the eye keypoints) overlaps a tracked face's ROI by IoU > 0.5 is that face.
   With ``late_detection`` (default) and a face already tracked, this search for further faces
   waits until the frame's landmarks are out: the caller runs it with ``finish_frame()`` once it
   has sent what it needed (the perception node: after its outputs), else the next frame runs it
   first; either way the faces it finds are tracked from the next frame, from their detection's
   ROI. The detector was about 40% of the step (2.4 of 6.4 ms on one core, docs/latency.md), and
   with ``max_faces`` > 1 and one person in view it ran on every frame before the landmarks.
3. Each ROI is cropped to the model input (cv2.warpAffine, replicated border); the crops of all
   tracked faces go through the landmark model in one call (its batch axis), whose session takes
   the uint8 BGR crops as they are (onnx_image_input converts them in the graph). Its face presence
   (sigmoid of ``face_flag``) is the face's confidence; below ``min_tracking_confidence`` the face
   is dropped, so the next frame detects again.
4. The 478-point mesh (mesh_refinement) is mapped back to image pixels, z scaled like x.

A face landmark model of your own plugs in through ``landmark_model`` with this contract: one
input, NHWC float32 (N, H, W, 3) RGB (a fixed batch of 1 makes one call per face), its value range
in the sidecar ``<model>.json`` (``inputs[0].range``, as onnx_export writes it; [0, 1] without a
sidecar); outputs ``landmarks``
(x, y, z in input pixels for 478 points, or for 468 points plus the ``lips``, ``left_eye``,
``right_eye``, ``left_iris``, ``right_iris`` refinements) and ``face_flag`` (presence logit).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np

from humimic_perception import mesh_refinement, onnx_models
from humimic_perception.face_detector import LEFT_EYE, RIGHT_EYE, Detection, FaceDetector, box_iou
from humimic_perception.landmarks import FaceLandmarks
from humimic_perception.onnx_models import FACE_DETECTOR, FACE_LANDMARKS
from humimic_perception.onnx_session import create_session, input_contract

#: ROI side / longer side of the face box (detection or landmarks).
ROI_SCALE = 1.5
#: A detection whose ROI overlaps a tracked ROI by more than this IoU is the tracked face.
SAME_FACE_IOU = 0.5
#: Mesh points whose line sets the ROI rotation of a tracked face (outer eye corners).
ROTATION_POINTS = (33, 263)


@dataclass(frozen=True)
class Roi:
    """A rotated square in image pixels: centre, side, rotation (radians, image y down)."""

    cx: float
    cy: float
    size: float
    angle: float

    def to_image(self, crop: int) -> np.ndarray:
        """2x3 affine from pixels of a crop x crop image of the ROI to image pixels."""
        scale = self.size / crop
        c, s = np.cos(self.angle) * scale, np.sin(self.angle) * scale
        half = crop / 2.0
        return np.array([[c, -s, self.cx - (c - s) * half], [s, c, self.cy - (s + c) * half]])

    def box(self) -> np.ndarray:
        """The axis-aligned square (x0, y0, x1, y1) of the same centre and side."""
        half = self.size / 2.0
        return np.array([self.cx - half, self.cy - half, self.cx + half, self.cy + half])


def _roi(box: np.ndarray, start: np.ndarray, end: np.ndarray) -> Roi:
    """ROI around a box (x0, y0, x1, y1), rotated so that start -> end points along +x."""
    (x0, y0, x1, y1), (dx, dy) = box, end - start
    return Roi((x0 + x1) / 2.0, (y0 + y1) / 2.0, ROI_SCALE * max(x1 - x0, y1 - y0), float(np.arctan2(dy, dx)))


def roi_from_detection(detection: Detection) -> Roi:
    return _roi(detection.box, detection.keypoints[RIGHT_EYE], detection.keypoints[LEFT_EYE])


def roi_from_face(face: FaceLandmarks) -> Roi:
    return _roi(np.asarray(face.box), face.points[ROTATION_POINTS[0], :2], face.points[ROTATION_POINTS[1], :2])


def _crop_to_image(to_image: np.ndarray) -> np.ndarray:
    """3x3 matrix taking row points (x, y, z) of the crop to the image, but for the shift: x, y by the
    affine's linear part, z by its scale."""
    (a, b, _), (c, d, _) = to_image
    return np.array([[a, c, 0.0], [b, d, 0.0], [0.0, 0.0, math.hypot(a, c)]])


def landmark_box(points: np.ndarray) -> tuple:
    """(x0, y0, x1, y1) around the points (per-column reductions: a third of the time of axis=0 ones)."""
    x, y = points[:, 0], points[:, 1]
    return float(x.min()), float(y.min()), float(x.max()), float(y.max())


class OnnxLandmarks:
    """Face detection, tracking and 478-point landmarks on onnxruntime (CUDA when available).

    Options: ``min_detection_confidence`` (detector score), ``min_tracking_confidence`` (face
    presence), ``max_faces``, ``redetect_interval`` (frames; 0 = detect only while fewer than
    ``max_faces`` faces are tracked), ``device`` ("auto", "cpu", "cuda"), ``threads`` (onnxruntime
    intra-op threads; 0 = one per core, which is slower than 1 when other processes keep a core busy),
    ``late_detection`` (while a face is tracked, search for more after the frame: step 2 above),
    ``models_dir`` (folder of face_detector.onnx and face_landmarks.onnx;
    default: the export cache that tools/export_onnx.py fills), ``landmark_model`` (a model of
    your own, see the module docstring). ``timings_ms`` holds the last frame's stage times:
    detect, track (ROIs from landmarks), crop, landmarks (model and mesh assembly).
    """

    name = "onnx"

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 max_faces: int = 1, redetect_interval: int = 0, device: str = "auto", threads: int = 1,
                 models_dir: str = "", landmark_model: str = "", late_detection: bool = True) -> None:
        if not 0.0 <= min_tracking_confidence <= 1.0:
            raise ValueError(f"min_tracking_confidence must be in [0, 1], got {min_tracking_confidence}")
        if int(max_faces) < 1 or int(redetect_interval) < 0:
            raise ValueError(f"max_faces must be >= 1 and redetect_interval >= 0, got {max_faces}, {redetect_interval}")
        folder = Path(models_dir) if models_dir else _default_models()
        landmark_path = Path(landmark_model) if landmark_model else folder / FACE_LANDMARKS.onnx_name
        detector_path = folder / FACE_DETECTOR.onnx_name
        self.detector = FaceDetector(create_session(detector_path, device, int(threads),
                                                    input_contract(detector_path, FACE_DETECTOR.input_range)),
                                     min_detection_confidence)
        self.session = create_session(landmark_path, device, int(threads),
                                      input_contract(landmark_path, FACE_LANDMARKS.input_range))
        self.min_tracking_confidence = min_tracking_confidence
        self.max_faces = int(max_faces)
        self.redetect_interval = int(redetect_interval)
        self.late_detection = bool(late_detection)
        self.landmark_runs = 0
        self.timings_ms: Dict[str, float] = {}
        self._input = self.session.get_inputs()[0]
        shape = self._input.shape
        if len(shape) != 4 or not isinstance(shape[1], int) or shape[1] != shape[2] or shape[3] != 3:
            raise ValueError(f"{landmark_path}: input shape {shape} is not (N, S, S, 3)")
        self.crop_size = size = shape[1]
        self._batched = not isinstance(shape[0], int)  # a dynamic batch axis: all faces in one call
        self._outputs = [o.name for o in self.session.get_outputs()]
        self._refine = "lips" in self._outputs
        missing = {"landmarks", "face_flag"} - set(self._outputs)
        if missing:
            raise ValueError(f"{landmark_path}: outputs {sorted(missing)} missing (has {self._outputs})")
        self._crops = np.empty((self.max_faces, size, size, 3), np.uint8)
        self._tracks: List[Roi] = []
        self._frame = 0
        self._search: Optional[np.ndarray] = None  # the last frame, while its search for faces is put off

    def process(self, bgr: np.ndarray) -> Optional[FaceLandmarks]:
        """The face tracked longest (the only one with max_faces = 1), or None."""
        faces = self.process_all(bgr)
        return faces[0] if faces else None

    def process_all(self, bgr: np.ndarray) -> List[FaceLandmarks]:
        """Every face found (at most max_faces), tracked faces first in the order they were found."""
        if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 image (H, W, 3), got {bgr.dtype} {bgr.shape}")
        t0 = time.perf_counter()
        self.finish_frame()
        if len(self._tracks) < self.max_faces or (
                self.redetect_interval and self._frame % self.redetect_interval == 0):
            if self.late_detection and self._tracks:
                self._search = bgr
            else:
                self._add_detections(bgr)
        t1 = time.perf_counter()
        self._frame += 1
        to_images = [roi.to_image(self.crop_size) for roi in self._tracks]
        for crop, to_image in zip(self._crops, to_images):
            cv2.warpAffine(bgr, to_image, (self.crop_size, self.crop_size), dst=crop,
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        t2 = time.perf_counter()
        faces: List[FaceLandmarks] = []
        tracks: List[Roi] = []
        track_s = 0.0
        for k, outputs in enumerate(self._run(len(to_images))):
            face = self._landmarks(outputs, to_images[k], bgr.shape[1], bgr.shape[0])
            t3 = time.perf_counter()
            if face is not None:
                new = roi_from_face(face)
                if not tracks or box_iou(new.box(), np.stack([r.box() for r in tracks])).max() <= SAME_FACE_IOU:
                    faces.append(face)
                    tracks.append(new)
            track_s += time.perf_counter() - t3
        self._tracks = tracks
        crop_s = t2 - t1
        landmarks_s = time.perf_counter() - t2 - track_s
        self.timings_ms = {"detect": (t1 - t0) * 1e3, "track": track_s * 1e3, "crop": crop_s * 1e3,
                           "landmarks": landmarks_s * 1e3}
        return faces

    def finish_frame(self) -> None:
        """The last frame's search for further faces, where late_detection put it off (the frame must
        not have changed since); the faces found are tracked from the next frame."""
        if self._search is not None:
            bgr, self._search = self._search, None
            self._add_detections(bgr)

    def reset(self) -> None:
        """Forget the tracked faces: the next frame starts with a detection."""
        self._tracks = []
        self._search = None

    def close(self) -> None:
        self.reset()

    def _add_detections(self, bgr: np.ndarray) -> None:
        """Start tracks for detected faces that no track covers, best score first, up to max_faces."""
        for detection in self.detector.detect(bgr):
            if len(self._tracks) >= self.max_faces:
                break
            roi = roi_from_detection(detection)
            if not self._tracks or box_iou(roi.box(), np.stack([r.box() for r in self._tracks])).max() <= SAME_FACE_IOU:
                self._tracks.append(roi)

    def _run(self, count: int) -> List[Dict[str, np.ndarray]]:
        """The model's outputs for each of the first ``count`` crops: one call for them all when the
        model has a batch axis, else one per crop."""
        if not count:
            return []
        batches = [self._crops[:count]] if self._batched else [self._crops[k:k + 1] for k in range(count)]
        results = []
        for batch in batches:
            results.append(self.session.run(self._outputs, {self._input.name: batch}))
            self.landmark_runs += 1
        if self._batched:
            return [{name: value[k:k + 1] for name, value in zip(self._outputs, results[0])} for k in range(count)]
        return [dict(zip(self._outputs, values)) for values in results]

    def _landmarks(self, outputs: Dict[str, np.ndarray], to_image: np.ndarray, width: int,
                   height: int) -> Optional[FaceLandmarks]:
        """One crop's model outputs as the face in image pixels, or None below the tracking threshold."""
        confidence = 0.5 * (1.0 + math.tanh(0.5 * float(outputs["face_flag"].reshape(-1)[0])))  # sigmoid
        if confidence < self.min_tracking_confidence:
            return None
        if self._refine:
            points = mesh_refinement.assemble(outputs)
        else:
            points = outputs["landmarks"].reshape(-1, 3).astype(np.float64)
            if len(points) != mesh_refinement.NUM_REFINED:
                raise ValueError(f"landmark model gives {len(points)} points without refinement outputs; "
                                 f"{mesh_refinement.NUM_REFINED} needed")
        points = points @ _crop_to_image(to_image)
        points[:, 0] += to_image[0, 2]
        points[:, 1] += to_image[1, 2]
        return FaceLandmarks(points, width, height, confidence, landmark_box(points))


def _default_models() -> Path:
    """The export cache; FileNotFoundError naming the export command when a model is missing."""
    folder = onnx_models.models_dir()
    missing = [spec.onnx_name for spec in onnx_models.MODELS if not (folder / spec.onnx_name).is_file()]
    if missing:
        raise FileNotFoundError(f"ONNX model {', '.join(missing)} missing in {folder}: "
                                "run tools/export_onnx.py (`./run setup` does)")
    return folder
