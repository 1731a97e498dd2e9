"""ROS 2 node `face_twin`: the robot's face rendered from /joint_states, a robot-face camera where
a lab has none.

Publishes robot_face/camera/image_raw (bgr8) and robot_face/camera/camera_info at `rate`, each
render showing the newest joint state and carrying its stamp (a joint state is rendered once; no
new state, no frame). The robot config's `twin` entries say how each joint moves the face
(docs/twin.md); the neutral face is prepared from `neutral_face` on first use and cached.
"""
from __future__ import annotations

import functools
from typing import Optional

from rclpy.node import Node
from sensor_msgs.msg import Image, JointState, CameraInfo
from std_msgs.msg import Header

from humimic_core.paths import config_file
from humimic_core.robot_config import load_robot_config
from humimic_core.ros_util import RELIABLE_QOS, SENSOR_QOS, declare, run_node
from humimic_core.topics import JOINT_STATES, ROBOT_FACE_IMAGE, ROBOT_FACE_INFO
from humimic_perception.intrinsics import Intrinsics
from humimic_perception.ros_convert import camera_info_msg, image_to_msg
from humimic_perception.sim.face_twin import FaceTwin, joint_positions
from humimic_perception.sim.neutral_face import prepare


class TwinNode(Node):
    def __init__(self) -> None:
        super().__init__("face_twin")
        fixed = functools.partial(declare, self, read_only=True)
        robot_config = fixed("robot_config", "", 'robot config YAML with the joints\' twin entries; "" = '
                                                 "config/robot_face.yaml")
        source = fixed("neutral_face", "", 'image or video of a relaxed, frontal face; "" = single_face.mp4 of the '
                                           "sample media (a bare name is looked up there, then in ../shared/media)")
        frame = fixed("neutral_frame", 0, "frame of neutral_face to use", bounds=(0, 1_000_000))
        size = fixed("size", 512, "width and height of the rendered image (pixels)", bounds=(128, 2048))
        rate = fixed("rate", 30.0, "Hz: highest render rate (each new joint state is rendered once)",
                     bounds=(1.0, 240.0))
        self.frame_id = fixed("frame_id", "robot_face_camera_optical_frame", "optical frame of the twin's camera")
        hfov = fixed("horizontal_fov_deg", 60.0, "horizontal field of view for CameraInfo", bounds=(10.0, 170.0))
        config = load_robot_config(robot_config or config_file("robot_face.yaml"))
        self.twin = FaceTwin(prepare(source, frame, size), config.servos)
        self.intrinsics = Intrinsics.from_fov(size, size, hfov)
        self.image_pub = self.create_publisher(Image, ROBOT_FACE_IMAGE, SENSOR_QOS)
        self.info_pub = self.create_publisher(CameraInfo, ROBOT_FACE_INFO, SENSOR_QOS)
        self.create_subscription(JointState, JOINT_STATES, self.on_joint_states, RELIABLE_QOS)
        self.latest: Optional[JointState] = None
        self.rendered = 0
        self.create_timer(1.0 / rate, self.on_tick)
        self.get_logger().info(f"rendering the robot's face ({len(self.twin.fields)} moves, "
                               f"{len(self.twin.rotations)} turns) at up to {rate:g} Hz")

    def on_joint_states(self, msg: JointState) -> None:
        self.latest = msg

    def on_tick(self) -> None:
        msg, self.latest = self.latest, None
        if msg is None:
            return
        image = self.twin.render(joint_positions(msg.name, msg.position))
        header = Header(stamp=msg.header.stamp, frame_id=self.frame_id)
        self.info_pub.publish(camera_info_msg(self.intrinsics, header))
        self.image_pub.publish(image_to_msg(image, header))
        self.rendered += 1


def main(args: Optional[list] = None) -> None:
    run_node(TwinNode, args, fatal=(ValueError, OSError), name="face_twin")


if __name__ == "__main__":
    main()
