"""Face mesh contours derived from the canonical mesh, and the rviz markers built from them."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from humimic_perception.face_contours import CONTOUR_ANCHORS, contour_pairs, contours
from humimic_perception.gaze import Gaze, direction
from humimic_core.head_frame import FACING_CAMERA
from humimic_perception.mesh_markers import GAZE_LENGTH, MeshMarkers

CLOSED = ("lips_outer", "lips_inner", "right_eye", "left_eye", "face_oval", "right_iris", "left_iris")


def _is_cycle(pairs: np.ndarray) -> bool:
    degree = Counter(pairs.ravel().tolist())
    if set(degree.values()) != {2}:
        return False
    neighbours = {v: set() for v in degree}
    for a, b in pairs.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    seen, todo = set(), [int(pairs[0, 0])]
    while todo:
        vertex = todo.pop()
        if vertex not in seen:
            seen.add(vertex)
            todo.extend(neighbours[vertex] - seen)
    return seen == set(degree)


def test_contours_are_closed_loops_and_brows_are_lines_through_their_anchors():
    found = contours()
    for name in CLOSED:
        assert _is_cycle(found[name]), name
    assert len(found["face_oval"]) == 36 and {10, 152, 234, 454} <= set(found["face_oval"].ravel())
    for name, anchors in CONTOUR_ANCHORS.items():
        assert set(anchors) <= set(found[name].ravel()), name
        if name not in CLOSED:
            degree = Counter(found[name].ravel().tolist())
            assert sorted(degree.values()).count(1) == 2 and degree[anchors[0]] == degree[anchors[-1]] == 1
    pairs = contour_pairs()
    assert pairs.shape == (132, 2) and (pairs[:, 0] < pairs[:, 1]).all() and pairs.max() == 477


def test_derived_contours_match_mediapipes_drawing_contours():
    connections = pytest.importorskip("mediapipe.python.solutions.face_mesh_connections")
    reference = {tuple(sorted(p)) for p in connections.FACEMESH_CONTOURS | connections.FACEMESH_IRISES}
    assert {tuple(p) for p in contour_pairs().tolist()} == reference


def _header(sec: int) -> Header:
    return Header(stamp=Time(sec=sec, nanosec=5), frame_id="camera_optical_frame")


def test_markers_carry_the_mesh_points_and_gaze_in_the_camera_frame():
    rng = np.random.default_rng(0)
    markers = MeshMarkers()
    pairs = contour_pairs()
    rotation = FACING_CAMERA
    gaze = Gaze((0.2, -0.1), (0.25, 0.05))
    for sec in (1, 2):  # the same messages refilled
        points = rng.normal(size=(478, 3)) * 0.05 + [0.0, 0.0, 0.6]
        array = markers.update(_header(sec), points, rotation, gaze)
        lines, dots, *arrows = array.markers
        assert all(m.header.stamp.sec == sec and m.header.frame_id == "camera_optical_frame" for m in array.markers)
        assert lines.type == Marker.LINE_LIST and dots.type == Marker.POINTS
        assert np.allclose([(p.x, p.y, p.z) for p in lines.points], points[pairs.ravel()])
        assert np.allclose([(p.x, p.y, p.z) for p in dots.points], points)
        for arrow, iris, angles in zip(arrows, (468, 473), (gaze.right, gaze.left)):
            start, end = (np.array([p.x, p.y, p.z]) for p in arrow.points)
            assert arrow.type == Marker.ARROW and np.allclose(start, points[iris])
            assert np.allclose(end - start, GAZE_LENGTH * rotation @ direction(*angles))
    assert len({(m.ns, m.id) for m in array.markers}) == 4
    cleared = markers.clear(_header(3)).markers
    assert len(cleared) == 1 and cleared[0].action == Marker.DELETEALL and cleared[0].header.stamp.sec == 3
    with pytest.raises(ValueError, match="478 landmarks"):
        markers.update(_header(4), np.zeros((468, 3)), rotation, gaze)
