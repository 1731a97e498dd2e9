"""Face detection with the exported BlazeFace short-range model (face_detector.onnx), as MediaPipe does it.

The frame is letterboxed into the 128x128 input (aspect kept, zero border); the session turns its uint8
BGR pixels into the model's RGB in [-1, 1] (onnx_image_input).
Each of the 896 SSD anchors regresses a box and 6 keypoints (person's right eye, left eye, nose
tip, mouth centre, right ear tragion, left ear tragion) relative to its centre, in input pixels,
plus a score logit. Anchors follow MediaPipe's SsdAnchorsCalculator settings of the short-range
model: strides 8, 16, 16, 16 (layers of equal stride share one grid), 2 anchors per layer and cell
(aspect ratio 1 and the interpolated scale), offset 0.5, fixed unit size: 512 anchors on a 16x16
grid and 384 on an 8x8 grid. Overlapping boxes (IoU > 0.3) are merged by score-weighted averaging
(MediaPipe's WEIGHTED non-maximum suppression).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import cv2
import numpy as np
import onnxruntime as ort

INPUT_SIZE = 128
STRIDES = (8, 16, 16, 16)
ANCHORS_PER_LAYER = 2
NUM_KEYPOINTS = 6
NMS_IOU = 0.3
#: Logits are clipped to +-this before the sigmoid (MediaPipe's score_clipping_thresh).
SCORE_CLIP = 100.0
#: Keypoint indices.
RIGHT_EYE, LEFT_EYE, NOSE_TIP, MOUTH, RIGHT_EAR, LEFT_EAR = range(NUM_KEYPOINTS)


@dataclass(frozen=True)
class Detection:
    """One face: ``box`` (x0, y0, x1, y1) and ``keypoints`` (6, 2) in image pixels, ``score`` in 0..1."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def ssd_anchors(input_size: int = INPUT_SIZE, strides: Sequence[int] = STRIDES,
                per_layer: int = ANCHORS_PER_LAYER) -> np.ndarray:
    """(N, 2) anchor centres in input pixels, in the order of the model's outputs."""
    centres = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = 1
        while layer + same < len(strides) and strides[layer + same] == stride:
            same += 1
        cells = -(-input_size // stride)
        ys, xs = np.mgrid[0:cells, 0:cells].astype(np.float64)
        grid = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1) * (input_size / cells)
        centres.append(np.repeat(grid, same * per_layer, axis=0))
        layer += same
    return np.concatenate(centres)


def letterbox_matrix(width: int, height: int, size: int = INPUT_SIZE) -> np.ndarray:
    """2x3 affine from input pixels to image pixels: the image centred in a size x size square, aspect kept."""
    scale = max(width, height) / size
    return np.array([[scale, 0.0, (width - scale * size) / 2.0], [0.0, scale, (height - scale * size) / 2.0]])


def decode(regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray,
           min_score: float) -> tuple:
    """Boxes (N, 4: x0, y0, x1, y1), keypoints (N, 6, 2) in input pixels and scores (N,) of the anchors
    scoring at least ``min_score``."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1).astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
    keep = np.flatnonzero(scores >= min_score)
    raw = regressors.reshape(len(anchors), -1)[keep].astype(np.float64)
    centre = anchors[keep]
    middle, half = raw[:, 0:2] + centre, raw[:, 2:4] / 2.0
    keypoints = raw[:, 4:4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) + centre[:, None, :]
    return np.concatenate([middle - half, middle + half], axis=1), keypoints, scores[keep]


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.prod(np.clip(boxes[..., 2:] - boxes[..., :2], 0.0, None), axis=-1)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box with each of (N, 4) boxes (x0, y0, x1, y1); 0 for empty unions."""
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=1)
    union = _area(box) + _area(boxes) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 threshold: float = NMS_IOU) -> List[tuple]:
    """(box, keypoints, score) per cluster: the best-scoring remaining box and every remaining box
    overlapping it by IoU > threshold, coordinates averaged with score weights, score of the best."""
    order = np.argsort(-scores, kind="stable")
    merged = []
    while order.size:
        overlap = box_iou(boxes[order[0]], boxes[order]) > threshold
        overlap[0] = True
        members = order[overlap]
        weights = scores[members] / scores[members].sum()
        merged.append((weights @ boxes[members], np.tensordot(weights, keypoints[members], axes=1),
                       float(scores[order[0]])))
        order = order[~overlap]
    return merged


class FaceDetector:
    """Runs face_detector.onnx on whole BGR frames; ``runs`` counts the model calls. The session takes
    the uint8 BGR image (onnx_session.create_session with the model's input range)."""

    def __init__(self, session: ort.InferenceSession, min_score: float = 0.5, nms_threshold: float = NMS_IOU) -> None:
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score}")
        self.session = session
        self.min_score = min_score
        self.nms_threshold = nms_threshold
        self.input_name = session.get_inputs()[0].name
        self.anchors = ssd_anchors()
        self.runs = 0

    def detect(self, bgr: np.ndarray) -> List[Detection]:
        """Faces in a BGR uint8 frame, best score first."""
        height, width = bgr.shape[:2]
        to_image = letterbox_matrix(width, height)
        square = cv2.warpAffine(bgr, to_image, (INPUT_SIZE, INPUT_SIZE),
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
        regressors, logits = self.session.run(None, {self.input_name: square[None]})
        self.runs += 1
        boxes, keypoints, scores = decode(regressors, logits, self.anchors, self.min_score)
        linear, shift = to_image[:, :2], to_image[:, 2]
        return [Detection(np.concatenate([linear @ box[:2] + shift, linear @ box[2:] + shift]),
                          points @ linear.T + shift, score)
                for box, points, score in weighted_nms(boxes, keypoints, scores, self.nms_threshold)]
