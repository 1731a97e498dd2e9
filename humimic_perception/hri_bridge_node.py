"""ROS 2 node `hri_bridge` (optional): the imitated face in the ROS4HRI layout (REP-155).

From humimic's own topics it publishes, for the face perception follows (id `face<N>`, a new
one after a frame without a face):
/humans/faces/tracked (hri_msgs/IdsList, every frame; empty without a face),
/humans/faces/<id>/roi (NormalizedRegionOfInterest2D), /landmarks (FacialLandmarks: the 70
ROS4HRI points of the face mesh, humimic_perception.hri.MESH_TO_ROS4HRI), /facs
(FacialActionUnits, 0..1), /expression (Expression: EMFACS prototype or neutral), and the TF
frames face_<id> (the head pose in the camera optical frame) and gaze_<id> (z along the gaze,
x right, y down, under face_<id>). Stamps are the camera frame's. Needs hri_msgs and tf2_msgs
(a ROS install: apt install ros-$ROS_DISTRO-hri-msgs); without hri_msgs it exits 2 with one line.

    humimic-hri-bridge        # beside a running pipeline
"""
from __future__ import annotations

import sys
from typing import Dict, Optional

from geometry_msgs.msg import PoseStamped, TransformStamped, Vector3Stamped
from rclpy.node import Node
from rclpy.publisher import Publisher
from sensor_msgs.msg import CameraInfo, JointState, PointCloud2
from std_msgs.msg import Header

from humimic_core.ros_util import RELIABLE_QOS, SENSOR_QOS, run_node
from humimic_core.topics import ACTION_UNITS, CAMERA_INFO, GAZE, HEAD_POSE, LANDMARKS, TF
from humimic_perception import hri, ros_convert
from humimic_perception.head_pose import rotation_to_quaternion

try:
    from hri_msgs.msg import (Expression, FacialActionUnits, FacialLandmarks, IdsList, NormalizedPointOfInterest2D,
                              NormalizedRegionOfInterest2D)
    from tf2_msgs.msg import TFMessage

    #: per-face topic -> its message type
    FACE_TYPES = {"roi": NormalizedRegionOfInterest2D, "landmarks": FacialLandmarks, "facs": FacialActionUnits,
                  "expression": Expression}
except ModuleNotFoundError:  # not in the PyPI wheels: main() says so
    IdsList = None


class HriBridge(Node):
    def __init__(self) -> None:
        super().__init__("hri_bridge")
        self.track = hri.FaceTrack()
        self.camera: Optional[CameraInfo] = None
        self.face_id: Optional[str] = None
        self.face: Dict[str, Publisher] = {}
        self.tracked_pub = self.create_publisher(IdsList, hri.TRACKED_TOPIC, RELIABLE_QOS)
        self.tf_pub = self.create_publisher(TFMessage, TF, RELIABLE_QOS)
        self.create_subscription(CameraInfo, CAMERA_INFO, self.on_camera_info, SENSOR_QOS)
        self.create_subscription(JointState, ACTION_UNITS, self.on_action_units, RELIABLE_QOS)
        self.create_subscription(PointCloud2, LANDMARKS, self.on_landmarks, SENSOR_QOS)
        self.create_subscription(PoseStamped, HEAD_POSE, self.on_head_pose, RELIABLE_QOS)
        self.create_subscription(Vector3Stamped, GAZE, self.on_gaze, RELIABLE_QOS)

    def on_camera_info(self, msg: CameraInfo) -> None:
        self.camera = msg

    def _follow(self, face_id: Optional[str]) -> None:
        """Per-face publishers of the current id only (REP-155: a lost face's topics go away)."""
        if face_id == self.face_id:
            return
        for pub in self.face.values():
            self.destroy_publisher(pub)
        self.face_id = face_id
        self.face = {name: self.create_publisher(kind, hri.face_topic(face_id, name), RELIABLE_QOS)
                     for name, kind in FACE_TYPES.items()} if face_id else {}

    def on_action_units(self, msg: JointState) -> None:
        face_id = self.track.update(bool(msg.name))
        self._follow(face_id)
        self.tracked_pub.publish(IdsList(header=msg.header, ids=[face_id] if face_id else []))
        if face_id is None:
            return
        values = dict(zip(msg.name, msg.position))
        intensity, confidence = hri.facs(values)
        self.face["facs"].publish(FacialActionUnits(header=msg.header, intensity=intensity, confidence=confidence))
        name, certainty = hri.expression(values)
        self.face["expression"].publish(Expression(header=msg.header, expression=name, confidence=certainty))

    def on_landmarks(self, msg: PointCloud2) -> None:
        if self.track.id is None or self.camera is None:
            return
        intrinsics = ros_convert.intrinsics_from_msg(self.camera)
        points = ros_convert.cloud_from_msg(msg)
        landmarks = [NormalizedPointOfInterest2D(x=x, y=y, c=c) for x, y, c in hri.normalized_landmarks(points,
                                                                                                       intrinsics)]
        self.face["landmarks"].publish(FacialLandmarks(header=msg.header, landmarks=landmarks,
                                                       height=self.camera.height, width=self.camera.width))
        box = hri.region_of_interest(points, intrinsics)
        if box is not None:
            xmin, ymin, xmax, ymax = box
            self.face["roi"].publish(NormalizedRegionOfInterest2D(header=msg.header, xmin=xmin, ymin=ymin,
                                                                  xmax=xmax, ymax=ymax, c=1.0))

    def on_head_pose(self, msg: PoseStamped) -> None:
        if self.track.id is None:
            return
        tf = TransformStamped(header=Header(stamp=msg.header.stamp,
                                            frame_id=msg.header.frame_id or ros_convert.CAMERA_FRAME),
                              child_frame_id=hri.face_frames(self.track.id)[0])
        p = msg.pose.position
        tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z = p.x, p.y, p.z
        tf.transform.rotation = msg.pose.orientation
        self.tf_pub.publish(TFMessage(transforms=[tf]))

    def on_gaze(self, msg: Vector3Stamped) -> None:
        if self.track.id is None:
            return
        face, gaze = hri.face_frames(self.track.id)
        tf = TransformStamped(header=Header(stamp=msg.header.stamp, frame_id=face), child_frame_id=gaze)
        q = tf.transform.rotation
        q.x, q.y, q.z, q.w = rotation_to_quaternion(hri.gaze_rotation(msg.vector.x, msg.vector.y))
        self.tf_pub.publish(TFMessage(transforms=[tf]))


def main(args: Optional[list] = None) -> None:
    if IdsList is None:
        print("hri_bridge: hri_msgs is not installed (ROS4HRI messages: apt install ros-$ROS_DISTRO-hri-msgs)",
              file=sys.stderr)
        raise SystemExit(2)
    run_node(HriBridge, args, name="hri_bridge")


if __name__ == "__main__":
    main()
