"""The ROS4HRI (REP-155) conversion: the mesh-to-ROS4HRI landmark correspondence, ids, image
coordinates, FACS, expressions and the gaze frame."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from humimic_perception.head_pose import canonical_face_model
from humimic_perception.hri import (EXPRESSIONS, FACS_SIZE, MESH_TO_ROS4HRI, MIRROR, FaceTrack, expression, facs,
                                    face_frames, face_topic, gaze_rotation, normalized_landmarks, region_of_interest)
from humimic_perception.intrinsics import Intrinsics

#: ROS4HRI landmarks on the face's midline: menton, nose bridge and tip, subnasale, lip centres
MIDLINE = (8, 27, 28, 29, 30, 33, 51, 57, 62, 66)


def mesh() -> np.ndarray:
    """The canonical face mesh with iris centres (468 right, 473 left) at the eye-corner midpoints."""
    vertices = canonical_face_model()
    irises = np.zeros((10, 3))
    irises[0] = (vertices[33] + vertices[133]) / 2
    irises[5] = (vertices[263] + vertices[362]) / 2
    return np.vstack([vertices, irises])


def test_correspondence_has_70_distinct_mesh_landmarks():
    assert len(MESH_TO_ROS4HRI) == 70 and len(set(MESH_TO_ROS4HRI)) == 70
    assert all(0 <= i < 478 for i in MESH_TO_ROS4HRI)
    assert sorted(MIRROR) == sorted(set(range(70)) - set(MIDLINE))


def test_correspondence_is_mirror_symmetric_and_sided():
    points = mesh()[list(MESH_TO_ROS4HRI)]
    width = np.ptp(points[:, 0])
    for i in MIDLINE:
        assert abs(points[i, 0]) < 0.02 * width, f"landmark {i} is off the midline"
    for a, b in MIRROR.items():
        np.testing.assert_allclose(points[a] * [-1, 1, 1], points[b], atol=0.02 * width,
                                   err_msg=f"landmarks {a} and {b} are not mirror images")
    right = np.sign(points[36, 0])  # the right eye's outer corner (mesh 33)
    assert all(np.sign(points[i, 0]) == right for i in (*range(8), *range(17, 22), 31, 32, *range(36, 42), 48, 68))


def test_correspondence_follows_the_dlib_order():
    points = mesh()[list(MESH_TO_ROS4HRI)]
    side = -np.sign(points[36, 0])  # + towards the person's left
    jaw = points[:17, 0] * side
    assert np.all(np.diff(jaw) > 0), "the jaw runs from the right ear to the left ear"
    up = np.sign(points[27, 1] - points[8, 1])  # + towards the forehead
    assert points[8, 1] * up == min(points[:17, 1] * up), "the menton is the lowest jaw point"
    assert np.all(np.diff(points[27:31, 1] * up) < 0), "the nose bridge runs down to the tip"
    assert points[51, 1] * up > points[62, 1] * up > points[66, 1] * up > points[57, 1] * up, "lips top to bottom"
    assert points[37, 1] * up > points[41, 1] * up and points[38, 1] * up > points[40, 1] * up, "eyelids"


def test_face_ids_last_while_the_face_is_in_view():
    track = FaceTrack()
    ids = [track.update(face) for face in (True, True, False, True, True)]
    assert ids[0] == ids[1] and ids[2] is None and ids[3] == ids[4] and ids[3] != ids[0]
    assert face_topic(ids[0], "roi") == f"/humans/faces/{ids[0]}/roi"
    assert face_frames(ids[0]) == (f"face_{ids[0]}", f"gaze_{ids[0]}")


def test_landmarks_and_roi_in_normalised_image_coordinates():
    intrinsics = Intrinsics.from_fov(640, 480, 60.0)
    points = mesh() + [0.0, 0.0, 0.6]  # 60 cm in front of the camera
    landmarks = normalized_landmarks(points, intrinsics)
    assert len(landmarks) == 70 and all(c == 1.0 and 0.3 < x < 0.7 and 0.2 < y < 0.8 for x, y, c in landmarks)
    xmin, ymin, xmax, ymax = region_of_interest(points, intrinsics)
    assert 0 < xmin <= landmarks[0][0] and landmarks[16][0] <= xmax < 1
    assert xmin < xmax and ymin < ymax
    behind = points * [1, 1, -1]
    assert region_of_interest(behind, intrinsics) is None
    assert all(c == 0.0 for _, _, c in normalized_landmarks(behind, intrinsics))


def test_facs_scales_intensities_by_au_number():
    intensity, confidence = facs({"AU12": 2.5, "AU45": 5.0, "AU45_L": 5.0, "AU06": 9.0})
    assert len(intensity) == len(confidence) == FACS_SIZE
    assert intensity[12] == 0.5 and intensity[45] == 1.0 and intensity[6] == 1.0
    assert confidence[12] == 1.0 and confidence[1] == 0.0 and sum(confidence) == 3.0


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_each_prototype_gives_its_expression(name):
    found, confidence = expression({au: 4.0 for au in EXPRESSIONS[name]})
    # scared contains surprised's AUs and more: a full prototype wins over its subsets
    assert found == name and confidence > 0.5
    assert expression({})[0] == "neutral" and expression({"AU12": 0.5})[0] == "neutral"


def test_gaze_frame_looks_along_the_gaze():
    assert np.allclose(gaze_rotation(0.0, 0.0)[:, 2], [1, 0, 0]), "straight ahead: z = head x"
    assert np.allclose(gaze_rotation(0.0, 0.0)[:, 0], [0, -1, 0]), "x to the person's right"
    left = gaze_rotation(0.3, 0.0)[:, 2]
    assert left[1] > 0 and math.isclose(math.atan2(left[1], left[0]), 0.3)
    assert gaze_rotation(0.0, 0.2)[2, 2] < 0, "pitch + looks down"
    r = gaze_rotation(0.3, -0.2)
    assert np.allclose(r.T @ r, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)


def test_bridge_without_hri_msgs_says_so_in_one_line():
    try:
        import hri_msgs  # noqa: F401
        pytest.skip("hri_msgs is installed here")
    except ModuleNotFoundError:
        pass
    done = subprocess.run([sys.executable, "-m", "humimic_perception.hri_bridge_node"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "hri_bridge: hri_msgs is not installed (ROS4HRI messages: apt install ros-$ROS_DISTRO-hri-msgs)"]


class FakeMessage:
    """Stands in for an hri_msgs / tf2_msgs message (not in the PyPI wheels): keeps its fields."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


class FakePublisher:
    def __init__(self, kind, topic):
        self.kind, self.topic, self.sent = kind, topic, []

    def publish(self, msg):
        self.sent.append(msg)


@pytest.fixture
def bridge(monkeypatch):
    """The bridge node with fake hri_msgs / tf2_msgs classes and publishers that keep what they get."""
    import importlib
    import types

    import rclpy

    fakes = {}
    for module, names in (("hri_msgs.msg", ("Expression", "FacialActionUnits", "FacialLandmarks", "IdsList",
                                            "NormalizedPointOfInterest2D", "NormalizedRegionOfInterest2D")),
                          ("tf2_msgs.msg", ("TFMessage",))):
        fake = types.ModuleType(module)
        for name in names:
            setattr(fake, name, type(name, (FakeMessage,), {}))
        fakes[module] = fake
        monkeypatch.setitem(sys.modules, module.split(".")[0], types.ModuleType(module.split(".")[0]))
        monkeypatch.setitem(sys.modules, module, fake)
    import humimic_perception.hri_bridge_node as node_module

    node_module = importlib.reload(node_module)
    published = {}

    def create_publisher(self, kind, topic, qos):
        published[topic] = FakePublisher(kind, topic)
        return published[topic]

    monkeypatch.setattr(node_module.HriBridge, "create_publisher", create_publisher)
    monkeypatch.setattr(node_module.HriBridge, "destroy_publisher", lambda self, pub: published.pop(pub.topic))
    rclpy.init()
    node = node_module.HriBridge()
    yield node, published
    node.destroy_node()
    rclpy.try_shutdown()
    sys.modules.pop("humimic_perception.hri_bridge_node", None)


def test_bridge_publishes_a_face_in_the_rep155_layout(bridge):
    from geometry_msgs.msg import PoseStamped, Vector3Stamped
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Header

    from humimic_perception import ros_convert

    node, published = bridge
    header = Header(frame_id="camera_optical_frame")
    node.on_camera_info(ros_convert.camera_info_msg(Intrinsics.from_fov(640, 480, 60.0), header))
    node.on_action_units(JointState(header=header, name=["AU06", "AU12"], position=[4.0, 4.5]))
    ids = published["/humans/faces/tracked"].sent[-1].ids
    assert len(ids) == 1
    face = ids[0]
    facs_msg = published[face_topic(face, "facs")].sent[-1]
    assert facs_msg.intensity[12] == pytest.approx(0.9) and facs_msg.confidence[6] == 1.0
    assert published[face_topic(face, "expression")].sent[-1].expression == "happy"
    node.on_landmarks(ros_convert.cloud_msg((mesh() + [0.0, 0.0, 0.6]).astype(np.float32), header))
    landmarks = published[face_topic(face, "landmarks")].sent[-1]
    assert len(landmarks.landmarks) == 70 and (landmarks.width, landmarks.height) == (640, 480)
    roi = published[face_topic(face, "roi")].sent[-1]
    assert 0 < roi.xmin < roi.xmax < 1 and 0 < roi.ymin < roi.ymax < 1
    pose = PoseStamped(header=header)
    pose.pose.orientation.w = 1.0
    node.on_head_pose(pose)
    node.on_gaze(Vector3Stamped(header=header))
    frames = [(t.header.frame_id, t.child_frame_id) for m in published["/tf"].sent for t in m.transforms]
    assert frames == [("camera_optical_frame", f"face_{face}"), (f"face_{face}", f"gaze_{face}")]
    # the face leaves: an empty list, its topics go away; it comes back with a new id
    node.on_action_units(JointState(header=header))
    assert published["/humans/faces/tracked"].sent[-1].ids == []
    assert not any(topic.startswith(f"/humans/faces/{face}/") for topic in published)
    node.on_action_units(JointState(header=header, name=["AU12"], position=[1.0]))
    assert published["/humans/faces/tracked"].sent[-1].ids not in ([], [face])
