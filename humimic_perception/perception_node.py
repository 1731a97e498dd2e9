"""ROS 2 node `face_perception`: landmarks, head pose and action units of the face in each frame.

Every frame on /camera/image_raw gets exactly one /face/action_units message with the frame's
header (empty name/position = no face, also for a frame that could not be used). With a face it
also publishes /face/landmarks (metres, camera optical frame), /face/head_pose and, if enabled,
/face/debug_image (only while subscribed), all with the frame's header. While the neutral face is
captured (the first neutral_frames faces, again after /face/recapture_neutral) every AU is 0.
Intrinsics come from the last /camera/camera_info of the frame's size (a nominal 60 degree pinhole
until one arrives or when its K is unset).
"""
from __future__ import annotations

import time
from typing import Optional

from geometry_msgs.msg import PoseStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2
from std_srvs.srv import Trigger

from humimic_core.ros_util import RELIABLE_QOS, SENSOR_QOS, declare, run_node
from humimic_perception.intrinsics import NOMINAL_HFOV_DEG, Intrinsics
from humimic_perception.landmarks import make_backend
from humimic_perception.perception import FacePerception, draw_debug
from humimic_perception import ros_convert

#: Seconds between repeated warnings (unusable frames, no frames).
WARN_PERIOD = 5.0
#: Period of the check for a silent camera topic (also lets SIGINT/SIGTERM through promptly).
IDLE_CHECK_PERIOD = 1.0


class PerceptionNode(Node):
    def __init__(self) -> None:
        super().__init__("face_perception")
        backend = declare(self, "backend", "mediapipe", "landmark backend: mediapipe (reference)", read_only=True)
        neutral_frames = declare(self, "neutral_frames", 10, "frames with a face averaged into the neutral face")
        detection = declare(self, "min_detection_confidence", 0.5, "landmark backend: face detection threshold",
                            read_only=True)
        tracking = declare(self, "min_tracking_confidence", 0.5, "landmark backend: face tracking threshold",
                           read_only=True)
        self.publish_debug = declare(self, "publish_debug_image", True, "annotated image on /face/debug_image")
        try:
            landmarks = make_backend(backend, min_detection_confidence=detection, min_tracking_confidence=tracking)
            self.pipeline = FacePerception(landmarks, neutral_frames)
        except (ValueError, RuntimeError) as exc:
            self.get_logger().fatal(f"cannot start face perception: {exc}")
            raise SystemExit(1) from None
        self.camera_info: Optional[CameraInfo] = None
        self.au_pub = self.create_publisher(JointState, "/face/action_units", RELIABLE_QOS)
        self.pose_pub = self.create_publisher(PoseStamped, "/face/head_pose", RELIABLE_QOS)
        self.cloud_pub = self.create_publisher(PointCloud2, "/face/landmarks", SENSOR_QOS)
        self.debug_pub = self.create_publisher(Image, "/face/debug_image", SENSOR_QOS)
        self.create_subscription(CameraInfo, "/camera/camera_info", self.on_camera_info, SENSOR_QOS)
        self.create_subscription(Image, "/camera/image_raw", self.on_image, SENSOR_QOS)
        self.create_service(Trigger, "/face/recapture_neutral", self.on_recapture)
        self._had_face: Optional[bool] = None
        self._last_frame = time.monotonic()
        self.create_timer(IDLE_CHECK_PERIOD, self.check_idle, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f"face perception with the {backend} backend; capturing the neutral face "
                               f"from the first {neutral_frames} frames with a face")

    def on_camera_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    def _intrinsics(self, width: int, height: int) -> Intrinsics:
        info = self.camera_info
        if info is None or (info.width, info.height) != (width, height):
            return Intrinsics.from_fov(width, height, NOMINAL_HFOV_DEG)
        return ros_convert.intrinsics_from_msg(info)

    def check_idle(self) -> None:
        silent = time.monotonic() - self._last_frame
        if silent >= WARN_PERIOD:
            self.get_logger().warning(
                f"no frames on /camera/image_raw for {silent:.0f} s (is the camera running? Fast DDS loses "
                "frames over its 512 KiB shared-memory segment unless a profile enlarges it)",
                throttle_duration_sec=WARN_PERIOD)

    def on_image(self, msg: Image) -> None:
        self._last_frame = time.monotonic()
        try:
            bgr = ros_convert.image_from_msg(msg)
        except ValueError as exc:
            self.get_logger().warning(f"skipping frame: {exc}", throttle_duration_sec=WARN_PERIOD)
            self.au_pub.publish(ros_convert.action_units_msg({}, msg.header))
            return
        intrinsics = self._intrinsics(bgr.shape[1], bgr.shape[0])
        result = self.pipeline.process(bgr, intrinsics)
        self.au_pub.publish(ros_convert.action_units_msg(result.action_units, msg.header))
        if result.face:
            self.pose_pub.publish(ros_convert.head_pose_msg(result.head_pose, msg.header))
            self.cloud_pub.publish(ros_convert.cloud_msg(result.points, msg.header))
        if self.publish_debug and self.debug_pub.get_subscription_count() > 0:
            self.debug_pub.publish(ros_convert.image_to_msg(draw_debug(bgr, result, intrinsics), msg.header))
        if result.face != self._had_face:
            self._had_face = result.face
            self.get_logger().info("face found" if result.face else "no face")

    def on_recapture(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.pipeline.recapture_neutral()
        response.success = True
        response.message = f"capturing the neutral face from the next {self.pipeline.aus.neutral_frames} " \
                           f"frames with a face"
        self.get_logger().info(response.message)
        return response

    def shutdown(self) -> None:
        self.pipeline.close()


def main(args: Optional[list] = None) -> None:
    run_node(PerceptionNode, args)


if __name__ == "__main__":
    main()
