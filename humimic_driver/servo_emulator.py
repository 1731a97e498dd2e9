"""Emulated Dynamixel X-series servos answering Protocol 2.0 packets (pure logic, no I/O).

Each servo holds a byte-addressed control table initialised from the model's factory defaults
(control_tables.MODELS), its model number and ID. ``ServoEmulator.receive(bytes, now)`` returns the
status packets a real bus would send back. Motion is simple: with torque on, present position
moves toward the goal (clamped to the position limit registers) at the profile velocity, or at
the model's velocity limit when the profile velocity is 0. The goal register keeps the value
written, so a client's writes can be inspected exactly.
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from humimic_core.robot_config import Servo
from humimic_driver import protocol as p
from humimic_driver.control_tables import TICKS_PER_REV, ModelSpec, Register, model

#: A partly received packet is dropped after this much silence on the bus (s).
RX_SILENCE_RESET_S = 0.05
#: Ticks per second for one unit (0.229 rev/min) of the velocity registers.
TICKS_S_PER_VELOCITY_UNIT = 0.229 / 60.0 * TICKS_PER_REV


class EmulatedServo:
    """One servo: its control table and the state of its simple motion model."""

    def __init__(self, servo_id: int, model_name: str, position: int) -> None:
        self.spec: ModelSpec = model(model_name)
        regs = self.spec.registers
        self.table = bytearray(max(r.address + r.size for r in regs.values()))
        self._owner: List[Optional[Register]] = [None] * len(self.table)
        for reg in regs.values():
            for a in range(reg.address, reg.address + reg.size):
                self._owner[a] = reg
        for name, value in self.spec.defaults.items():
            self.set(name, value)
        self.set("model_number", self.spec.model_number)
        self.set("id", servo_id)
        self._position = float(position)
        self._last_update: Optional[float] = None
        self._reset_ram()

    @property
    def id(self) -> int:
        return self.table[self.spec.registers["id"].address]

    @property
    def torque(self) -> bool:
        return bool(self.get("torque_enable"))

    def get(self, name: str) -> int:
        reg = self.spec.registers[name]
        return p.le_int(self.table[reg.address:reg.address + reg.size], reg.signed)

    def set(self, name: str, value: int) -> None:
        reg = self.spec.registers[name]
        self.table[reg.address:reg.address + reg.size] = p.le_bytes(value, reg.size)

    def read(self, address: int, length: int) -> Tuple[int, bytes]:
        """(error, data) of a READ."""
        if length == 0:
            return p.ERR_DATA_LENGTH, b""
        if address + length > len(self.table):
            return p.ERR_ACCESS, b""
        return 0, bytes(self.table[address:address + length])

    def write(self, address: int, data: bytes) -> int:
        """Apply a WRITE; returns the error number (0 = written)."""
        end = address + len(data)
        if not data:
            return p.ERR_DATA_LENGTH
        if end > len(self.table):
            return p.ERR_ACCESS
        owners = self._owner[address:end]
        if any(r is None or r.readonly for r in owners):
            return p.ERR_ACCESS
        if self.torque and any(r.eeprom for r in owners):  # type: ignore[union-attr]
            return p.ERR_ACCESS
        self.table[address:end] = data
        return 0

    def reboot(self) -> None:
        """Restart: RAM back to defaults, torque off, goal at the present position; EEPROM kept."""
        self._reset_ram()

    def _reset_ram(self) -> None:
        for name, reg in self.spec.registers.items():
            if not reg.eeprom:
                self.set(name, self.spec.defaults.get(name, 0))
        self.set("goal_position", round(self._position))
        self.set("present_position", round(self._position))

    def update(self, now: float) -> None:
        """Advance the motion model to time ``now`` (seconds, monotonic)."""
        last, self._last_update = self._last_update, now
        if not self.torque:
            self.set("present_velocity", 0)
            self.set("moving", 0)
            return
        lo, hi = self.get("min_position_limit"), self.get("max_position_limit")
        target = float(min(hi, max(lo, self.get("goal_position"))))
        error = target - self._position
        units = self.get("profile_velocity") or self.get("velocity_limit")
        speed = units * TICKS_S_PER_VELOCITY_UNIT if units else math.inf
        dt = 0.0 if last is None else max(0.0, now - last)
        step = speed * dt
        if abs(error) <= step:
            self._position = target
        else:
            self._position += math.copysign(step, error)
        moving = self._position != target
        self.set("present_position", round(self._position))
        self.set("present_velocity", int(math.copysign(units, error)) if moving else 0)
        self.set("moving", int(moving))


class ServoEmulator:
    """A bus of emulated servos: feed it instruction bytes, get status bytes back."""

    def __init__(self, servos: Iterable[EmulatedServo]) -> None:
        self._servos: Dict[int, EmulatedServo] = {}
        for servo in servos:
            if servo.id in self._servos:
                raise ValueError(f"two emulated servos with ID {servo.id}")
            self._servos[servo.id] = servo
        self._parser = p.PacketParser()
        self._last_rx = -math.inf

    @property
    def servos(self) -> Dict[int, EmulatedServo]:
        """Servos by ID."""
        return self._servos

    def receive(self, data: bytes, now: float) -> bytes:
        """Bytes received from the bus at time ``now`` -> bytes the servos send back."""
        if self._parser.pending and now - self._last_rx > RX_SILENCE_RESET_S:
            self._parser.clear()
        self._last_rx = now
        packets = self._parser.feed(data)
        if packets:
            for servo in self._servos.values():
                servo.update(now)
        replies = []
        for packet in packets:
            if isinstance(packet, p.CorruptPacket):
                if packet.id in self._servos:
                    replies.append(p.encode_status(packet.id, p.ERR_CRC))
            elif not packet.is_status:
                replies.extend(self._handle(packet))
        return b"".join(replies)

    def _handle(self, packet: p.Packet) -> List[bytes]:
        inst, params = packet.instruction, packet.params
        if packet.id == p.BROADCAST_ID:
            if inst == p.INST_PING:
                return [self._ping(s) for _, s in sorted(self._servos.items())]
            if inst == p.INST_SYNC_READ:
                return self._sync_read(params)
            if inst == p.INST_SYNC_WRITE:
                self._sync_write(params)
            elif inst == p.INST_WRITE and len(params) > 2:
                for servo in list(self._servos.values()):
                    servo.write(p.le_int(params[:2]), params[2:])
                self._rekey()
            return []
        servo = self._servos.get(packet.id)
        if servo is None:
            return []
        level = servo.get("status_return_level")
        if inst == p.INST_PING:
            return [self._ping(servo)]
        if inst == p.INST_READ:
            if len(params) != 4:
                return self._status(servo, level >= 1, p.ERR_DATA_LENGTH)
            error, data = servo.read(*p.parse_address_length(params))
            return self._status(servo, level >= 1, error, data)
        if inst == p.INST_WRITE:
            if len(params) < 3:
                return self._status(servo, level >= 2, p.ERR_DATA_LENGTH)
            sid = servo.id
            error = servo.write(p.le_int(params[:2]), params[2:])
            self._rekey()
            reply = p.encode_status(sid, error)  # answered under the ID it was addressed to
            return [reply] if level >= 2 else []
        if inst == p.INST_REBOOT:
            reply = self._status(servo, level >= 2, 0)
            servo.reboot()
            return reply
        return self._status(servo, level >= 2, p.ERR_INSTRUCTION)

    @staticmethod
    def _status(servo: EmulatedServo, reply: bool, error: int, data: bytes = b"") -> List[bytes]:
        return [p.encode_status(servo.id, error, data)] if reply else []

    @staticmethod
    def _ping(servo: EmulatedServo) -> bytes:
        data = p.le_bytes(servo.get("model_number"), 2) + p.le_bytes(servo.get("firmware_version"), 1)
        return p.encode_status(servo.id, 0, data)

    def _sync_read(self, params: bytes) -> List[bytes]:
        try:
            address, length, ids = p.parse_sync_read(params)
        except ValueError:
            return []
        replies = []
        for sid in ids:  # each servo answers after the one listed before it
            servo = self._servos.get(sid)
            if servo is not None and servo.get("status_return_level") >= 1:
                error, data = servo.read(address, length)
                replies.append(p.encode_status(sid, error, data))
        return replies

    def _sync_write(self, params: bytes) -> None:
        try:
            address, _, blocks = p.parse_sync_write(params)
        except ValueError:
            return
        for sid, data in blocks.items():
            servo = self._servos.get(sid)
            if servo is not None:
                servo.write(address, data)
        self._rekey()

    def _rekey(self) -> None:
        """Follow ID changes written to the ID register."""
        if any(sid != s.id for sid, s in self._servos.items()):
            self._servos = {s.id: s for s in self._servos.values()}


def servos_from_config(servos: Sequence[Servo]) -> List[EmulatedServo]:
    """Emulated servos for the robot config's servos, each resting at its neutral position."""
    return [EmulatedServo(s.id, s.model, s.to_tick(s.neutral)) for s in servos]
