"""Build small recordings with real camera frames and known JointState values, for tests of the
tools that read recordings (dataset export, report)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np

from humimic_experiments.bag_io import SegmentedBagWriter, serialize, typestore

T = typestore().types
FRAME_NS = 33_333_333


def _header(stamp: int, frame_id: str = "camera_optical_frame"):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9),
                                    frame_id=frame_id)


def _joint_state(stamp: int, values: Dict[str, float]) -> bytes:
    msg = T["sensor_msgs/msg/JointState"](header=_header(stamp, ""), name=list(values),
                                          position=np.array(list(values.values()), float),
                                          velocity=np.array([], float), effort=np.array([], float))
    return serialize(msg, "sensor_msgs/msg/JointState")


def _image(stamp: int, bgr: np.ndarray) -> bytes:
    h, w, _ = bgr.shape
    msg = T["sensor_msgs/msg/Image"](header=_header(stamp), height=h, width=w, encoding="bgr8", is_bigendian=0,
                                     step=w * 3, data=np.ascontiguousarray(bgr).reshape(-1))
    return serialize(msg, "sensor_msgs/msg/Image")


def _pose(stamp: int, quaternion) -> bytes:
    p = T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.6),
                                    orientation=T["geometry_msgs/msg/Quaternion"](*quaternion))
    return serialize(T["geometry_msgs/msg/PoseStamped"](header=_header(stamp), pose=p), "geometry_msgs/msg/PoseStamped")


def make_recording(video: Path, out: Path, frames: int = 12) -> List[Dict[str, object]]:
    """Record `frames` real frames with AUs (every 4th frame without a face), commands and states.
    Returns what was written per frame, for comparisons."""
    cap = cv2.VideoCapture(str(video))
    truth = []
    # head looking straight at the camera (humimic_core.head_frame.FACING_CAMERA) as x, y, z, w
    facing = (0.5, 0.5, -0.5, 0.5)
    with SegmentedBagWriter(out, "mcap", split_seconds=0.2) as bag:
        for i in range(frames):
            ok, img = cap.read()
            assert ok, f"{video} has fewer than {frames} frames"
            stamp = 5 * 10**9 + i * FRAME_NS
            face = i % 4 != 3
            aus = {"AU12": 0.4 * i, "AU12_R": 0.4 * i, "AU26": max(0.0, 5.0 - 0.4 * i)} if face else {}
            command = {"jaw": 0.01 * i, "lip_corner_left": 0.02 * i}
            state = {"jaw": 0.01 * i - 0.005, "lip_corner_left": 0.02 * i - 0.01}
            bag.write("/camera/image_raw", "sensor_msgs/msg/Image", stamp + 1_000_000, _image(stamp, img))
            bag.write("/face/action_units", "sensor_msgs/msg/JointState", stamp + 9_000_000, _joint_state(stamp, aus))
            if face:
                bag.write("/face/head_pose", "geometry_msgs/msg/PoseStamped", stamp + 9_000_000, _pose(stamp, facing))
            bag.write("/joint_states", "sensor_msgs/msg/JointState", stamp + 10_000_000,
                      _joint_state(stamp + 10_000_000, state))
            bag.write("/joint_commands", "sensor_msgs/msg/JointState", stamp + 11_000_000,
                      _joint_state(stamp, command))
            truth.append({"stamp": stamp, "image": img, "aus": aus, "command": command, "state": state})
    return truth


def _cloud(stamp: int, points: np.ndarray) -> bytes:
    fields = [T["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")]
    data = np.ascontiguousarray(points, "<f4").reshape(-1).view(np.uint8)
    msg = T["sensor_msgs/msg/PointCloud2"](header=_header(stamp), height=1, width=len(points), fields=fields,
                                           is_bigendian=False, point_step=12, row_step=12 * len(points), data=data,
                                           is_dense=True)
    return serialize(msg, "sensor_msgs/msg/PointCloud2")


def make_watched_recording(video: Path, out: Path, twin, jaw: np.ndarray, lag_frames: int,
                           std: Dict[str, float]) -> None:
    """A live recording with the robot-face camera on: per frame, the person's face (the twin's mesh
    with the jaw at ``jaw[i]``: landmarks, head pose, AU26 = 5 jaw) and the robot face (the twin's
    render and its perception) showing the same jaw ``lag_frames`` later, stamped as the joint
    state it shows; and the
    self-model's standard deviations ``std`` with each command."""
    cap = cv2.VideoCapture(str(video))
    facing = (0.5, 0.5, -0.5, 0.5)
    with SegmentedBagWriter(out, "mcap", split_seconds=1.0) as bag:
        for i, value in enumerate(jaw):
            ok, img = cap.read()
            assert ok, f"{video} has fewer than {len(jaw)} frames"
            stamp = 5 * 10**9 + i * FRAME_NS
            points = twin.vertices({"jaw": float(value)})[:478]
            shown = stamp + lag_frames * FRAME_NS + 5_000_000
            bag.write("/camera/image_raw", "sensor_msgs/msg/Image", stamp + 1_000_000, _image(stamp, img))
            bag.write("/robot_face/camera/image_raw", "sensor_msgs/msg/Image", shown + 1_000_000,
                      _image(shown, twin.render({"jaw": float(value)})))
            for topic, at, when in (("/face", stamp, stamp + 9_000_000), ("/robot_face/face", shown, shown + 9_000_000)):
                bag.write(f"{topic}/landmarks", "sensor_msgs/msg/PointCloud2", when, _cloud(at, points))
                bag.write(f"{topic}/head_pose", "geometry_msgs/msg/PoseStamped", when, _pose(at, facing))
                bag.write(f"{topic}/action_units", "sensor_msgs/msg/JointState", when,
                          _joint_state(at, {"AU26": 5.0 * float(value)}))
            bag.write("/joint_commands", "sensor_msgs/msg/JointState", stamp + 11_000_000,
                      _joint_state(stamp, {"jaw": float(value)}))
            bag.write("/retarget/self_model_std", "sensor_msgs/msg/JointState", stamp + 11_000_000,
                      _joint_state(stamp, std))
            bag.write("/joint_states", "sensor_msgs/msg/JointState", shown, _joint_state(shown, {"jaw": float(value)}))
