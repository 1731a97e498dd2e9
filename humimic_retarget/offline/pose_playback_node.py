"""humimic-pose-playback: the robot plays a grid of poses on /joint_commands for recording sessions.

An operator mirrors each pose in front of the camera. With ``record`` set, every action-unit frame
of a pose's recording window is written as a JSONL sample (the person's channels, as the
retarget node reads them, with the pose's joint angles) ready for humimic-fit; ``ros2 bag record``
of the session works as well. Run it instead of the retarget node (both publish /joint_commands);
the first pose waits for the driver's subscription (`min_subscribers`); it exits when the grid is
done, leaving the robot at neutral.

    humimic-pose-playback --ros-args --params-file config/humimic.yaml -p record:=session.jsonl
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, TextIO

from geometry_msgs.msg import PoseStamped, Vector3Stamped
from rclpy.node import Node
from sensor_msgs.msg import JointState

from humimic_core.paths import config_file
from humimic_core.robot_config import ConfigError, load_robot_config
from humimic_core.ros_util import RELIABLE_QOS, declare_settings, matched_subscriber_nodes, request_exit, run_node
from humimic_core.stamps import to_ns
from humimic_core.subscriber_gate import SubscriberGate
from humimic_core.topics import ACTION_UNITS, GAZE, HEAD_POSE, JOINT_COMMANDS
from humimic_retarget.frame_channels import Frame, FrameChannels
from humimic_retarget.offline.paired_data import jsonl_line
from humimic_retarget.offline.pose_grid import PlaybackSettings, PlaybackState, PosePlayback, pose_grid


class PosePlaybackNode(Node):
    def __init__(self) -> None:
        super().__init__("pose_playback")
        settings = PlaybackSettings.from_parameters(declare_settings(self, PlaybackSettings))
        self.config = load_robot_config(settings.robot_config or config_file("robot_face.yaml"))
        self.playback = PosePlayback(pose_grid(self.config, settings.levels, settings.combos, settings.seed),
                                     settings.move_time, settings.hold_time, settings.settle_time)
        self.frames = FrameChannels()
        self.state: Optional[PlaybackState] = None
        self.samples = 0
        record = settings.record
        self.out: Optional[TextIO] = Path(record).open("w") if record else None
        self.publisher = self.create_publisher(JointState, JOINT_COMMANDS, RELIABLE_QOS)
        self.create_subscription(JointState, ACTION_UNITS, self.on_action_units, RELIABLE_QOS)
        self.create_subscription(PoseStamped, HEAD_POSE, self.on_head_pose, RELIABLE_QOS)
        self.create_subscription(Vector3Stamped, GAZE, self.on_gaze, RELIABLE_QOS)
        self.gate = SubscriberGate(lambda: matched_subscriber_nodes(self, (self.publisher,)), settings.min_subscribers,
                                   settings.subscriber_timeout, self.get_logger().warning)
        self.start_ns: Optional[int] = None
        self.create_timer(1.0 / settings.rate, self.on_timer)
        self.get_logger().info(f"playing {len(self.playback.poses)} poses in {self.playback.duration:.0f} s"
                               + (f", recording to {record}" if record else ""))

    def on_head_pose(self, msg: PoseStamped) -> None:
        q = msg.pose.orientation
        self.record(self.frames.head_pose(to_ns(msg.header.stamp), (q.x, q.y, q.z, q.w)))

    def on_gaze(self, msg: Vector3Stamped) -> None:
        self.record(self.frames.gaze(to_ns(msg.header.stamp), msg.vector.x, msg.vector.y))

    def on_action_units(self, msg: JointState) -> None:
        try:
            self.record(self.frames.action_units(to_ns(msg.header.stamp), msg.name, msg.position))
        except ValueError:
            return

    def record(self, frames: List[Frame]) -> None:
        """Pair each complete frame with the pose being held, inside a recording window."""
        if self.out is None or self.state is None or not self.state.recording:
            return
        for frame in frames:
            if frame.channels is not None:
                self.out.write(jsonl_line(frame.channels, self.state.command, t=frame.stamp * 1e-9,
                                          pose=self.state.pose) + "\n")
                self.samples += 1

    def on_timer(self) -> None:
        if getattr(self, "exit_code", None) is not None:  # done, the process is ending
            return
        now = self.get_clock().now()
        if self.start_ns is None:
            if not self.gate.ready():
                return
            self.start_ns = now.nanoseconds
        self.state = self.playback.at((now.nanoseconds - self.start_ns) * 1e-9)
        if self.state is None:
            self.publish({s.joint: s.neutral for s in self.config.servos}, now)
            self.get_logger().info(f"done: {len(self.playback.poses)} poses played, {self.samples} samples recorded")
            return request_exit(self, 0)
        self.publish(self.state.command, now)

    def publish(self, command: Dict[str, float], now) -> None:
        msg = JointState()
        msg.header.stamp = now.to_msg()
        msg.name = list(command)
        msg.position = list(command.values())
        self.publisher.publish(msg)

    def shutdown(self) -> None:
        if self.out is not None:
            self.out.close()


def main(args=None) -> None:
    run_node(PosePlaybackNode, args, fatal=(ConfigError, ValueError, OSError), exit_code=2, name="pose_playback")


if __name__ == "__main__":
    main()
