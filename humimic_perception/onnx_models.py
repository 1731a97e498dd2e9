"""The ONNX face models the live path loads: names, I/O contract and folder (the export is
humimic_perception/export/onnx_export.py, run by tools/export_onnx.py and `./run setup`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from humimic_core.paths import cache_dir

IMAGE_INPUT = "image"


@dataclass(frozen=True)
class ModelSpec:
    """One exported model: file name, source inside the mediapipe package, input range, output names."""

    onnx_name: str
    source: str
    input_range: tuple[float, float]
    outputs: dict[str, tuple[str, str]]  # TFLite output name -> (ONNX output name, meaning)
    notes: str

    @property
    def sidecar_name(self) -> str:
        return Path(self.onnx_name).with_suffix(".json").name


FACE_DETECTOR = ModelSpec(
    "face_detector.onnx", "modules/face_detection/face_detection_short_range.tflite", (-1.0, 1.0),
    {"regressors": ("regressors", "per anchor: box centre dx, dy, width, height, then 6 keypoints (x, y); "
                                  "input pixels, centre and keypoints relative to the anchor centre"),
     "classificators": ("classificators", "per anchor: face score logit (sigmoid -> probability)")},
    "BlazeFace short range. 896 SSD anchors: 128x128 input, strides 8, 16, 16, 16, anchor offset 0.5, "
    "aspect ratio 1, fixed anchor size, 2 anchors per cell at stride 8 and 6 per cell at stride 16.")

FACE_LANDMARKS = ModelSpec(
    "face_landmarks.onnx", "modules/face_landmark/face_landmark_with_attention.tflite", (0.0, 1.0),
    {"output_mesh_identity": ("landmarks", "468 face mesh points (x, y, z) in input pixels; z on the x scale"),
     "output_lips": ("lips", "80 refined lip points (x, y) in input pixels"),
     "output_left_eye": ("left_eye", "71 refined left-eye points (x, y) in input pixels"),
     "output_right_eye": ("right_eye", "71 refined right-eye points (x, y) in input pixels"),
     "output_left_iris": ("left_iris", "5 left-iris points (x, y) in input pixels"),
     "output_right_iris": ("right_iris", "5 right-iris points (x, y) in input pixels"),
     "conv_faceflag": ("face_flag", "face presence logit (sigmoid -> probability)")},
    "Attention face mesh (FaceMesh refine_landmarks=True). The 478-point mesh is `landmarks` with the x, y of "
    "the lip and eye points replaced and the 10 iris points appended, as MediaPipe's "
    "LandmarksRefinementCalculator does.")

MODELS = (FACE_DETECTOR, FACE_LANDMARKS)


def models_dir() -> Path:
    """Default folder of the exported ONNX models."""
    return cache_dir() / "models"
