"""The face mesh as rviz markers (visualization_msgs/MarkerArray), in the camera optical frame.

Markers (namespace, id): ("face_mesh", 0) LINE_LIST of the mesh contours (face_contours), ("face_mesh",
1) POINTS of all landmarks, ("gaze", 0 / 1) ARROW of the right / left eye's gaze from its iris
centre. A face-less frame gets a single DELETEALL. ``face_boxes`` draws every face found, the
imitated one highlighted, on /face/boxes. The messages are built once and refilled in
place per frame (messages only, no rclpy).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from humimic_perception.face_contours import contour_pairs
from humimic_perception.gaze import Gaze, direction
from humimic_perception.intrinsics import Intrinsics
from humimic_perception.landmarks import NUM_LANDMARKS
from humimic_perception.perception import IRIS_CENTRES

LINE_WIDTH = 0.0008  # m
POINT_SIZE = 0.0015  # m
GAZE_LENGTH = 0.05  # m
MESH_COLOUR = ColorRGBA(r=0.1, g=0.9, b=0.6, a=1.0)
POINT_COLOUR = ColorRGBA(r=0.9, g=0.9, b=0.9, a=0.8)
GAZE_COLOUR = ColorRGBA(r=1.0, g=0.85, b=0.0, a=1.0)


def _marker(ns: str, marker_id: int, kind: int, colour: ColorRGBA, points: int) -> Marker:
    marker = Marker(ns=ns, id=marker_id, type=kind, action=Marker.ADD, color=colour)
    marker.pose.orientation.w = 1.0
    marker.points = [Point() for _ in range(points)]
    return marker


def _fill(marker: Marker, values: np.ndarray) -> None:
    for point, (x, y, z) in zip(marker.points, values.tolist()):
        point.x, point.y, point.z = x, y, z


class MeshMarkers:
    """Reusable marker messages of one face: ``update`` fills them, ``clear`` deletes them all."""

    def __init__(self, landmarks: int = NUM_LANDMARKS) -> None:
        self._pairs = contour_pairs().ravel()
        self._lines = _marker("face_mesh", 0, Marker.LINE_LIST, MESH_COLOUR, len(self._pairs))
        self._lines.scale.x = LINE_WIDTH
        self._points = _marker("face_mesh", 1, Marker.POINTS, POINT_COLOUR, landmarks)
        self._points.scale.x = self._points.scale.y = POINT_SIZE
        self._gaze: List[Marker] = []
        for marker_id in range(2):
            arrow = _marker("gaze", marker_id, Marker.ARROW, GAZE_COLOUR, 2)
            arrow.scale.x, arrow.scale.y, arrow.scale.z = 0.002, 0.004, 0.008  # shaft, head diameter, head
            self._gaze.append(arrow)
        self._array = MarkerArray(markers=[self._lines, self._points, *self._gaze])
        self._delete_all = Marker(action=Marker.DELETEALL)
        self._cleared = MarkerArray(markers=[self._delete_all])

    def update(self, header: Header, points: np.ndarray, rotation: np.ndarray, gaze: Optional[Gaze]) -> MarkerArray:
        """Markers of landmarks ``points`` (N, 3; metres, camera optical frame) with the head
        ``rotation`` in that frame and the face's gaze (None: the arrows keep zero length)."""
        if len(points) != len(self._points.points):
            raise ValueError(f"expected {len(self._points.points)} landmarks, got {len(points)}")
        _fill(self._lines, points[self._pairs])
        _fill(self._points, points)
        for arrow, iris, angles in zip(self._gaze, IRIS_CENTRES, (gaze.right, gaze.left) if gaze else (None, None)):
            start = points[iris]
            end = start + GAZE_LENGTH * (rotation @ direction(*angles)) if angles is not None else start
            _fill(arrow, np.stack([start, end]))
        for marker in self._array.markers:
            marker.header = header
        return self._array

    def clear(self, header: Header) -> MarkerArray:
        """A DELETEALL of every marker (a frame without a face)."""
        self._delete_all.header = header
        return self._cleared


#: Typical face width (m) used to place boxes of faces without a head pose at a plausible depth.
FACE_WIDTH = 0.15
CHOSEN_COLOUR = ColorRGBA(r=0.1, g=0.9, b=0.3, a=1.0)
OTHER_COLOUR = ColorRGBA(r=0.9, g=0.6, b=0.1, a=1.0)


def face_boxes(header: Header, boxes: Sequence[Tuple[float, float, float, float]], ids: Sequence[int],
               chosen: Optional[int], intrinsics: Intrinsics) -> MarkerArray:
    """Every face's box as a LINE_STRIP rectangle (namespace "faces", id = the face's track id) in
    the camera optical frame, at the depth a FACE_WIDTH-wide face of that pixel width has; the
    imitated face green, the others orange; a DELETEALL first, so faces that left disappear."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for index, ((x0, y0, x1, y1), track) in enumerate(zip(boxes, ids)):
        z = intrinsics.fx * FACE_WIDTH / max(x1 - x0, 1.0)
        marker = _marker("faces", int(track), Marker.LINE_STRIP,
                         CHOSEN_COLOUR if index == chosen else OTHER_COLOUR, 5)
        marker.header = header
        marker.scale.x = LINE_WIDTH * 3
        corners = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], dtype=float)
        _fill(marker, np.column_stack([(corners[:, 0] - intrinsics.cx) * z / intrinsics.fx,
                                       (corners[:, 1] - intrinsics.cy) * z / intrinsics.fy,
                                       np.full(5, z)]))
        markers.append(marker)
    return MarkerArray(markers=markers)
