"""The ONNX landmark backend on real faces: parity with the MediaPipe reference, detection, tracking,
several faces, face loss; the CPU graph rewrites; the mesh assembly.

Parity tolerance: both backends track the same clip frame by frame; per frame, the mean distance
between corresponding points (x, y in pixels) divided by the inter-ocular distance (IOD, outer eye
corners 33-263) must stay below 2% IOD, and its mean over a clip below 0.5% IOD. Measured on the
sample and shared clips: 0.02-0.14% IOD on average, at most 0.5% on 95% of the frames. The two
run the same network weights (the ONNX export matches TFLite to ~3e-4 px); the rest is
crop interpolation and float rounding, which tracking carries from frame to frame.
"""
from __future__ import annotations

from pathlib import Path
from typing import List

import cv2
import mediapipe as mp
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from humimic_perception import mesh_refinement
from humimic_perception.face_detector import FaceDetector, box_iou, ssd_anchors
from humimic_perception.landmarks import NUM_LANDMARKS, make_backend
from humimic_perception.landmarks_onnx import OnnxLandmarks
from humimic_perception.onnx_cpu_rewrites import optimize_for_cpu
from humimic_perception.onnx_image_input import uint8_bgr_input
from humimic_perception.export.onnx_export import export_models
from humimic_perception.onnx_models import FACE_DETECTOR, FACE_LANDMARKS, models_dir
from humimic_perception.onnx_session import create_session, providers_for, session_options

FRAME_TOL_IOD = 0.02
CLIP_TOL_IOD = 0.005
PARITY_FRAMES = 60
CLIPS = {"sample_media": ("single_face.mp4", "WolfgangLanger_Pexels.mp4"),
         "shared_media": ("pucker_then_mouth_open.mp4", "blink_frown_surprise.mp4", "slow_smile_glasses.mp4")}


def read_frames(path: Path, limit: int = 10_000, step: int = 1) -> List[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    index = 0
    while len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        if index % step == 0:
            frames.append(frame)
        index += 1
    capture.release()
    assert frames, f"cannot read {path}"
    return frames


@pytest.fixture(scope="module")
def models() -> Path:
    """The exported models (the export cache, brought up to date)."""
    export_models()
    return models_dir()


@pytest.fixture(scope="module")
def onnx_backend() -> OnnxLandmarks:
    """One single-face backend shared by the tests (reset() before use)."""
    backend = make_backend("onnx", threads=1)
    yield backend
    backend.close()


@pytest.mark.parametrize("folder,clip", [(f, c) for f, clips in CLIPS.items() for c in clips])
def test_landmarks_match_mediapipe(request: pytest.FixtureRequest, onnx_backend: OnnxLandmarks,
                                   folder: str, clip: str) -> None:
    frames = read_frames(request.getfixturevalue(folder) / clip, PARITY_FRAMES)
    onnx_backend.reset()
    reference = make_backend("mediapipe")
    errors = []
    for index, frame in enumerate(frames):
        ours, theirs = onnx_backend.process(frame), reference.process(frame)
        assert (ours is None) == (theirs is None), f"{clip} frame {index}: face found by one backend only"
        if ours is None:
            continue
        assert ours.points.shape == (NUM_LANDMARKS, 3) and 0.9 < ours.confidence <= 1.0
        iod = np.linalg.norm(theirs.points[33, :2] - theirs.points[263, :2])
        errors.append(np.linalg.norm(ours.points[:, :2] - theirs.points[:, :2], axis=1).mean() / iod)
        z_error = np.abs(ours.points[:, 2] - theirs.points[:, 2]).mean() / iod
        assert z_error < FRAME_TOL_IOD, f"{clip} frame {index}: z off by {z_error:.4f} IOD"
        assert ours.box == (*ours.points[:, :2].min(axis=0), *ours.points[:, :2].max(axis=0))
    reference.close()
    assert errors, f"{clip}: no face in the first {len(frames)} frames"
    assert max(errors) < FRAME_TOL_IOD, f"{clip}: worst frame {max(errors):.4f} IOD"
    assert np.mean(errors) < CLIP_TOL_IOD, f"{clip}: mean {np.mean(errors):.4f} IOD"


def test_detector_matches_mediapipe_on_several_faces(sample_media: Path, models: Path) -> None:
    image = cv2.imread(str(sample_media / "multi_face.jpg"))
    detector = FaceDetector(create_session(models / FACE_DETECTOR.onnx_name, "cpu", 1, FACE_DETECTOR.input_range))
    ours = detector.detect(image)
    assert len(ours) >= 3, f"{len(ours)} faces detected"
    boxes = np.stack([d.box for d in ours])
    for i, box in enumerate(boxes):
        assert (np.delete(box_iou(box, boxes), i) < 0.1).all(), "overlapping detections left after NMS"
    height, width = image.shape[:2]
    with mp.solutions.face_detection.FaceDetection(model_selection=0) as reference:
        theirs = reference.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).detections
    assert len(theirs) == len(ours)
    for detection, reference_detection in zip(ours, theirs):
        rel = reference_detection.location_data.relative_bounding_box
        expected = np.array([rel.xmin, rel.ymin, rel.xmin + rel.width, rel.ymin + rel.height]) * [width, height, width, height]
        assert np.abs(detection.box - expected).max() < 1.0
        keypoints = [(k.x * width, k.y * height) for k in reference_detection.location_data.relative_keypoints]
        assert np.abs(detection.keypoints - keypoints).max() < 1.0
        assert abs(detection.score - reference_detection.score[0]) < 1e-3


def test_anchor_layout() -> None:
    anchors = ssd_anchors()
    assert anchors.shape == (896, 2)
    assert np.allclose(anchors[:2], [[4, 4], [4, 4]]) and np.allclose(anchors[2], [12, 4])  # stride 8, 2 per cell
    assert np.allclose(anchors[512:518], [[8, 8]] * 6) and np.allclose(anchors[-1], [120, 120])  # stride 16, 6 per cell


def test_tracking_skips_the_detector(sample_media: Path, onnx_backend: OnnxLandmarks) -> None:
    frames = read_frames(sample_media / "single_face.mp4", 30)
    onnx_backend.reset()
    detections, runs = onnx_backend.detector.runs, onnx_backend.landmark_runs
    assert all(onnx_backend.process(frame) is not None for frame in frames)
    assert onnx_backend.detector.runs - detections == 1
    assert onnx_backend.landmark_runs - runs == len(frames)
    assert onnx_backend.timings_ms["detect"] < onnx_backend.timings_ms["landmarks"]


def test_periodic_redetection_keeps_one_track(sample_media: Path) -> None:
    frames = read_frames(sample_media / "single_face.mp4", 30)
    backend = make_backend("onnx", threads=1, redetect_interval=10, max_faces=2)
    assert [len(backend.process_all(frame)) for frame in frames] == [1] * len(frames)
    backend.finish_frame()  # the last frame's search (late_detection)
    assert backend.detector.runs == len(frames)  # max_faces=2 with one face: searched every frame
    backend = make_backend("onnx", threads=1, redetect_interval=10)
    assert all(backend.process(frame) is not None for frame in frames)
    assert backend.detector.runs == 3  # frames 0, 10, 20


def test_no_face_gives_none(sample_media: Path, onnx_backend: OnnxLandmarks) -> None:
    frames = read_frames(sample_media / "no_face.mp4", 20)
    onnx_backend.reset()
    runs = onnx_backend.detector.runs
    assert [onnx_backend.process(frame) for frame in frames] == [None] * len(frames)
    assert onnx_backend.detector.runs - runs == len(frames)


def test_confidence_drops_when_the_face_leaves(sample_media: Path, onnx_backend: OnnxLandmarks) -> None:
    frames = read_frames(sample_media / "face_noface.mov")
    onnx_backend.reset()
    found = [onnx_backend.process(frame) is not None for frame in frames]
    gone = found.index(False)
    assert gone > 10 and not any(found[gone:]), "the face should be found first, then lost for good"
    keeping = make_backend("onnx", threads=1, min_tracking_confidence=0.0)  # never drops the track
    confidence = [keeping.process(frame).confidence for frame in frames[:gone + 5]]
    assert min(confidence[:gone]) > 0.9
    assert max(confidence[gone:]) < 0.5


def test_several_faces_in_one_frame(sample_media: Path) -> None:
    frames = read_frames(sample_media / "single_face.mp4", step=17)[:4]
    height, width = frames[0].shape[:2]
    mosaic = np.vstack([np.hstack(frames[:2]), np.hstack(frames[2:])])
    backend = make_backend("onnx", threads=1, max_faces=8)
    for _ in range(3):
        faces = backend.process_all(mosaic)
        backend.finish_frame()
    assert len(faces) == 4 and backend.detector.runs == 3  # fewer than max_faces: searching every frame

    def tile(box: tuple) -> tuple:
        return int((box[1] + box[3]) / 2 // height), int((box[0] + box[2]) / 2 // width)

    assert sorted(tile(face.box) for face in faces) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    single = make_backend("onnx", threads=1)
    for face in faces:
        row, col = tile(face.box)
        single.reset()
        for _ in range(3):
            alone = single.process(frames[2 * row + col])
        iod = np.linalg.norm(alone.points[33, :2] - alone.points[263, :2])
        shifted = face.points[:, :2] - [col * width, row * height]
        assert np.linalg.norm(shifted - alone.points[:, :2], axis=1).mean() / iod < CLIP_TOL_IOD
    assert len(make_backend("onnx", threads=1, max_faces=2).process_all(mosaic)) == 2


def test_late_detection_tracks_a_new_face_from_the_next_frame(sample_media: Path) -> None:
    """A second face comes into view while one is tracked: with late_detection the search runs in
    finish_frame (or first thing in the next frame), not before the frame's landmarks, and the new
    face is tracked from the next frame, where it matches the face found the old way."""
    frames = read_frames(sample_media / "single_face.mp4", 6)
    blank = np.zeros_like(frames[0])
    clip = [np.hstack([f, blank]) for f in frames[:3]] + [np.hstack([f, f]) for f in frames[3:]]
    early = make_backend("onnx", threads=1, max_faces=2, late_detection=False)
    late = make_backend("onnx", threads=1, max_faces=2)  # the default
    lazy = make_backend("onnx", threads=1, max_faces=2)  # finish_frame never called
    counts = {"early": [], "late": [], "lazy": []}
    for index, frame in enumerate(clip):
        faces = {"early": early.process_all(frame), "lazy": lazy.process_all(frame)}
        runs = late.detector.runs
        faces["late"] = late.process_all(frame)
        assert late.detector.runs - runs == (index == 0)  # only without a tracked face: before the landmarks
        late.finish_frame()
        assert late.detector.runs - runs == (len(faces["late"]) < 2)  # searched while fewer than max_faces
        for name, found in faces.items():
            counts[name].append(len(found))
        for a, b in zip(faces["late"], faces["lazy"]):
            assert np.array_equal(a.points, b.points)  # the same faces, whenever the search ran
    assert counts == {"early": [1, 1, 1, 2, 2, 2], "late": [1, 1, 1, 1, 2, 2], "lazy": [1, 1, 1, 1, 2, 2]}
    for a, b in zip(faces["early"], faces["late"]):
        iod = np.linalg.norm(a.points[33, :2] - a.points[263, :2])
        assert np.linalg.norm(a.points[:, :2] - b.points[:, :2], axis=1).mean() / iod < FRAME_TOL_IOD


def test_cpu_rewrites_keep_the_outputs(sample_media: Path, models: Path) -> None:
    original = onnx.load(str(models / FACE_LANDMARKS.onnx_name))
    rewritten = optimize_for_cpu(original)
    ops = {node.op_type for node in rewritten.graph.node}
    assert not ops & {"PRelu", "GridSample", "Pad"}
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sessions = [ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
                for m in (original, rewritten)]
    for frame in read_frames(sample_media / "WolfgangLanger_Pexels.mp4", 3, step=100):
        crop = cv2.resize(frame[:, 140:500], (192, 192))[None, :, :, ::-1].astype(np.float32) / 255.0
        before, after = (s.run(None, {"image": crop}) for s in sessions)
        for a, b in zip(before, after):
            assert np.abs(a - b).max() < 1e-3


def test_detector_cpu_session_keeps_the_outputs(sample_media: Path, models: Path) -> None:
    """The detector's session (uint8 BGR input folded into the first convolution, channel Pads as
    identity convolutions) gives the exported model's outputs on the float RGB image."""
    path = models / FACE_DETECTOR.onnx_name
    rewritten = optimize_for_cpu(uint8_bgr_input(onnx.load(str(path)), FACE_DETECTOR.input_range))
    assert not {node.op_type for node in rewritten.graph.node} & {"Pad", "Gather", "Mul"}
    options = ort.SessionOptions()
    options.log_severity_level = 3
    original = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    fast = create_session(path, "cpu", 1, FACE_DETECTOR.input_range)
    for frame in read_frames(sample_media / "WolfgangLanger_Pexels.mp4", 3, step=100):
        bgr = cv2.resize(frame[:, 140:500], (128, 128))
        rgb = bgr[None, :, :, ::-1].astype(np.float32) / np.float32(127.5) - np.float32(1)
        for a, b in zip(original.run(None, {"image": rgb}), fast.run(None, {"image": bgr[None]})):
            assert np.abs(a - b).max() < 1e-3


def test_mesh_assembly_follows_the_refinement_rules() -> None:
    rng = np.random.default_rng(3)
    outputs = {"landmarks": rng.normal(size=(1, 1, 1, 1404)), "lips": rng.normal(size=160),
               "left_eye": rng.normal(size=142), "right_eye": rng.normal(size=142),
               "left_iris": rng.normal(size=10), "right_iris": rng.normal(size=10)}
    points = mesh_refinement.assemble(outputs)
    mesh = outputs["landmarks"].reshape(468, 3)
    assert points.shape == (478, 3)
    assert np.array_equal(points[61, :2], outputs["lips"][:2]) and points[61, 2] == mesh[61, 2]
    assert np.array_equal(points[263, :2], outputs["right_eye"][:2])
    assert np.array_equal(points[473:, :2], outputs["right_iris"].reshape(5, 2))
    assert np.allclose(points[468:473, 2], mesh[list(mesh_refinement.LEFT_EYE[:16]), 2].mean())
    untouched = sorted(set(range(468)) - set(mesh_refinement.LIPS) - set(mesh_refinement.LEFT_EYE)
                       - set(mesh_refinement.RIGHT_EYE))
    assert np.array_equal(points[untouched], mesh[untouched])


@pytest.mark.parametrize("threads", [1, 2, 0])
def test_several_threads_do_not_spin(threads: int) -> None:
    options = session_options(threads)
    assert options.intra_op_num_threads == threads
    if threads == 1:  # no thread pool: onnxruntime's default stays
        with pytest.raises(RuntimeError, match="allow_spinning"):
            options.get_session_config_entry("session.intra_op.allow_spinning")
    else:
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown device"):
        providers_for("tpu")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ValueError, match="cuda"):
            providers_for("cuda")
    with pytest.raises(FileNotFoundError, match="nothing.onnx"):
        make_backend("onnx", landmark_model=str(tmp_path / "nothing.onnx"))
    with pytest.raises(ValueError, match="max_faces"):
        make_backend("onnx", max_faces=0)
    with pytest.raises(ValueError, match="BGR uint8"):
        make_backend("onnx").process(np.zeros((4, 4), np.uint8))


def test_a_missing_model_is_one_line_naming_the_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The live backend loads exported models only; a missing one names the command that exports it."""
    monkeypatch.setenv("HUMIMIC_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"face_detector.onnx, face_landmarks.onnx missing .*export_onnx"):
        OnnxLandmarks()
