"""What rviz needs to show the person beside the robot: the head pose as a TF transform (camera
optical frame -> head, the frame of /face/gaze) and the displays of the rviz config."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from std_msgs.msg import Header

from humimic_core.head_frame import quaternion_to_matrix
from humimic_core.topics import TOPICS
from humimic_perception.head_pose import HeadPose
from humimic_perception.ros_convert import HEAD_FRAME, gaze_msg, head_pose_msg, head_transform_msg

ROOT = Path(__file__).resolve().parents[1]


def turned_head(yaw: float = 0.4) -> HeadPose:
    """A head 60 cm in front of the camera, facing it, turned by `yaw` about its own z (up) axis."""
    facing = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])  # columns: head x, y, z in camera
    turn = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    return HeadPose(rotation=facing @ turn, translation=np.array([0.05, -0.02, 0.6]), rms_error_px=0.5)


def test_head_transform_places_head_points_where_the_pose_says():
    pose = turned_head()
    header = Header(frame_id="camera_optical_frame")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    tf = head_transform_msg(pose, header)
    assert (tf.header.frame_id, tf.child_frame_id) == ("camera_optical_frame", HEAD_FRAME)
    assert (tf.header.stamp.sec, tf.header.stamp.nanosec) == (12, 345)
    q = tf.transform.rotation
    rotation = quaternion_to_matrix((q.x, q.y, q.z, q.w))
    t = tf.transform.translation
    # TF: a point p in the child frame (head) is R p + t in the parent frame (camera)
    nose_tip = np.array([0.1, 0.0, 0.0])  # 10 cm ahead of the head origin
    in_camera = rotation @ nose_tip + np.array([t.x, t.y, t.z])
    np.testing.assert_allclose(in_camera, pose.rotation @ nose_tip + pose.translation, atol=1e-9)
    # the same pose as /face/head_pose, and /face/gaze lives in the frame the transform creates
    p = head_pose_msg(pose, header).pose
    assert (p.position.x, p.position.y, p.position.z) == (t.x, t.y, t.z)
    assert gaze_msg((0.1, 0.0), header).header.frame_id == tf.child_frame_id


def test_head_transform_names_the_camera_frame_when_the_image_has_none():
    assert head_transform_msg(turned_head(), Header(frame_id="")).header.frame_id == "camera_optical_frame"


def rviz_displays() -> dict:
    config = yaml.safe_load((ROOT / "rviz" / "humimic.rviz").read_text())
    return {d["Name"]: d for d in config["Visualization Manager"]["Displays"]}


@pytest.mark.parametrize("topic", ["/face/boxes", "/face/mesh_markers", "/face/landmarks", "/robot_description"])
def test_rviz_config_shows_the_face_topics(topic):
    shown = {(d.get("Topic") or d.get("Description Topic") or {}).get("Value") for d in rviz_displays().values()}
    assert topic in shown and topic in TOPICS


def test_rviz_config_shows_tf_with_the_person_head():
    tf = rviz_displays()["TF"]
    assert tf["Enabled"] and tf["Frames"][HEAD_FRAME]["Value"] and tf["Frames"]["camera_optical_frame"]["Value"]
