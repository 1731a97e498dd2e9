"""The robot's Dynamixel bus over dynamixel-sdk (Protocol 2.0): start-up checks, goals, states.

Pure logic, no ROS. Angles are joint radians; every goal goes through ``Servo.to_tick``, which
clamps it to the joint limits, so no command outside the limits ever reaches a servo. Comm
failures, and failures of the serial port itself, raise ``BusError``.
"""
from __future__ import annotations

import contextlib
import termios
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Sequence, Tuple

import dynamixel_sdk as sdk

from humimic_core.robot_config import Servo
from humimic_driver.control_tables import (MODEL_BY_NUMBER, POSITION_CONTROL_MODE, RAD_PER_TICK,
                                           RAD_S_PER_VELOCITY_UNIT, X_SERIES_REGISTERS)
from humimic_driver.protocol import le_bytes

_REG = X_SERIES_REGISTERS
_GOAL = _REG["goal_position"]
_VELOCITY = _REG["present_velocity"]
_POSITION = _REG["present_position"]
# present_velocity (128..131) and present_position (132..135) are adjacent: one sync read gets both.
assert _VELOCITY.address + _VELOCITY.size == _POSITION.address
#: A joint counts as arrived within this many ticks of its goal.
ARRIVED_TICKS = 2


class BusError(RuntimeError):
    """A servo bus problem; the message names the port, servo ID and joint where known."""


@dataclass(frozen=True)
class JointReading:
    """Present joint positions (rad) and velocities (rad/s), by joint name."""

    positions: Dict[str, float]
    velocities: Dict[str, float]


def _signed32(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


def _model_name(number: int) -> str:
    spec = MODEL_BY_NUMBER.get(number)
    return f"{spec.name} ({number})" if spec else f"unknown model number {number}"


class ServoBus:
    """The configured servos on one serial port; use ``open()``, ``start()``, then goals and reads."""

    def __init__(self, servos: Sequence[Servo]) -> None:
        if not servos:
            raise ValueError("ServoBus needs at least one servo")
        self.servos: Tuple[Servo, ...] = tuple(servos)
        self._by_joint: Dict[str, Servo] = {s.joint: s for s in self.servos}
        self._packets = sdk.PacketHandler(2.0)
        self._port: sdk.PortHandler | None = None
        self._port_name = ""

    @property
    def port_name(self) -> str:
        return self._port_name

    def open(self, port: str, baud: int) -> None:
        """Open the serial port at ``baud``; BusError naming the port if that fails."""
        handler = sdk.PortHandler(port)
        try:
            handler.openPort()
        except OSError as exc:
            raise BusError(f"cannot open servo bus port {port}: {exc}") from None
        if not handler.setBaudRate(baud):
            handler.closePort()
            raise BusError(f"servo bus port {port}: unsupported baud rate {baud}")
        self._port, self._port_name = handler, port
        self._sync_write = sdk.GroupSyncWrite(handler, self._packets, _GOAL.address, _GOAL.size)
        self._sync_read = sdk.GroupSyncRead(handler, self._packets, _VELOCITY.address,
                                            _VELOCITY.size + _POSITION.size)
        for servo in self.servos:
            self._sync_read.addParam(servo.id)

    def start(self) -> None:
        """Check every servo answers with its configured model, then hold the present pose in position mode.

        Per servo: torque off, operating mode 3 (position) if needed, goal = present position
        clamped to the joint limits, torque on.
        """
        self._check_models()
        for servo in self.servos:
            self._write(servo, "torque_enable", 0)
            if self._read(servo, "operating_mode") != POSITION_CONTROL_MODE:
                self._write(servo, "operating_mode", POSITION_CONTROL_MODE)
            present = _signed32(self._read(servo, "present_position"))
            self._write(servo, "goal_position", servo.to_tick(servo.from_tick(present)))
            self._write(servo, "torque_enable", 1)

    def write_goals(self, angles: Mapping[str, float]) -> Dict[str, float]:
        """Sync-write goal positions for the given joints; returns the clamped goals written (rad)."""
        self._handler()
        group = self._sync_write
        group.clearParam()
        written = {}
        for joint, angle in angles.items():
            servo = self._servo(joint)
            tick = servo.to_tick(angle)
            group.addParam(servo.id, list(le_bytes(tick, _GOAL.size)))
            written[joint] = servo.from_tick(tick)
        if written:
            with self._port_errors():
                result = group.txPacket()
            self._check(result, 0, f"sync write of goal positions on {self._port_name}")
        return written

    def read_state(self) -> JointReading:
        """Sync-read present position and velocity of every servo."""
        self._handler()
        group = self._sync_read
        with self._port_errors():
            result = group.txRxPacket()
        self._check(result, 0, f"sync read of present position/velocity on {self._port_name}")
        positions, velocities = {}, {}
        for servo in self.servos:
            if not group.isAvailable(servo.id, _VELOCITY.address, _VELOCITY.size + _POSITION.size):
                raise BusError(f"{self._where(servo)}: no present position in the sync read reply")
            tick = _signed32(group.getData(servo.id, _POSITION.address, _POSITION.size))
            units = _signed32(group.getData(servo.id, _VELOCITY.address, _VELOCITY.size))
            positions[servo.joint] = servo.from_tick(tick)
            velocities[servo.joint] = servo.direction * units * RAD_S_PER_VELOCITY_UNIT
        return JointReading(positions, velocities)

    def read_positions(self) -> Dict[str, float]:
        """Present joint positions (rad)."""
        return self.read_state().positions

    def move_to_neutral(self, timeout: float = 0.0) -> bool:
        """Write every joint's neutral goal; with ``timeout`` > 0 wait until they arrive.

        Returns True when all joints are within ARRIVED_TICKS of neutral (always True without waiting).
        """
        goals = self.write_goals({s.joint: s.neutral for s in self.servos})
        deadline = time.monotonic() + timeout
        while timeout > 0.0:
            present = self.read_positions()
            if all(abs(present[j] - g) <= ARRIVED_TICKS * RAD_PER_TICK for j, g in goals.items()):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def torque_off(self) -> None:
        """Disable torque on every servo (all are tried; BusError lists those that failed)."""
        failed = self._each(lambda s: self._write(s, "torque_enable", 0), self.servos)
        if failed:
            raise BusError("torque off failed: " + "; ".join(failed))

    def close(self) -> None:
        """Close the port (servo state is left as it is)."""
        if self._port is not None and self._port.is_open:
            self._port.closePort()
        self._port = None

    def __enter__(self) -> "ServoBus":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals -------------------------------------------------------------------------

    def _servo(self, joint: str) -> Servo:
        try:
            return self._by_joint[joint]
        except KeyError:
            raise ValueError(f"unknown joint {joint!r}; known: {', '.join(self._by_joint)}") from None

    def _where(self, servo: Servo) -> str:
        return f"servo ID {servo.id} (joint {servo.joint}) on {self._port_name}"

    def _handler(self) -> sdk.PortHandler:
        if self._port is None:
            raise BusError("servo bus is not open")
        return self._port

    @contextlib.contextmanager
    def _port_errors(self) -> Iterator[None]:
        """Around every SDK call: failures of the serial port itself (device gone, I/O error) as
        BusError, and the port usable again after any exception (also KeyboardInterrupt, so the
        shutdown sequence can still talk to the servos)."""
        try:
            yield
        except (OSError, termios.error) as exc:
            raise BusError(f"servo bus port {self._port_name} failed: {exc}") from None
        finally:
            if self._port is not None:
                self._port.is_using = False  # the SDK leaves it set when interrupted; calls never overlap here

    def _check(self, result: int, error: int, what: str) -> None:
        if result != sdk.COMM_SUCCESS:
            raise BusError(f"{what}: {self._packets.getTxRxResult(result)}")
        if error:
            raise BusError(f"{what}: {self._packets.getRxPacketError(error)}")

    def _check_models(self) -> None:
        def check(servo: Servo) -> None:
            with self._port_errors():
                number, result, error = self._packets.ping(self._handler(), servo.id)
            if result != sdk.COMM_SUCCESS:
                raise BusError(f"{self._where(servo)}: no answer to ping (expected model {servo.model}): "
                               f"{self._packets.getTxRxResult(result)}")
            if number != servo.spec.model_number:
                raise BusError(f"{self._where(servo)}: expected model {servo.model} "
                               f"({servo.spec.model_number}), found {_model_name(number)}")

        problems = self._each(check, self.servos)
        if problems:
            raise BusError("servo bus start-up failed: " + "; ".join(problems))

    @staticmethod
    def _each(action: Callable[[Servo], None], servos: Iterable[Servo]) -> List[str]:
        """Run ``action`` on every servo; the messages of those that failed."""
        problems = []
        for servo in servos:
            try:
                action(servo)
            except BusError as exc:
                problems.append(str(exc))
        return problems

    def _read(self, servo: Servo, name: str) -> int:
        reg = servo.spec.register(name)
        reader = {1: self._packets.read1ByteTxRx, 2: self._packets.read2ByteTxRx,
                  4: self._packets.read4ByteTxRx}[reg.size]
        with self._port_errors():
            value, result, error = reader(self._handler(), servo.id, reg.address)
        self._check(result, error, f"{self._where(servo)}: read {name}")
        return value

    def _write(self, servo: Servo, name: str, value: int) -> None:
        reg = servo.spec.register(name)
        writer = {1: self._packets.write1ByteTxRx, 2: self._packets.write2ByteTxRx,
                  4: self._packets.write4ByteTxRx}[reg.size]
        with self._port_errors():
            result, error = writer(self._handler(), servo.id, reg.address, value & ((1 << (8 * reg.size)) - 1))
        self._check(result, error, f"{self._where(servo)}: write {name}")
