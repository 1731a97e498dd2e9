"""Several faces: all are found and published as boxes, one is imitated, identities are stable."""
from __future__ import annotations

import cv2
import numpy as np
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from humimic_perception.face_selection import FaceSelector
from humimic_perception.intrinsics import Intrinsics
from humimic_perception.landmarks import make_backend
from humimic_perception.mesh_markers import face_boxes
from humimic_perception.perception import FacePerception, draw_debug, face_box


def frame(path, index: int = 0) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = cap.read()
    assert ok, f"cannot read frame {index} of {path}"
    return cv2.resize(image, (640, 360))


def test_all_faces_found_one_chosen_ids_stable(sample_media):
    # three real people in one picture, at different sizes
    image = np.zeros((720, 1280, 3), np.uint8)
    image[:360, :640] = frame(sample_media / "single_face.mp4")
    image[:360, 640:] = frame(sample_media / "WolfgangLanger_Pexels.mp4", 200)
    image[360:, 200:200 + 480] = cv2.resize(frame(sample_media / "face_noface.mov"), (480, 360))[:, :]
    intrinsics = Intrinsics.from_fov(image.shape[1], image.shape[0], 60.0)
    perception = FacePerception(make_backend("onnx", max_faces=5), selector=FaceSelector("largest"))
    try:
        first = perception.process(image, intrinsics)
        second = perception.process(image, intrinsics)
    finally:
        perception.close()
    assert len(first.faces) >= 2 and len(set(first.face_ids)) == len(first.faces)
    areas = [(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in map(face_box, first.faces)]
    assert first.chosen == int(np.argmax(areas)) and first.face
    assert second.face_ids == first.face_ids and second.chosen == first.chosen, "identities change on a still image"
    markers = face_boxes(Header(frame_id="camera_optical_frame"), [face_box(f) for f in first.faces],
                         first.face_ids, first.chosen, intrinsics).markers
    assert markers[0].action == Marker.DELETEALL and len(markers) == 1 + len(first.faces)
    assert all(m.points[0].z > 0.2 for m in markers[1:]), "boxes placed in front of the camera"
    assert not np.array_equal(draw_debug(image, first, intrinsics), image)


def test_no_face_chooses_nothing(sample_media):
    cap = cv2.VideoCapture(str(sample_media / "no_face.mp4"))
    ok, frame = cap.read()
    assert ok
    perception = FacePerception(make_backend("onnx"))
    try:
        result = perception.process(frame, Intrinsics.from_fov(frame.shape[1], frame.shape[0], 60.0))
    finally:
        perception.close()
    assert result.faces == [] and result.chosen is None and not result.face
