"""Emulated Dynamixel servos answering Protocol 2.0 packets (pure logic, no I/O).

Each servo holds a byte-addressed control table laid out and initialised as its model's spec says
(control_tables.MODELS: registers, units, factory defaults), its model number and ID.
``ServoEmulator.receive(bytes, now)`` returns the status packets a real bus would send back, each
with the time its last byte would arrive: the instruction's own time on the wire at the bus baud
rate, then per reply the servo's return delay (register 9) and the reply's time on the wire, one
after the other.

What the firmware does and this emulates: EEPROM registers locked while torque is on; a goal outside
the position limit registers refused (data limit error) and motion kept inside them; a trapezoidal
profile toward the goal at the profile velocity (or the velocity limit) and profile acceleration
(none when 0), braking to stop at the goal; present current (or load) from the position error;
temperature, input voltage and hardware error bits (overheating above the temperature limit, input
voltage outside the voltage limits, injected overload / electrical shock / encoder errors), torque
dropping for the bits in the Shutdown register, the alert bit (0x80) in every status packet while an
error is latched; reboot (0x08) clearing the errors after a boot time. Faults for tests: corrupted
packets and dropped replies at a rate, dead servos, heating up.
"""
from __future__ import annotations

import math
import random
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from humimic_core.robot_config import Servo
from humimic_driver import protocol as p
from humimic_core.control_tables import (BAUD_CODES, EFFORT, RETURN_DELAY_UNIT_S, VOLTS_PER_UNIT, HW_INPUT_VOLTAGE,
                                           HW_OVERHEATING, ModelSpec, Register, model)
from humimic_driver.motion_limits import STEP_S, steps_until, trapezoid_step

#: A partly received packet is dropped after this much silence on the bus (s).
RX_SILENCE_RESET_S = 0.05
#: A rebooted (or re-powered) servo answers nothing for this long (s).
BOOT_TIME_S = 0.1
#: Present current (or load) units per degree of position error while torque is on (2 per X-series tick).
EFFORT_PER_DEGREE = 2 * 4096 / 360
#: Largest present load (0.1 % units) of a model without a current limit.
FULL_LOAD = 1000


class EmulatedServo:
    """One servo: its control table, motion, temperature and hardware error state."""

    def __init__(self, servo_id: int, model_name: str, position: int) -> None:
        self.spec: ModelSpec = model(model_name)
        regs = self.spec.registers
        self._slices = {name: (r.address, r.address + r.size, r.signed) for name, r in regs.items()}
        self._slices[EFFORT] = self._slices[self.spec.effort_register]
        # ticks/s and ticks/s^2 per unit of the velocity and profile acceleration registers
        self.ticks_s_per_velocity_unit = self.spec.rad_s_per_velocity_unit / self.spec.rad_per_tick
        self.ticks_s2_per_acceleration_unit = self.spec.rad_s2_per_acceleration_unit / self.spec.rad_per_tick
        self.table = bytearray(max(r.address + r.size for r in regs.values()))
        self._owner: List[Optional[Register]] = [None] * len(self.table)
        for reg in regs.values():
            for a in range(reg.address, reg.address + reg.size):
                self._owner[a] = reg
        for name, value in self.spec.defaults.items():
            self.set(name, value)
        self.set("model_number", self.spec.model_number)
        self.set("id", servo_id)
        self.alive = True  # False: no power / cable cut: hears and answers nothing
        self.temperature = float(self.spec.defaults["present_temperature"])
        self.voltage = self.spec.defaults["present_input_voltage"] * VOLTS_PER_UNIT
        self.injected_errors = 0  # hardware error bits forced by a fault (overload, shock, encoder)
        self._heating: Optional[Tuple[float, float, float]] = None  # (start time, start temp, degC per s)
        self._position = float(position)  # ticks, and the profile's velocity (ticks/s)
        self._velocity = 0.0
        self._last_update: Optional[float] = None
        self._boot_until = -math.inf
        self._reset_ram()

    @property
    def id(self) -> int:
        return self.table[self.spec.registers["id"].address]

    @property
    def torque(self) -> bool:
        return bool(self.get("torque_enable"))

    @property
    def hardware_error(self) -> int:
        return self.get("hardware_error_status")

    def listening(self, now: float) -> bool:
        """Powered and not booting."""
        return self.alive and now >= self._boot_until

    def get(self, name: str) -> int:
        start, end, signed = self._slices[name]
        return int.from_bytes(self.table[start:end], "little", signed=signed)

    def set(self, name: str, value: int) -> None:
        start, end, _ = self._slices[name]
        self.table[start:end] = p.le_bytes(value, end - start)

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
        before = bytes(self.table)
        self.table[address:end] = data
        touched = {r for r in owners if r is not None}
        regs = self.spec.registers
        if regs["goal_position"] in touched and not (
                self.get("min_position_limit") <= self.get("goal_position") <= self.get("max_position_limit")):
            self.table[:] = before
            return p.ERR_DATA_LIMIT
        if regs["profile_velocity"] in touched and self.get("profile_velocity") > self.get("velocity_limit"):
            self.table[:] = before
            return p.ERR_DATA_LIMIT
        if self.hardware_error & self.get("shutdown"):
            self.set("torque_enable", 0)  # no torque until rebooted
        return 0

    def reboot(self, now: float) -> None:
        """Restart: RAM back to defaults (torque off, errors cleared, goal = present position), EEPROM
        kept; deaf for BOOT_TIME_S."""
        self._reset_ram()
        self.injected_errors = 0
        self._boot_until = now + BOOT_TIME_S

    def overheat(self, now: float, seconds: float) -> None:
        """Heat up steadily to 1 degC above the temperature limit in ``seconds``, then stay there."""
        self.update(now)
        target = self.get("temperature_limit") + 1.0
        self._heating = (now, self.temperature, (target - self.temperature) / max(seconds, 1e-6))

    def set_temperature(self, now: float, celsius: float) -> None:
        self.update(now)
        self._heating = None
        self.temperature = celsius

    def _reset_ram(self) -> None:
        for name, reg in self.spec.registers.items():
            if not reg.eeprom:
                self.set(name, self.spec.defaults.get(name, 0))
        self.set("goal_position", round(self._position))
        self.set("present_position", round(self._position))
        self.set("present_temperature", round(self.temperature))
        self.set("present_input_voltage", round(self.voltage / VOLTS_PER_UNIT))

    def update(self, now: float) -> None:
        """Advance temperature, hardware errors and motion to time ``now`` (seconds, monotonic)."""
        if self._last_update is None:
            self._last_update = now
        steps = steps_until(self._last_update, now, math.inf)
        self._last_update += steps * STEP_S
        self._update_temperature(now)
        self._update_errors()
        if not self.torque:
            self._velocity = 0.0
            for name in ("present_velocity", EFFORT, "moving"):
                self.set(name, 0)
            return
        lo, hi = self.get("min_position_limit"), self.get("max_position_limit")
        target = float(min(hi, max(lo, self.get("goal_position"))))
        units = self.get("profile_velocity") or self.get("velocity_limit")
        acceleration = self.get("profile_acceleration")
        vmax = units * self.ticks_s_per_velocity_unit
        amax = acceleration * self.ticks_s2_per_acceleration_unit if acceleration else math.inf
        for _ in range(steps):  # the firmware's trapezoidal profile toward the goal
            if self._position == target and self._velocity == 0.0:
                break
            self._position, self._velocity = trapezoid_step(self._position, self._velocity, target, vmax, amax)
        limit = self.get("current_limit") if "current_limit" in self._slices else FULL_LOAD
        effort = EFFORT_PER_DEGREE * math.degrees((target - self._position) * self.spec.rad_per_tick)
        position = self._position  # measured now: part way along the profile's next step
        if now > self._last_update and (position != target or self._velocity != 0.0):
            following, _ = trapezoid_step(position, self._velocity, target, vmax, amax)
            position += (following - position) * (now - self._last_update) / STEP_S
        self.set("present_position", round(position))
        self.set("present_velocity", round(self._velocity / self.ticks_s_per_velocity_unit))
        self.set(EFFORT, max(-limit, min(limit, round(effort))))
        self.set("moving", int(self._position != target or self._velocity != 0.0))

    def _update_temperature(self, now: float) -> None:
        if self._heating is not None:
            start, start_temp, rate = self._heating
            ceiling = self.get("temperature_limit") + 1.0
            self.temperature = max(start_temp, min(ceiling, start_temp + rate * (now - start)))
        self.set("present_temperature", round(self.temperature))
        self.set("present_input_voltage", round(self.voltage / VOLTS_PER_UNIT))

    def _update_errors(self) -> None:
        bits = self.hardware_error | self.injected_errors
        if self.temperature > self.get("temperature_limit"):
            bits |= HW_OVERHEATING
        volts = self.get("present_input_voltage")
        if not self.get("min_voltage_limit") <= volts <= self.get("max_voltage_limit"):
            bits |= HW_INPUT_VOLTAGE
        self.set("hardware_error_status", bits)
        if bits & self.get("shutdown"):
            self.set("torque_enable", 0)


class ServoEmulator:
    """A bus of emulated servos: feed it instruction bytes, get timed status bytes back.

    ``crc_rate``: fraction of packets corrupted on the wire, both ways (a corrupt instruction is
    answered with a CRC error by the servo it addresses, or lost if broadcast; a corrupt reply
    reaches the client with a bad CRC). ``drop_rate``: fraction of replies that never arrive.
    """

    def __init__(self, servos: Iterable[EmulatedServo], baud: int = 1000000, seed: Optional[int] = None) -> None:
        self._servos: Dict[int, EmulatedServo] = {}
        for servo in servos:
            if servo.id in self._servos:
                raise ValueError(f"two emulated servos with ID {servo.id}")
            self._servos[servo.id] = servo
        self.baud = baud
        self.crc_rate = 0.0
        self.drop_rate = 0.0
        self.rng = random.Random(seed)
        self._parser = p.PacketParser()
        self._last_rx = -math.inf
        self._line_free = -math.inf

    @property
    def servos(self) -> Dict[int, EmulatedServo]:
        """Servos by ID."""
        return self._servos

    def update(self, now: float) -> None:
        for servo in self._servos.values():
            servo.update(now)

    def receive(self, data: bytes, now: float) -> List[Tuple[float, bytes]]:
        """Bytes the client wrote at time ``now`` -> [(time the reply is complete, reply bytes)]."""
        if self._parser.pending and now - self._last_rx > RX_SILENCE_RESET_S:
            self._parser.clear()
        self._last_rx = now
        received = max(now, self._line_free) + p.transmission_time(len(data), self.baud)
        self._line_free = received
        packets = self._parser.feed(data)
        if packets:
            self.update(received)
        out = []
        for packet in packets:
            if isinstance(packet, p.Packet) and packet.instruction != p.INST_STATUS and self._chance(self.crc_rate):
                packet = p.CorruptPacket(packet.id, b"")
            for servo, reply in self._answer(packet, received):
                if self._chance(self.drop_rate):
                    continue
                start = self._line_free + servo.get("return_delay_time") * RETURN_DELAY_UNIT_S
                self._line_free = start + p.transmission_time(len(reply), self.baud)
                if self._chance(self.crc_rate):
                    reply = reply[:-1] + bytes((reply[-1] ^ 0x5A,))
                out.append((self._line_free, reply))
        return out

    def _chance(self, rate: float) -> bool:
        return rate > 0.0 and self.rng.random() < rate

    def _answer(self, packet, now: float) -> List[Tuple[EmulatedServo, bytes]]:
        if isinstance(packet, p.CorruptPacket):
            servo = self._servos.get(packet.id)
            if servo is not None and servo.listening(now):
                return [(servo, self._status(servo, p.ERR_CRC))]
            return []
        if packet.is_status:
            return []
        if packet.id == p.BROADCAST_ID:
            return self._broadcast(packet, now)
        servo = self._servos.get(packet.id)
        if servo is None or not servo.listening(now):
            return []
        replies = self._handle(servo, packet, now)
        self._rekey()
        return [(servo, r) for r in replies]

    def _broadcast(self, packet: p.Packet, now: float) -> List[Tuple[EmulatedServo, bytes]]:
        inst, params = packet.instruction, packet.params
        listening = [s for _, s in sorted(self._servos.items()) if s.listening(now)]
        if inst == p.INST_PING:
            return [(s, self._ping(s)) for s in listening]
        if inst == p.INST_SYNC_READ:
            return self._sync_read(params, now)
        if inst == p.INST_SYNC_WRITE:
            try:
                address, _, blocks = p.parse_sync_write(params)
            except ValueError:
                return []
            for sid, data in blocks.items():
                servo = self._servos.get(sid)
                if servo is not None and servo.listening(now):
                    servo.write(address, data)
        elif inst == p.INST_WRITE and len(params) > 2:
            for servo in listening:
                servo.write(p.le_int(params[:2]), params[2:])
        self._rekey()
        return []

    def _handle(self, servo: EmulatedServo, packet: p.Packet, now: float) -> List[bytes]:
        inst, params = packet.instruction, packet.params
        level = servo.get("status_return_level")
        if inst == p.INST_PING:
            return [self._ping(servo)]
        if inst == p.INST_READ:
            if len(params) != 4:
                return self._reply(servo, level >= 1, p.ERR_DATA_LENGTH)
            error, data = servo.read(*p.parse_address_length(params))
            return self._reply(servo, level >= 1, error, data)
        if inst == p.INST_WRITE:
            if len(params) < 3:
                return self._reply(servo, level >= 2, p.ERR_DATA_LENGTH)
            sid = servo.id
            error = servo.write(p.le_int(params[:2]), params[2:])
            reply = p.encode_status(sid, error | (p.ERR_ALERT if servo.hardware_error else 0))
            return [reply] if level >= 2 else []  # answered under the ID it was addressed to
        if inst == p.INST_REBOOT:
            reply = self._reply(servo, level >= 2, 0)
            servo.reboot(now)
            return reply
        return self._reply(servo, level >= 2, p.ERR_INSTRUCTION)

    @classmethod
    def _reply(cls, servo: EmulatedServo, reply: bool, error: int, data: bytes = b"") -> List[bytes]:
        return [cls._status(servo, error, data)] if reply else []

    @staticmethod
    def _status(servo: EmulatedServo, error: int, data: bytes = b"") -> bytes:
        return p.encode_status(servo.id, error | (p.ERR_ALERT if servo.hardware_error else 0), data)

    @classmethod
    def _ping(cls, servo: EmulatedServo) -> bytes:
        data = p.le_bytes(servo.get("model_number"), 2) + p.le_bytes(servo.get("firmware_version"), 1)
        return cls._status(servo, 0, data)

    def _sync_read(self, params: bytes, now: float) -> List[Tuple[EmulatedServo, bytes]]:
        try:
            address, length, ids = p.parse_sync_read(params)
        except ValueError:
            return []
        replies = []
        for sid in ids:  # each servo answers after the one listed before it (a silent one is skipped)
            servo = self._servos.get(sid)
            if servo is not None and servo.listening(now) and servo.get("status_return_level") >= 1:
                error, data = servo.read(address, length)
                replies.append((servo, self._status(servo, error, data)))
        return replies

    def _rekey(self) -> None:
        """Follow ID changes written to the ID register."""
        if any(sid != s.id for sid, s in self._servos.items()):
            self._servos = {s.id: s for s in self._servos.values()}


def servos_from_config(servos: Sequence[Servo], baud: int) -> List[EmulatedServo]:
    """Emulated servos for the robot config's servos, each resting at its neutral position and set to
    the bus baud rate (otherwise at factory settings: return delay 500 us, full position range)."""
    emulated = []
    for s in servos:
        servo = EmulatedServo(s.id, s.model, s.to_tick(s.neutral))
        servo.set("baud_rate", BAUD_CODES[baud])
        emulated.append(servo)
    return emulated
