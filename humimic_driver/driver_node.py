"""dynamixel_driver: /joint_commands -> servo goals, present positions -> /joint_states.

Thin rclpy shell over ServoDriver. Callbacks run one at a time (single-threaded executor), so
bus accesses never overlap.
"""
from __future__ import annotations

import sys
from typing import Dict, Optional

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import JointState

from humimic_core import paths
from humimic_core.robot_config import ConfigError, load_robot_config
from humimic_core.ros_util import RELIABLE_QOS, declare, run_node
from humimic_core.stamps import to_ns
from humimic_driver.bus import BusError, ServoBus
from humimic_driver.servo_driver import ServoDriver

#: Seconds between throttled warnings.
THROTTLE_S = 5.0


class DriverNode(Node):
    def __init__(self) -> None:
        super().__init__("dynamixel_driver")
        robot_config = declare(self, "robot_config", "", "robot config YAML; '' = the package's config/robot_face.yaml")
        port = declare(self, "port", "/tmp/humimic_servo_bus", "serial port of the servo bus")
        baud = declare(self, "baud_rate", 1000000, "bus baud rate")
        state_rate = declare(self, "state_rate", 50.0, "Hz of present-position reads published on /joint_states")
        timeout = declare(self, "command_timeout", 1.0, "s without /joint_commands before neutral is written once")
        self._torque_off = declare(self, "torque_off_on_shutdown", True,
                                   "disable torque after moving to neutral on shutdown")
        for name, value in (("state_rate", state_rate), ("command_timeout", timeout)):
            if value <= 0.0:
                raise ValueError(f"parameter {name} must be > 0, got {value}")
        config = load_robot_config(robot_config or paths.config_file("robot_face.yaml"))
        bus = ServoBus(config.servos)
        bus.open(port, baud)
        try:
            bus.start()
        except BaseException:
            bus.close()
            raise
        self._driver = ServoDriver(bus, int(timeout * 1e9), self._now_ns())
        self._joints = [s.joint for s in config.servos]
        self._states = self.create_publisher(JointState, "/joint_states", RELIABLE_QOS)
        self._written = self.create_publisher(JointState, "/driver/written_goals", RELIABLE_QOS)
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(JointState, "/joint_commands", self._on_command, RELIABLE_QOS)
        self.create_timer(1.0 / state_rate, self._on_state_timer)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"{len(self._joints)} servos ready on {port} at {baud} baud")

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_command(self, msg: JointState) -> None:
        try:
            written = self._driver.command(list(msg.name), list(msg.position), to_ns(msg.header.stamp),
                                           self._now_ns())
        except ValueError as exc:
            self.get_logger().warning(f"ignoring /joint_commands: {exc}", throttle_duration_sec=THROTTLE_S)
            return
        if written is None:
            self._warn_bus()
            return
        if written.unknown:
            self.get_logger().warning(f"/joint_commands names no joint of this robot: {', '.join(written.unknown)}",
                                      throttle_duration_sec=THROTTLE_S)
        self._publish_goals(written.goals, msg.header.stamp)

    def _on_state_timer(self) -> None:
        neutral = self._driver.watchdog(self._now_ns())
        if neutral is not None:
            self.get_logger().info("no /joint_commands: moved to neutral")
            self._publish_goals(neutral, self.get_clock().now().to_msg())
        reading = self._driver.read_state()
        if reading is None:
            self._warn_bus()
            return
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = self._joints
        msg.position = [reading.positions[j] for j in self._joints]
        msg.velocity = [reading.velocities[j] for j in self._joints]
        self._states.publish(msg)

    def _publish_goals(self, goals: Dict[str, float], stamp: Time) -> None:
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = self._joints
        msg.position = [goals[j] for j in self._joints]
        self._written.publish(msg)

    def _publish_diagnostics(self) -> None:
        health = self._driver.health()
        status = DiagnosticStatus(
            level=DiagnosticStatus.OK if health.ok else DiagnosticStatus.ERROR,
            name="dynamixel_driver: servo bus", message=health.message,
            hardware_id=self._driver.bus.port_name,
            values=[KeyValue(key=k, value=v) for k, v in health.values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(msg)

    def _warn_bus(self) -> None:
        self.get_logger().warning(f"servo bus: {self._driver.last_error}", throttle_duration_sec=THROTTLE_S)

    def shutdown(self) -> None:
        """Neutral, then torque off (if configured), then close the port."""
        for problem in self._driver.shutdown(self._torque_off):
            self.get_logger().error(f"shutdown: {problem}")


def main(args: Optional[list] = None) -> None:
    try:
        run_node(DriverNode, args)
    except (BusError, ConfigError, ValueError) as exc:
        print(f"dynamixel_driver: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
