"""Conversions between numpy/perception results and the standard ROS messages of the camera and
perception nodes (messages only, no rclpy: usable in tests and offline tools)."""
from __future__ import annotations

import array
from typing import Dict, Tuple

import cv2
import numpy as np
from geometry_msgs.msg import PoseStamped, TransformStamped, Vector3Stamped
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2, PointField
from std_msgs.msg import Header

from humimic_perception.head_pose import HeadPose, rotation_to_quaternion
from humimic_perception.intrinsics import Intrinsics

#: Encodings accepted from a camera topic, with their channel count and conversion to BGR.
_TO_BGR = {"bgr8": (3, None), "rgb8": (3, cv2.COLOR_RGB2BGR), "mono8": (1, cv2.COLOR_GRAY2BGR)}


def image_to_msg(bgr: np.ndarray, header: Header) -> Image:
    """A bgr8 Image of a BGR uint8 (H, W, 3) array.

    The pixels go in as an array.array set after construction: the message's constructor copies
    its ``data`` argument once more, and its setter checks it (half the time of this function)."""
    height, width = bgr.shape[:2]
    msg = Image(header=header, height=height, width=width, encoding="bgr8", is_bigendian=0, step=width * 3)
    msg.data = array.array("B", np.ascontiguousarray(bgr, dtype=np.uint8).tobytes())
    return msg


def image_from_msg(msg: Image) -> np.ndarray:
    """BGR uint8 (H, W, 3) array of a bgr8/rgb8/mono8 Image; ValueError says what is wrong."""
    if msg.encoding not in _TO_BGR:
        raise ValueError(f"unsupported encoding {msg.encoding!r} (expected one of {', '.join(_TO_BGR)})")
    channels, conversion = _TO_BGR[msg.encoding]
    if msg.width == 0 or msg.height == 0 or msg.step < msg.width * channels:
        raise ValueError(f"bad image geometry {msg.width}x{msg.height} step {msg.step} for {msg.encoding}")
    if len(msg.data) < msg.step * msg.height:
        raise ValueError(f"image data has {len(msg.data)} bytes, {msg.width}x{msg.height} step {msg.step} "
                         f"needs {msg.step * msg.height}")
    rows = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * msg.height).reshape(msg.height, msg.step)
    image = rows[:, :msg.width * channels].reshape(msg.height, msg.width, channels)
    return cv2.cvtColor(image, conversion) if conversion is not None else image


def camera_info_msg(intrinsics: Intrinsics, header: Header) -> CameraInfo:
    """CameraInfo of an undistorted pinhole camera."""
    return CameraInfo(header=header, width=intrinsics.width, height=intrinsics.height,
                      distortion_model="plumb_bob", d=[0.0] * 5, k=intrinsics.k(),
                      r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], p=intrinsics.p())


def intrinsics_from_msg(msg: CameraInfo) -> Intrinsics:
    return Intrinsics.from_k(msg.width, msg.height, list(msg.k))


def action_units_msg(action_units: Dict[str, float], header: Header) -> JointState:
    """AU intensities as a JointState (name = AU codes, position = 0..5); empty = no face."""
    return JointState(header=header, name=list(action_units), position=[float(v) for v in action_units.values()])


def head_pose_msg(pose: HeadPose, header: Header) -> PoseStamped:
    msg = PoseStamped(header=header)
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in pose.translation)
    q = msg.pose.orientation
    q.x, q.y, q.z, q.w = rotation_to_quaternion(pose.rotation)
    return msg


#: frame_id of gaze messages: the head frame (x forward out of the face, y the person's left, z up).
HEAD_FRAME = "head"
#: the camera frame when a frame's header names none (the camera node's default frame_id)
CAMERA_FRAME = "camera_optical_frame"


def head_transform_msg(pose: HeadPose, header: Header) -> TransformStamped:
    """The person's head as a TF transform from the frame's camera optical frame to HEAD_FRAME, so
    TF places /face/gaze (frame "head") beside /face/landmarks (camera frame) and the robot."""
    msg = TransformStamped(header=Header(stamp=header.stamp, frame_id=header.frame_id or CAMERA_FRAME),
                           child_frame_id=HEAD_FRAME)
    t = msg.transform.translation
    t.x, t.y, t.z = (float(v) for v in pose.translation)
    q = msg.transform.rotation
    q.x, q.y, q.z, q.w = rotation_to_quaternion(pose.rotation)
    return msg


def gaze_msg(angles: Tuple[float, float], header: Header) -> Vector3Stamped:
    """Gaze (yaw, pitch) in radians in the head frame as x, y (z = 0), stamped like ``header``."""
    msg = Vector3Stamped(header=Header(stamp=header.stamp, frame_id=HEAD_FRAME))
    msg.vector.x, msg.vector.y = float(angles[0]), float(angles[1])
    return msg


def cloud_msg(points: np.ndarray, header: Header) -> PointCloud2:
    """An unorganised x, y, z float32 PointCloud2 of (N, 3) points."""
    data = np.ascontiguousarray(points, dtype="<f4")
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
    return PointCloud2(header=header, height=1, width=len(data), fields=fields, is_bigendian=False,
                       point_step=12, row_step=12 * len(data), data=data.tobytes(),
                       is_dense=bool(np.isfinite(data).all()))


def cloud_from_msg(msg: PointCloud2) -> np.ndarray:
    """(N, 3) float32 points of a cloud made by cloud_msg."""
    return np.frombuffer(msg.data, dtype="<f4").reshape(-1, 3)
