"""ROS 2 node `camera`: publishes frames of a camera, video file or image folder.

/camera/image_raw (bgr8) and /camera/camera_info (pinhole from horizontal_fov_deg) share one stamp,
the node clock at capture. realtime: a timer paces frames at fps. The first frame waits until
`min_subscribers` nodes subscribe to a camera topic and every one of their subscriptions has matched
(at most `subscriber_timeout`), so a recording or a slow-to-discover node misses nothing. Not
realtime (files/folders): the next frame goes out as soon as /face/action_units answers
the last (same stamp) or after BACKPRESSURE_TIMEOUT without an answer. A non-looping file or
folder ends the process (exit 0).
"""
from __future__ import annotations

import time
from typing import Optional

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header

from humimic_core.ros_util import (RELIABLE_QOS, SENSOR_QOS, declare_settings, matched_subscriber_nodes,
                                   publish_trace, request_exit, run_node)
from humimic_core.stamps import to_ns
from humimic_core.trace import FrameTrace
from humimic_core.subscriber_gate import SubscriberGate
from humimic_core.topics import ACTION_UNITS, CAMERA_IMAGE, CAMERA_INFO
from humimic_perception.frame_source import FrameSource, FrameSourceError
from humimic_perception.intrinsics import Intrinsics
from humimic_perception.ros_convert import camera_info_msg, image_to_msg
from humimic_perception.settings import CameraSettings

#: Seconds to wait for the answer to a frame before sending the next one anyway (not realtime).
BACKPRESSURE_TIMEOUT = 1.0
#: Period of the check for a missing answer (not realtime).
BACKPRESSURE_POLL = 0.05
#: The trace's stages (humimic_core/trace.py): the frame converted to a message, then sent.
TRACE_STAGES = ("convert", "sent")


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__("camera")
        settings = CameraSettings.from_parameters(declare_settings(self, CameraSettings))
        self.frame_id, self.realtime, self.hfov = settings.frame_id, settings.realtime, settings.horizontal_fov_deg
        self.realtime_priority = settings.realtime_priority  # run_node applies it
        try:
            self.source = FrameSource(settings.source, fps=settings.fps, loop=settings.loop, width=settings.width,
                                      height=settings.height)
        except FrameSourceError as exc:
            self.get_logger().fatal(str(exc))
            raise SystemExit(1) from None
        self.image_pub = self.create_publisher(Image, CAMERA_IMAGE, SENSOR_QOS)
        self.info_pub = self.create_publisher(CameraInfo, CAMERA_INFO, SENSOR_QOS)
        self.published = 0
        self._skipped_logged = 0
        self._early_end_logged = False
        self._intrinsics: Optional[Intrinsics] = None
        self._last_stamp_ns: Optional[int] = None
        self._last_sent = 0.0
        self.gate = SubscriberGate(lambda: matched_subscriber_nodes(self, (self.image_pub, self.info_pub)),
                                   settings.min_subscribers, settings.subscriber_timeout,
                                   self.get_logger().warning)
        self.trace = FrameTrace(self.get_name(), TRACE_STAGES)
        publish_trace(self, self.trace)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        if self.realtime or self.source.kind == "camera":
            self.create_timer(1.0 / self.source.fps, self.on_tick, clock=steady)
            mode = f"{self.source.fps:.2f} fps"
        else:
            self.create_subscription(JointState, ACTION_UNITS, self.on_action_units, RELIABLE_QOS)
            self.create_timer(BACKPRESSURE_POLL, self.on_poll, clock=steady)
            mode = "backpressure from /face/action_units"
        self.get_logger().info(f"publishing {self.source.kind} {self.source.name} ({mode})")

    def publish_next(self) -> None:
        """Capture, stamp and publish one frame; at the end of the source stop the process."""
        if getattr(self, "exit_code", None) is not None:
            return
        try:
            frame = self.source.read()
        except FrameSourceError as exc:
            self.get_logger().fatal(str(exc))
            return request_exit(self, 1)
        if self.source.skipped > self._skipped_logged:
            self._skipped_logged = self.source.skipped
            self.get_logger().warning(f"skipped {self.source.skipped} undecodable frame(s) of {self.source.name}")
        if self.source.early_end and not self._early_end_logged:
            self._early_end_logged = True
            self.get_logger().warning(self.source.early_end)
        if frame is None:
            self.get_logger().info(f"end of source after {self.published} frames")
            return request_exit(self, 0)
        height, width = frame.image.shape[:2]
        if self._intrinsics is None or (self._intrinsics.width, self._intrinsics.height) != (width, height):
            try:
                self._intrinsics = Intrinsics.from_fov(width, height, self.hfov)
            except ValueError as exc:
                self.get_logger().fatal(f"cannot make the CameraInfo: {exc}")
                return request_exit(self, 1)
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.frame_id)
        stamp = to_ns(header.stamp)
        image = image_to_msg(frame.image, header)
        self.trace.mark(stamp, "convert")
        self.info_pub.publish(camera_info_msg(self._intrinsics, header))
        self.image_pub.publish(image)
        self.trace.mark(stamp, "sent")
        self.published += 1
        self._last_stamp_ns = stamp
        self._last_sent = time.monotonic()

    def on_tick(self) -> None:
        if self.gate.ready():
            self.publish_next()

    def on_action_units(self, msg: JointState) -> None:
        if self._last_stamp_ns is not None and to_ns(msg.header.stamp) == self._last_stamp_ns:
            self._last_stamp_ns = None
            self.publish_next()

    def on_poll(self) -> None:
        """First frame once someone subscribes, then the next one whenever the last got no answer
        within BACKPRESSURE_TIMEOUT."""
        if self.published == 0:
            if self.gate.ready():
                self.publish_next()
        elif time.monotonic() - self._last_sent >= BACKPRESSURE_TIMEOUT:
            self.publish_next()

    def shutdown(self) -> None:
        self.source.close()


def main(args: Optional[list] = None) -> None:
    run_node(CameraNode, args, name="camera")


if __name__ == "__main__":
    main()
