"""ROS shell of the retargeter: /face/action_units + /face/head_pose + /face/gaze -> /joint_commands.

Gains (``gains.<channel>``), ``mirror``, smoothing and limits are parameters that can be changed
while it runs; an invalid value is refused with the reason.
"""
from __future__ import annotations

from typing import Dict, List

from geometry_msgs.msg import PoseStamped, Vector3Stamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState

from humimic_core.paths import config_file
from humimic_core.robot_config import ConfigError, load_robot_config
from humimic_core.ros_util import RELIABLE_QOS, declare, run_node
from humimic_core.stamps import from_ns, to_ns
from humimic_retarget.frame_channels import Frame, FrameChannels
from humimic_retarget.learned_mapping import LearnedModelError
from humimic_retarget.retargeter import Retargeter, RetargetParams, with_changes

#: Seconds a frame's action units wait for its head pose and gaze before going without them.
PART_TIMEOUT = 0.1
#: Seconds without a frame after which the timer steps the retargeter itself (a camera at 10 fps or
#: more never triggers it; a stalled or ended stream does, so the robot still glides to neutral).
STALL_TIMEOUT = 0.15

_DESCRIPTIONS = {
    "max_velocity": "Velocity limit (rad/s) of joints without a constraints.velocity entry in the robot config",
    "max_acceleration": "Acceleration limit (rad/s^2) of joints without a constraints.acceleration entry",
    "neutral_velocity": "Velocity of the glide to neutral (rad/s)",
    "face_lost_timeout": "Seconds without valid input before a joint glides to neutral",
    "smoothing": "Time constant (s) of the low-pass on targets of joints without a constraints.smoothing entry; "
                 "0 = off",
}


class RetargetNode(Node):
    def __init__(self) -> None:
        super().__init__("retarget")
        path = declare(self, "robot_config", "", "Robot config YAML; empty = the package's config/robot_face.yaml",
                       read_only=True)
        rate = declare(self, "rate", 50.0, "Hz of the timer that keeps commands flowing when frames are late",
                       read_only=True)
        self.config = load_robot_config(path or config_file("robot_face.yaml"))
        defaults = RetargetParams()
        values = {name: declare(self, name, getattr(defaults, name), text) for name, text in _DESCRIPTIONS.items()}
        values["mirror"] = declare(self, "mirror", self.config.mapping.mirror,
                                   "true: mirror image (the person's left is the robot's right); false: same side")
        self.retargeter = Retargeter(self.config, RetargetParams(**values))
        gains = {f"gains.{c}": declare(self, f"gains.{c}", self.config.mapping.curve(c).gain,
                                       f"Gain of channel {c}: multiplies its response curve")
                 for c in self.retargeter.mapping.channels}
        self.retargeter.set_params(with_changes(self.retargeter.params, gains))
        self.add_on_set_parameters_callback(self.on_set_parameters)
        self.add_post_set_parameters_callback(self.on_parameters_set)
        self.frames = FrameChannels()
        self._stall_ns = int(max(STALL_TIMEOUT, 2.0 / rate) * 1e9)
        self._last_frame_ns = 0
        self.publisher = self.create_publisher(JointState, "/joint_commands", RELIABLE_QOS)
        self.create_subscription(JointState, "/face/action_units", self.on_action_units, RELIABLE_QOS)
        self.create_subscription(PoseStamped, "/face/head_pose", self.on_head_pose, RELIABLE_QOS)
        self.create_subscription(Vector3Stamped, "/face/gaze", self.on_gaze, RELIABLE_QOS)
        self.create_timer(1.0 / rate, self.on_timer)
        model = self.retargeter.mapping.model
        self.get_logger().info(
            f"retargeting {len(self.retargeter.mapping.channels)} channels to {len(self.config.servos)} joints of "
            f"{self.config.source}" + (f", learned model {model.path} on {model.providers[0]}" if model else ""))

    def on_set_parameters(self, params: List[Parameter]) -> SetParametersResult:
        try:
            with_changes(self.retargeter.params, {p.name: p.value for p in params}).validate(
                self.retargeter.mapping.channels)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def on_parameters_set(self, params: List[Parameter]) -> None:
        self.retargeter.set_params(with_changes(self.retargeter.params, {p.name: p.value for p in params}))

    def on_head_pose(self, msg: PoseStamped) -> None:
        q = msg.pose.orientation
        self.retarget(self.frames.head_pose(to_ns(msg.header.stamp), (q.x, q.y, q.z, q.w)))

    def on_gaze(self, msg: Vector3Stamped) -> None:
        self.retarget(self.frames.gaze(to_ns(msg.header.stamp), msg.vector.x, msg.vector.y))

    def on_action_units(self, msg: JointState) -> None:
        now = self.get_clock().now().nanoseconds
        try:
            frames = self.frames.action_units(to_ns(msg.header.stamp), msg.name, msg.position, now * 1e-9)
        except ValueError as exc:
            self.get_logger().warn(f"{exc}: frame ignored", throttle_duration_sec=5.0)
            return
        self._last_frame_ns = now
        self.retarget(frames)

    def retarget(self, frames: List[Frame]) -> None:
        """Commands for complete frames, timed by the frames' own stamps (replays reproduce them)."""
        for frame in frames:
            self.publish(self.retargeter.update(frame.stamp * 1e-9, frame.channels), from_ns(frame.stamp))

    def on_timer(self) -> None:
        """Release a frame whose parts are late; keep stepping (hold, glide to neutral, finish a
        motion) while frames are late or gone."""
        now = self.get_clock().now()
        self.retarget(self.frames.expire(now.nanoseconds * 1e-9, PART_TIMEOUT))
        if now.nanoseconds - self._last_frame_ns < self._stall_ns:
            return
        before = self.retargeter.command
        command = self.retargeter.tick(now.nanoseconds * 1e-9)
        if command != before:
            self.publish(command, now.to_msg())

    def publish(self, command: Dict[str, float], stamp) -> None:
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = list(command)
        msg.position = list(command.values())
        self.publisher.publish(msg)


def main(args=None) -> None:
    run_node(RetargetNode, args, fatal=(ConfigError, LearnedModelError), exit_code=2, name="retarget")


if __name__ == "__main__":
    main()
