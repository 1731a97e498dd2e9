"""ROS 2 node `face_perception`: landmarks, head pose, action units and gaze of the face in each frame.

Keeping up with the camera: every frame received waits in a queue (frame_queue) and perception
takes one at a time; with max_frame_lag 0 (default) it always works on the newest frame waiting and
skips the older ones, so latency stays about one frame's processing when it is busy, at the cost of
frames (a larger max_frame_lag processes frames in order unless they fall that far behind the
newest: for replays where every frame counts). Skipped frames get no message; they are counted on
/diagnostics ("face_perception: frames": received = processed + dropped + waiting), so they are not
mistaken for frames without a face. Every processed frame gets exactly one /face/action_units
message with the frame's header (empty name/position = no face, also for a frame that could not
be used). With a face it also publishes /face/head_pose and /face/gaze (combined; /face/gaze/right
and /face/gaze/left per eye: x = yaw, y = pitch in radians in the head frame, frame_id "head"),
all stamped with the frame's stamp. The action units, the head pose and the combined gaze (what the
robot needs) go first; the other outputs follow, each made only while someone subscribes to it:
each eye's gaze, /face/landmarks (metres, camera optical frame), the head pose as TF on /tf
(camera optical frame -> "head"; where tf2_msgs is installed: not in the PyPI wheels),
/face/mesh_markers (a DELETEALL for a frame without a face), /face/boxes and /face/debug_image
(if enabled); then the frame's search for further faces (late_detection). Each frame's progress goes to the latency trace (/trace, humimic_core/trace.py:
TRACE_STAGES). AUs are relative to the person's neutral face, estimated from the first face on
(humimic_perception.neutral; it starts again for a new person); /face/recapture_neutral takes the
next neutral_frames faces as the neutral.
Intrinsics come from the last /camera/camera_info of the frame's size (a nominal 60 degree pinhole
until one arrives or when its K is unset). The One-Euro smoothing (smoothing.*) takes the frame
stamps as its time and can be changed at run time (ros2 param set /face_perception smoothing.gaze.beta 2.0).
"""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, Dict, List, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, Vector3Stamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.subscription import Subscription
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from humimic_core.ros_util import RELIABLE_QOS, SENSOR_QOS, declare_settings, publish_trace, run_node
from humimic_core.stamps import to_ns
from humimic_core.trace import FrameTrace
from humimic_core.topics import (
    ACTION_UNITS,
    BOXES,
    CAMERA_IMAGE,
    CAMERA_INFO,
    DEBUG_IMAGE,
    DIAGNOSTICS,
    GAZE,
    GAZE_LEFT,
    GAZE_RIGHT,
    HEAD_POSE,
    LANDMARKS,
    MESH_MARKERS,
    RECAPTURE_NEUTRAL,
    TF,
)
from humimic_perception import ros_convert
from humimic_perception.face_selection import FaceSelector
from humimic_perception.frame_queue import MAX_WAITING, FrameCounts, FrameQueue
from humimic_perception.intrinsics import NOMINAL_HFOV_DEG, Intrinsics
from humimic_perception.landmarks import make_backend
from humimic_perception.mesh_markers import MeshMarkers, face_boxes
from humimic_perception.perception import FacePerception, draw_debug, face_box
from humimic_perception.settings import PerceptionSettings

try:
    from tf2_msgs.msg import TFMessage
except ModuleNotFoundError:  # the PyPI wheels have no tf2_msgs: no /tf there
    TFMessage = None

#: Seconds between repeated warnings (unusable frames, no frames).
WARN_PERIOD = 5.0
#: Period of the check for a silent camera topic (also lets SIGINT/SIGTERM through promptly).
IDLE_CHECK_PERIOD = 1.0
#: Camera frames: best effort like the sensor-data QoS, with room for as many frames as the queue
#: keeps, so those that arrive while perception is busy or stalled are queued and counted (the
#: queue's drops), not lost uncounted in DDS (depth 10: a burst of 60 frames left 29 received).
IMAGE_QOS = QoSProfile(depth=MAX_WAITING, reliability=ReliabilityPolicy.BEST_EFFORT)
#: The trace's stages (humimic_core/trace.py): the frame received, taken from the queue, converted,
#: the pipeline's steps (FaceResult.timings_ms), the robot's outputs sent (action units, head pose,
#: gaze), then the visual ones.
TRACE_STEPS = ("landmarks", "pose", "aus", "gaze", "smooth")
TRACE_STAGES = ("receive", "start", "convert", *TRACE_STEPS, "aus_sent", "pose_sent", "gaze_sent", "visuals_sent")


def take_waiting(subscription: Subscription) -> List[Any]:
    """Every message waiting on ``subscription``, oldest first."""
    out = []
    with subscription.handle:
        while (taken := subscription.handle.take_message(subscription.msg_type, subscription.raw)) is not None:
            out.append(taken[0])
    return out


class PerceptionNode(Node):
    def __init__(self) -> None:
        super().__init__("face_perception")
        settings = PerceptionSettings.from_parameters(declare_settings(self, PerceptionSettings))
        self.settings = settings
        self.realtime_priority = settings.realtime_priority  # run_node applies it
        try:
            self.frames: FrameQueue[Image] = FrameQueue(settings.max_frame_lag)
            smoothing = settings.smoothing.filters
            landmarks = make_backend(settings.backend, **settings.backend_options())
            self.pipeline = FacePerception(landmarks, settings.neutral_frames, smoothing,
                                           FaceSelector(settings.face_selection))
        except (ValueError, RuntimeError) as exc:
            self.get_logger().fatal(f"cannot start face perception: {exc}")
            raise SystemExit(1) from None
        self.markers = MeshMarkers()
        self.camera_info: Optional[CameraInfo] = None
        self.au_pub = self.create_publisher(JointState, ACTION_UNITS, RELIABLE_QOS)
        self.pose_pub = self.create_publisher(PoseStamped, HEAD_POSE, RELIABLE_QOS)
        self.gaze_pubs = [self.create_publisher(Vector3Stamped, topic, RELIABLE_QOS)
                          for topic in (GAZE, GAZE_RIGHT, GAZE_LEFT)]
        self.cloud_pub = self.create_publisher(PointCloud2, LANDMARKS, SENSOR_QOS)
        self.debug_pub = self.create_publisher(Image, DEBUG_IMAGE, SENSOR_QOS)
        self.marker_pub = self.create_publisher(MarkerArray, MESH_MARKERS, RELIABLE_QOS)
        self.boxes_pub = self.create_publisher(MarkerArray, BOXES, RELIABLE_QOS)
        self.tf_pub = self.create_publisher(TFMessage, TF, RELIABLE_QOS) if TFMessage else None
        if TFMessage is None:
            self.get_logger().info("tf2_msgs not installed: the head pose is not published on /tf")
        self.create_subscription(CameraInfo, CAMERA_INFO, self.on_camera_info, SENSOR_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS, RELIABLE_QOS)
        self.image_sub = self.create_subscription(Image, CAMERA_IMAGE, self.on_image, IMAGE_QOS)
        self.create_service(Trigger, RECAPTURE_NEUTRAL, self.on_recapture)
        self.add_on_set_parameters_callback(self.on_set_parameters)
        self._had_face: Optional[bool] = None
        self._last_frame = time.monotonic()
        self._reported = FrameCounts()
        self.trace = FrameTrace(self.get_name(), TRACE_STAGES)
        publish_trace(self, self.trace)
        self.create_timer(IDLE_CHECK_PERIOD, self.check_idle, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f"face perception with the {settings.backend} backend, smoothing "
                               f"{'on' if smoothing else 'off'}; the neutral face is estimated from the "
                               f"first face on")

    def on_set_parameters(self, params: List[Parameter]) -> SetParametersResult:
        """Check and apply a change in one step (this node's only parameter callback; Humble has
        no post-set callback)."""
        try:
            settings = PerceptionSettings.from_parameters(
                {**self._values(), **{p.name: p.value for p in params}})
            smoothing = settings.smoothing.filters
            FrameQueue(settings.max_frame_lag)
        except (ValueError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.frames.max_lag = settings.max_frame_lag
        if settings.smoothing != self.settings.smoothing:
            self.pipeline.set_smoothing(smoothing)
        self.settings = settings
        return SetParametersResult(successful=True)

    def _values(self) -> Dict[str, Any]:
        return {p.name: self.get_parameter(p.name).value for p in PerceptionSettings.parameters()}

    def on_camera_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    def _intrinsics(self, width: int, height: int) -> Intrinsics:
        info = self.camera_info
        if info is None or (info.width, info.height) != (width, height):
            return Intrinsics.from_fov(width, height, NOMINAL_HFOV_DEG)
        return ros_convert.intrinsics_from_msg(info)

    def check_idle(self) -> None:
        self.publish_diagnostics()
        silent = time.monotonic() - self._last_frame
        if silent >= WARN_PERIOD:
            self.get_logger().warning(
                f"no frames on /camera/image_raw for {silent:.0f} s (is the camera running? Fast DDS loses "
                "frames over its 512 KiB shared-memory segment unless a profile enlarges it)",
                throttle_duration_sec=WARN_PERIOD)

    def publish_diagnostics(self) -> None:
        """Frame counts since start; WARN while frames are dropped."""
        counts = self.frames.counts
        dropped = counts.dropped - self._reported.dropped
        received = counts.received - self._reported.received
        self._reported = FrameCounts(**asdict(counts))
        values = {**asdict(counts), "waiting": len(self.frames)}
        status = DiagnosticStatus(name="face_perception: frames", hardware_id="face_perception",
                                  level=DiagnosticStatus.WARN if dropped else DiagnosticStatus.OK,
                                  message=f"dropped {dropped} of {received} frames since the last report (busy: "
                                          f"frames behind the newest skipped)" if dropped else "every frame processed",
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(msg)

    def on_image(self, msg: Image) -> None:
        """Queue the frame and any others waiting; perception takes them in process_next."""
        self._last_frame = time.monotonic()
        for frame in [msg] + take_waiting(self.image_sub):
            stamp = to_ns(frame.header.stamp)
            self.trace.mark(stamp, "receive")
            self.frames.put(stamp, frame)
        self._schedule()

    def _schedule(self) -> None:
        """process_next as the executor's next task (a task, not a guard condition: the
        EventsExecutor has none), so other callbacks run between frames."""
        if self.executor is not None:
            self.executor.create_task(self.process_next)

    def process_next(self) -> None:
        """One frame from the queue (the others wait for the next turn, so other callbacks run between)."""
        msg = self.frames.take()
        if msg is None:
            return
        if len(self.frames):
            self._schedule()
        self.process(msg)

    def process(self, msg: Image) -> None:
        """One frame: what the robot needs first (action units, head pose, gaze), then the visual
        outputs, each only while someone subscribes to it."""
        stamp = to_ns(msg.header.stamp)
        self.trace.mark(stamp, "start")
        try:
            bgr = ros_convert.image_from_msg(msg)
        except ValueError as exc:
            self.get_logger().warning(f"skipping frame: {exc}", throttle_duration_sec=WARN_PERIOD)
            self.au_pub.publish(ros_convert.action_units_msg({}, msg.header))
            return
        self.trace.mark(stamp, "convert")
        intrinsics = self._intrinsics(bgr.shape[1], bgr.shape[0])
        result = self.pipeline.process(bgr, intrinsics, stamp * 1e-9)
        self.trace.mark_steps(stamp, "convert", result.timings_ms)
        self.au_pub.publish(ros_convert.action_units_msg(result.action_units, msg.header))
        self.trace.mark(stamp, "aus_sent")
        if result.face:
            self.pose_pub.publish(ros_convert.head_pose_msg(result.head_pose, msg.header))
            self.trace.mark(stamp, "pose_sent")
            if result.gaze is not None:
                self.gaze_pubs[0].publish(ros_convert.gaze_msg(result.gaze.combined, msg.header))
                self.trace.mark(stamp, "gaze_sent")
        self.publish_visuals(msg, bgr, result, intrinsics)
        self.trace.mark(stamp, "visuals_sent")
        self.pipeline.finish_frame()
        if result.face != self._had_face:
            self._had_face = result.face
            self.get_logger().info("face found" if result.face else "no face")

    def publish_visuals(self, msg: Image, bgr, result, intrinsics: Intrinsics) -> None:
        """Each eye's gaze, TF, landmarks, markers, boxes and the debug image, each made only for its
        subscribers."""
        def wanted(pub) -> bool:
            return pub is not None and pub.get_subscription_count() > 0

        if result.face and result.gaze is not None:
            for pub, angles in zip(self.gaze_pubs[1:], (result.gaze.right, result.gaze.left)):
                if wanted(pub):
                    pub.publish(ros_convert.gaze_msg(angles, msg.header))
        if result.face and wanted(self.tf_pub):
            self.tf_pub.publish(TFMessage(transforms=[ros_convert.head_transform_msg(result.head_pose, msg.header)]))
        if result.face and wanted(self.cloud_pub):
            self.cloud_pub.publish(ros_convert.cloud_msg(result.points, msg.header))
        if wanted(self.marker_pub):
            self.marker_pub.publish(self.markers.update(msg.header, result.points, result.head_pose.rotation,
                                                        result.gaze) if result.face else self.markers.clear(msg.header))
        if (result.faces or self._had_face) and wanted(self.boxes_pub):
            self.boxes_pub.publish(face_boxes(msg.header, [face_box(f) for f in result.faces], result.face_ids,
                                              result.chosen, intrinsics))
        if self.settings.publish_debug_image and wanted(self.debug_pub):
            self.debug_pub.publish(ros_convert.image_to_msg(draw_debug(bgr, result, intrinsics), msg.header))

    def on_recapture(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.pipeline.recapture_neutral()
        response.success = True
        response.message = f"taking the next {self.pipeline.aus.neutral_frames} frames with a face as the " \
                           f"neutral face"
        self.get_logger().info(response.message)
        return response

    def shutdown(self) -> None:
        self.pipeline.close()


def main(args: Optional[list] = None) -> None:
    run_node(PerceptionNode, args, name="face_perception")


if __name__ == "__main__":
    main()
