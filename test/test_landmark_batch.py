"""Several faces in one landmark-model call: the same landmarks as one call per face, one call per frame."""
from __future__ import annotations

from pathlib import Path
from typing import List

import cv2
import numpy as np

from humimic_perception import mesh_refinement
from humimic_perception.landmarks_onnx import OnnxLandmarks, roi_from_face


def clip_frame(path: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = cap.read()
    cap.release()
    assert ok, f"cannot read frame {index} of {path}"
    return cv2.resize(image, (640, 360))


def mosaic(sample_media: Path) -> np.ndarray:
    """Four real faces: a 2x2 mosaic of frames of three clips."""
    talking = sample_media / "WolfgangLanger_Pexels.mp4"
    tiles = [clip_frame(sample_media / "single_face.mp4", 0), clip_frame(talking, 200),
             clip_frame(sample_media / "face_noface.mov", 0), clip_frame(talking, 40)]
    return np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])


def test_batched_call_matches_single_calls(sample_media: Path) -> None:
    image = mosaic(sample_media)
    backend = OnnxLandmarks(max_faces=4, device="cpu")
    faces = backend.process_all(image)
    assert len(faces) >= 3, f"found {len(faces)} of the 4 faces"
    size = backend.crop_size
    rois = [roi_from_face(face) for face in faces]
    crops = np.stack([cv2.warpAffine(image, roi.to_image(size), (size, size),
                                     flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
                      for roi in rois])
    names = [o.name for o in backend.session.get_outputs()]
    name = backend.session.get_inputs()[0].name
    batched = backend.session.run(names, {name: crops})
    for k, roi in enumerate(rois):
        single = dict(zip(names, backend.session.run(names, {name: crops[k:k + 1]})))
        together = {n: value[k:k + 1] for n, value in zip(names, batched)}
        px = roi.size / size  # image pixels per crop pixel
        error = np.abs(mesh_refinement.assemble(together) - mesh_refinement.assemble(single)).max() * px
        assert error < 1e-3, f"face {k}: batched landmarks differ by {error:.2e} px"
        assert abs(float(together["face_flag"].item()) - float(single["face_flag"].item())) < 1e-4


def test_process_all_runs_the_model_once_per_frame(sample_media: Path) -> None:
    image = mosaic(sample_media)
    backend = OnnxLandmarks(max_faces=4, device="cpu")
    counts: List[int] = []
    runs: List[int] = []
    for _ in range(3):
        before = backend.landmark_runs
        counts.append(len(backend.process_all(image)))
        runs.append(backend.landmark_runs - before)
    assert min(counts) >= 3 and runs == [1, 1, 1], f"faces {counts}, landmark model calls {runs}"
