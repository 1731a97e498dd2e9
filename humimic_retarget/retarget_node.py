"""ROS shell of the retargeter: /face/action_units + /face/head_pose + /face/gaze -> /joint_commands.

Gains (``gains.<channel>``), ``mirror``, smoothing and limits are parameters that can be changed
while it runs; an invalid value is refused with the reason. Frames are timed by their stamps and
judged lost by their arrival (retarget_stream, stream_time); stamps that do not fit the node's
clock and jumps of that clock are counted on /diagnostics ("retarget: frame stamps", with the
latency of the frames) and logged, and the node goes on imitating. With ``forecast.enabled`` it
retargets each frame's channels forecast ``forecast.horizon`` s ahead (humimic_retarget/forecast.py)
and publishes them on /face/forecast. With a self-model that predicts its variance (mapping.model
from humimic-self-model) each command comes with the model joints' predicted standard deviations
(rad) on /retarget/self_model_std; a joint above mapping.model.max_std follows its linear mapping.
With ``realtime_priority`` its threads run under SCHED_FIFO (below the driver's) where the process may
(run_node applies it).
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Dict, List

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, Vector3Stamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType, JumpThreshold, TimeJump
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Header

from humimic_core.paths import config_file
from humimic_core.robot_config import ConfigError, load_robot_config
from humimic_core.ros_util import RELIABLE_QOS, declare, declare_settings, publish_trace, run_node
from humimic_core.stamps import from_ns, to_ns
from humimic_core.trace import FrameTrace
from humimic_core.topics import ACTION_UNITS, DIAGNOSTICS, FORECAST, GAZE, HEAD_POSE, JOINT_COMMANDS, SELF_MODEL_STD
from humimic_retarget.forecast import make_forecaster
from humimic_retarget.learned_mapping import LearnedModelError
from humimic_retarget.retarget_stream import Command, RetargetStream
from humimic_retarget.retargeter import Retargeter, RetargetNodeSettings, RetargetParams, with_changes

#: Seconds between /diagnostics reports.
DIAGNOSTICS_PERIOD = 1.0
#: Seconds between repeated warnings about stamps.
WARN_PERIOD = 5.0
#: Range of every gains.<channel> parameter.
GAIN_RANGE = (0.0, 100.0)
#: The trace's stages (humimic_core/trace.py): the frame's first message (action units, head pose
#: or gaze) received, its command computed (once every part is in), then sent.
TRACE_STAGES = ("receive", "computed", "sent")


class RetargetNode(Node):
    def __init__(self) -> None:
        super().__init__("retarget")
        node = RetargetNodeSettings.from_parameters(declare_settings(self, RetargetNodeSettings))
        self.config = load_robot_config(node.robot_config or config_file("robot_face.yaml"))
        values = declare_settings(self, RetargetParams)
        values["mirror"] = declare(self, "mirror", self.config.mapping.mirror,
                                   "true: mirror image (the person's left is the robot's right); false: same side")
        self.retargeter = Retargeter(self.config, RetargetParams.from_parameters(values))
        values.update({f"gains.{c}": declare(self, f"gains.{c}", self.config.mapping.curve(c).gain,
                                             f"Gain of channel {c}: multiplies its response curve", bounds=GAIN_RANGE)
                       for c in self.retargeter.mapping.channels})  # the learned model's channels too
        self.retargeter.set_params(RetargetParams.from_parameters(values))
        self.add_on_set_parameters_callback(self.on_set_parameters)
        try:
            node.forecast.validate()
            forecaster = make_forecaster(node.forecast, self.retargeter.response_times(),
                                         self.retargeter.driver_times())
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.stream = RetargetStream(self.retargeter, node.stamp_tolerance, 2.0 / node.rate, self.warn, forecaster,
                                     node.forecast.hop)
        self.forecast_pub = self.create_publisher(JointState, FORECAST, RELIABLE_QOS) if forecaster else None
        self._warned: Dict[str, float] = {}
        self._reported = dataclasses.replace(self.stream.time.counts)
        self.publisher = self.create_publisher(JointState, JOINT_COMMANDS, RELIABLE_QOS)
        self.trace = FrameTrace(self.get_name(), TRACE_STAGES)
        publish_trace(self, self.trace)
        model = self.retargeter.mapping.model
        self.std_pub = (self.create_publisher(JointState, SELF_MODEL_STD, RELIABLE_QOS)
                        if model is not None and model.has_variance else None)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS, RELIABLE_QOS)
        self.create_subscription(JointState, ACTION_UNITS, self.on_action_units, RELIABLE_QOS)
        self.create_subscription(PoseStamped, HEAD_POSE, self.on_head_pose, RELIABLE_QOS)
        self.create_subscription(Vector3Stamped, GAZE, self.on_gaze, RELIABLE_QOS)
        self.create_timer(1.0 / node.rate, self.on_timer)
        self.create_timer(DIAGNOSTICS_PERIOD, self.publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._jump_handle = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=Duration(nanoseconds=self.stream.time.tolerance),
                          min_backward=Duration(nanoseconds=-1)), post_callback=self.on_clock_jump)
        self.realtime_priority = node.realtime_priority  # run_node applies it
        self.get_logger().info(
            f"retargeting {len(self.retargeter.mapping.channels)} channels to {len(self.config.servos)} joints of "
            f"{self.config.source}" + (f", learned model {model.path} on {model.providers[0]}" if model else ""))

    def on_set_parameters(self, params: List[Parameter]) -> SetParametersResult:
        """Check and apply a change in one step (this node's only parameter callback; Humble has
        no post-set callback)."""
        try:
            params_after = with_changes(self.retargeter.params, {p.name: p.value for p in params})
            params_after.validate(self.retargeter.mapping.channels)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.retargeter.set_params(params_after)
        forecaster = getattr(getattr(self, "stream", None), "forecaster", None)  # None while parameters are declared
        if forecaster is not None:  # new caps or smoothing: each channel's horizon follows
            forecaster.follow(self.retargeter.response_times(), self.retargeter.driver_times())
        return SetParametersResult(successful=True)

    def warn(self, kind: str, text: str) -> None:
        """Log a line about stamps, each kind at most once per WARN_PERIOD."""
        now = time.monotonic()
        if now - self._warned.get(kind, -math.inf) >= WARN_PERIOD:
            self._warned[kind] = now
            self.get_logger().warning(text)

    def _received(self, msg) -> int:
        stamp = to_ns(msg.header.stamp)
        self.trace.mark(stamp, "receive", once=True)
        return stamp

    def on_head_pose(self, msg: PoseStamped) -> None:
        q = msg.pose.orientation
        self.publish(self.stream.head_pose(self._received(msg), (q.x, q.y, q.z, q.w)))

    def on_gaze(self, msg: Vector3Stamped) -> None:
        self.publish(self.stream.gaze(self._received(msg), msg.vector.x, msg.vector.y))

    def on_action_units(self, msg: JointState) -> None:
        now = self.get_clock().now().nanoseconds
        try:
            self.publish(self.stream.action_units(self._received(msg), msg.name, msg.position, now))
        except ValueError as exc:
            self.get_logger().warning(f"{exc}: frame ignored", throttle_duration_sec=WARN_PERIOD)

    def on_timer(self) -> None:
        self.publish(self.stream.tick(self.get_clock().now().nanoseconds))

    def on_clock_jump(self, jump: TimeJump) -> None:
        self.publish(self.stream.clock_jumped(jump.delta.nanoseconds))

    def publish(self, commands: List[Command]) -> None:
        for stamp, channels in self.stream.forecasts:
            self.forecast_pub.publish(JointState(header=Header(stamp=from_ns(stamp)), name=list(channels),
                                                 position=list(channels.values())))
        self.stream.forecasts.clear()
        for stamp, command in commands:
            traced = self.trace.marked(stamp)  # a frame's command, not one of the timer's own
            if traced:
                self.trace.mark(stamp, "computed")
            msg = JointState()
            msg.header.stamp = from_ns(stamp)
            msg.name = list(command)
            msg.position = list(command.values())
            self.publisher.publish(msg)
            if traced:
                self.trace.mark(stamp, "sent")
            std = self.retargeter.mapping.std
            if self.std_pub is not None and std is not None:
                self.std_pub.publish(JointState(header=msg.header, name=list(self.retargeter.mapping.model.joints),
                                                position=std.tolist()))

    def publish_diagnostics(self) -> None:
        message, values = self.stream.time.report(self._reported)
        self._reported = dataclasses.replace(self.stream.time.counts)
        status = DiagnosticStatus(name="retarget: frame stamps", hardware_id="retarget",
                                  level=DiagnosticStatus.WARN if message else DiagnosticStatus.OK,
                                  message=message or "frames in step with this node's clock",
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(msg)


def main(args=None) -> None:
    run_node(RetargetNode, args, fatal=(ConfigError, LearnedModelError, ValueError), exit_code=2,
             name="retarget")


if __name__ == "__main__":
    main()
