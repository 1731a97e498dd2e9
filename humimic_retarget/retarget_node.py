"""ROS shell of the retargeter: /face/action_units + /face/head_pose -> /joint_commands."""
from __future__ import annotations

from typing import Dict, Optional

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState

from humimic_core.paths import config_file
from humimic_core.robot_config import load_robot_config
from humimic_core.ros_util import RELIABLE_QOS, declare, run_node
from humimic_core.stamps import to_ns
from humimic_retarget.head_angles import head_angles, quaternion_to_matrix
from humimic_retarget.retargeter import Retargeter, RetargetParams


class RetargetNode(Node):
    def __init__(self) -> None:
        super().__init__("retarget")
        path = declare(self, "robot_config", "", "Robot config YAML; empty = the package's config/robot_face.yaml",
                       read_only=True)
        params = RetargetParams(
            max_velocity=declare(self, "max_velocity", 3.0, "Joint velocity limit while tracking the face (rad/s)"),
            neutral_velocity=declare(self, "neutral_velocity", 0.8, "Velocity of the glide to neutral (rad/s)"),
            face_lost_timeout=declare(self, "face_lost_timeout", 0.5,
                                      "Seconds without a face before gliding to neutral"),
        )
        rate = declare(self, "rate", 50.0, "Hz of the timer that keeps gliding when no frames arrive")
        self.config = load_robot_config(path or config_file("robot_face.yaml"))
        self.retargeter = Retargeter(self.config, params)
        self._pose: Optional[PoseStamped] = None
        self._last_frame_ns: Optional[int] = None
        self.publisher = self.create_publisher(JointState, "/joint_commands", RELIABLE_QOS)
        self.create_subscription(JointState, "/face/action_units", self.on_action_units, RELIABLE_QOS)
        self.create_subscription(PoseStamped, "/face/head_pose", self.on_head_pose, RELIABLE_QOS)
        self.create_timer(1.0 / rate, self.on_timer)
        self.get_logger().info(f"retargeting to {len(self.config.servos)} joints of {self.config.source}")

    def on_head_pose(self, msg: PoseStamped) -> None:
        self._pose = msg

    def channels(self, msg: JointState) -> Optional[Dict[str, float]]:
        """The frame's channels (AUs + head angles), or None when the frame has no face."""
        if not msg.name:
            return None
        if len(msg.name) != len(msg.position):
            self.get_logger().warn("action units with mismatched name/position lengths: frame ignored",
                                   throttle_duration_sec=5.0)
            return None
        channels = dict(zip(msg.name, msg.position))
        pose = self._pose
        if pose is not None and to_ns(pose.header.stamp) <= to_ns(msg.header.stamp):
            age = (to_ns(msg.header.stamp) - to_ns(pose.header.stamp)) * 1e-9
            if age <= self.retargeter.params.face_lost_timeout:
                q = pose.pose.orientation
                try:
                    yaw, pitch, roll = head_angles(quaternion_to_matrix((q.x, q.y, q.z, q.w)))
                    channels.update(head_yaw=yaw, head_pitch=pitch, head_roll=roll)
                except ValueError:
                    pass
        return channels

    def on_action_units(self, msg: JointState) -> None:
        stamp_ns = to_ns(msg.header.stamp)
        self._last_frame_ns = self.get_clock().now().nanoseconds
        command = self.retargeter.update(stamp_ns * 1e-9, self.channels(msg))
        self.publish(command, msg.header.stamp)

    def on_timer(self) -> None:
        """Keep gliding to neutral when the frame stream itself has stopped; quiet once there."""
        now = self.get_clock().now()
        if self._last_frame_ns is None or \
                (now.nanoseconds - self._last_frame_ns) * 1e-9 < self.retargeter.params.face_lost_timeout:
            return
        before = dict(self.retargeter.command)
        command = self.retargeter.update(now.nanoseconds * 1e-9, None)
        if command != before:
            self.publish(command, now.to_msg())

    def publish(self, command: Dict[str, float], stamp) -> None:
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = list(command)
        msg.position = [float(v) for v in command.values()]
        self.publisher.publish(msg)


def main(args=None) -> None:
    run_node(RetargetNode, args)


if __name__ == "__main__":
    main()
