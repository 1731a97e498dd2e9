"""dynamixel_driver: /joint_commands -> servo goals; servo states -> /joint_states; /diagnostics.

Thin rclpy shell over ServoDriver. Callbacks run one at a time (run_node's executor, the events or
the single-threaded one, runs them in its one thread), so bus accesses never overlap. The bus
(port, baud rate) comes from the robot config's ``bus:`` section; the ``port`` and ``baud_rate``
parameters override it when set. With ``realtime_priority`` the driver's threads run under
SCHED_FIFO where the process may (run_node applies it: humimic_core.ros_util.use_realtime_priority).
"""
from __future__ import annotations

import contextlib
import dataclasses
import signal
import time
from typing import Dict, Iterator, Optional

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import JointState

from humimic_core import paths
from humimic_core.robot_config import ConfigError, load_robot_config
from humimic_core.ros_util import RELIABLE_QOS, declare_settings, publish_trace, run_node
from humimic_core.stamps import to_ns
from humimic_core.trace import FrameTrace
from humimic_core.topics import DIAGNOSTICS, JOINT_COMMANDS, JOINT_STATES, WRITTEN_GOALS
from humimic_driver.bus import BusError, ServoBus
from humimic_driver.driver_settings import DriverNodeSettings, DriverSettings
from humimic_driver.read_phase import ReadPhase
from humimic_driver.servo_driver import ServoDriver

#: Seconds between throttled warnings.
THROTTLE_S = 5.0
#: Seconds between /diagnostics messages.
DIAGNOSTICS_PERIOD_S = 1.0
#: The trace's stages (humimic_core/trace.py): a command received, written to the bus, its goals
#: sent on /driver/written_goals.
TRACE_STAGES = ("receive", "written", "sent")


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT / SIGTERM ignored inside (a second Ctrl-C must not abort making the servos safe)."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class DriverNode(Node):
    def __init__(self) -> None:
        super().__init__("dynamixel_driver")
        node = DriverNodeSettings.from_parameters(declare_settings(self, DriverNodeSettings))
        settings = DriverSettings.from_parameters(declare_settings(self, DriverSettings))
        config = load_robot_config(node.robot_config or paths.config_file("robot_face.yaml"))
        bus_config = dataclasses.replace(config.bus, port=node.port or config.bus.port,
                                         baud_rate=node.baud_rate or config.bus.baud_rate)
        self._driver = ServoDriver(ServoBus(config.servos, bus_config), settings, self._now_ns(),
                                   caps=config.motion_caps(settings.max_velocity, settings.max_acceleration),
                                   write_period_s=1.0 / node.state_rate)
        self._read_budget_s = node.read_budget_s
        self._phase = ReadPhase() if node.reads_between_commands else None
        self.realtime_priority = node.realtime_priority  # run_node applies it
        self._joints = [s.joint for s in config.servos]
        self._states = self.create_publisher(JointState, JOINT_STATES, RELIABLE_QOS)
        self._written = self.create_publisher(JointState, WRITTEN_GOALS, RELIABLE_QOS)
        self._diagnostics = self.create_publisher(DiagnosticArray, DIAGNOSTICS, 10)
        self.create_subscription(JointState, JOINT_COMMANDS, self._on_command, RELIABLE_QOS)
        self.trace = FrameTrace(self.get_name(), TRACE_STAGES)
        publish_trace(self, self.trace)
        self.create_timer(1.0 / node.state_rate, self._on_state_timer)
        self.create_timer(1.0 / node.health_rate, self._on_health_timer)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self._driver.start()  # last: the timers only fire once spinning
        self._log_events()
        self.get_logger().info(f"{len(self._joints)} servos ready on {bus_config.port} at {bus_config.baud_rate} baud")

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_command(self, msg: JointState) -> None:
        stamp = to_ns(msg.header.stamp)
        self.trace.mark(stamp, "receive")
        if self._phase is not None:
            self._phase.command(time.monotonic())
        try:
            written = self._driver.command(list(msg.name), list(msg.position), stamp, self._now_ns())
        except ValueError as exc:
            self.get_logger().warning(f"ignoring /joint_commands: {exc}", throttle_duration_sec=THROTTLE_S)
            return
        self._log_events()
        if written is None:
            return
        if written.unknown:
            self.get_logger().warning(f"/joint_commands names no joint of this robot: {', '.join(written.unknown)}",
                                      throttle_duration_sec=THROTTLE_S)
        self.trace.mark(stamp, "written")
        self._publish_goals(written.goals, msg.header.stamp)
        self.trace.mark(stamp, "sent")
        if self._phase is not None and self._phase.read_after_command():
            self._read_states()

    def _on_state_timer(self) -> None:
        neutral = self._driver.watchdog(self._now_ns())
        if neutral is not None:
            self.get_logger().info(f"no /joint_commands for {self._driver.settings.command_timeout:g} s: "
                                   f"gliding to neutral at {self._driver.settings.neutral_velocity:g} rad/s")
            self._publish_goals(neutral, self.get_clock().now().to_msg())
        else:
            self._driver.follow()  # setpoints still on their way (not published: /driver/written_goals is per command)
        if self._phase is None or self._phase.timer_may_read(time.monotonic()):
            self._read_states()

    def _read_states(self) -> None:
        """One sync read of the servos' states -> /joint_states."""
        start = time.monotonic()
        states = self._driver.read_state(self._read_budget_s)
        if self._phase is not None:
            self._phase.read(time.monotonic() - start)
        self._log_events()
        if not states:
            return
        joints = [j for j in self._joints if j in states]
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = joints
        msg.position = [states[j].position for j in joints]
        msg.velocity = [states[j].velocity for j in joints]
        msg.effort = [states[j].effort for j in joints]
        self._states.publish(msg)

    def _on_health_timer(self) -> None:
        self._driver.poll_health()
        self._log_events()

    def _publish_goals(self, goals: Dict[str, float], stamp: Time) -> None:
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = [j for j in self._joints if j in goals]
        msg.position = [goals[j] for j in msg.name]
        self._written.publish(msg)

    def _publish_diagnostics(self) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [DiagnosticStatus(level=bytes((r.level,)), name=r.name, message=r.message,
                                       hardware_id=r.hardware_id,
                                       values=[KeyValue(key=k, value=v) for k, v in r.values.items()])
                      for r in self._driver.diagnostics()]
        self._diagnostics.publish(msg)

    def _log_events(self) -> None:
        logger = self.get_logger()
        for severity, message in self._driver.events:  # one call site per severity, as rclpy requires
            if severity == "error":
                logger.error(message)
            elif severity == "warn":
                logger.warning(message)
            else:
                logger.info(message)
        self._driver.events.clear()

    def shutdown(self) -> None:
        """Neutral, then torque off (if configured), then close the port; not interruptible by signals."""
        with signals_deferred():
            for problem in self._driver.shutdown():
                self.get_logger().error(f"shutdown: {problem}")


def main(args: Optional[list] = None) -> None:
    run_node(DriverNode, args, fatal=(BusError, ConfigError, ValueError), exit_code=1, name="dynamixel_driver")


if __name__ == "__main__":
    main()
