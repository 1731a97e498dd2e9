"""The robot's Dynamixel bus (Protocol 2.0 on one serial port): start-up, goals, states, servo care.

Pure logic, no ROS. Every byte goes through dynamixel-sdk (see serial_link.py): goals by
``GroupSyncWrite``; states by ``GroupSyncRead`` requests whose replies are read one status packet
at a time and judged each on its own, so a missing or corrupt reply names its servo and loses
nothing else (missing ones are asked again); ping, read, write and reboot of one servo by the
SDK's ``PacketHandler``, retried on timeout or CRC error. Every register address, size and unit
comes from the servo's model (``humimic_core.control_tables.ModelSpec``); servos whose models lay
a block out differently share no sync transaction.

Angles are joint radians; every goal goes through ``Servo.to_tick``, which clamps it to the joint
limits, and start-up writes the same limits into each servo's own limit registers, so no command
outside the limits ever moves a servo.

Reply deadlines come from the bytes on the wire at the baud rate, each servo's return delay,
the USB adapter's latency timer and a margin (not from the SDK's 16 ms LATENCY_TIMER). Failures
of the port raise ``LinkError``; a servo that does not answer properly raises ``ServoError``
naming its ID and joint (both ``BusError``). Any status packet with the hardware-alert bit adds
its servo to ``alerts``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from dynamixel_sdk import COMM_RX_CORRUPT, COMM_RX_TIMEOUT, GroupSyncRead, GroupSyncWrite

from humimic_core.robot_config import BusConfig, Servo
from humimic_driver import protocol as p
from humimic_core.control_tables import (EFFORT, MODEL_BY_NUMBER, POSITION_CONTROL_MODE, RETURN_DELAY_UNIT_S,
                                           VOLTS_PER_UNIT, ModelSpec)
from humimic_driver.serial_link import BusError, LinkError, SerialLink, usb_latency_timer_ms  # noqa: F401 (errors re-exported)

#: A joint counts as arrived within this angle of its goal (2 ticks of a 4096-tick counter, 0.18 deg) ...
ARRIVED_RAD = 2 * 2.0 * math.pi / 4096
#: ... and, where it has to stay there, at most this fast (2 units of 0.229 rev/min). Angles, not counts:
#: 2 ticks of a 607,500-tick P-series counter (0.001 deg) are within its position controller's error.
AT_REST_RAD_S = 2 * 0.229 * 2.0 * math.pi / 60.0
#: Retries of a one-servo transaction, and the margin (s) added to every computed reply deadline.
DEFAULT_RETRIES, DEFAULT_TIMEOUT_MARGIN_S = 2, 0.010
#: Longest return delay a servo can have before start-up sets it (factory default 500 us).
_UNCONFIGURED_RETURN_DELAY_S = 254 * RETURN_DELAY_UNIT_S
#: Bytes of a sync read request besides one per ID: header 4, ID, LEN 2, INST, address 2, length 2, CRC 2.
_SYNC_READ_OVERHEAD = 14


class ServoError(BusError):
    """One servo did not answer, answered corrupt, or reported an error; names its ID and joint."""

    def __init__(self, servo: Servo, where: str, message: str, model_mismatch: bool = False,
                 no_reply: bool = False) -> None:
        super().__init__(f"servo ID {servo.id} (joint {servo.joint}) on {where}: {message}")
        self.servo = servo
        self.model_mismatch = model_mismatch  # another model answers at this ID: a config error, not a fault
        self.no_reply = no_reply  # every try's reply was missing or corrupt: the servo reported nothing wrong


@dataclass(frozen=True)
class Block:
    """Registers from ``first`` to ``last`` (inclusive), read in one transaction; where they lie is
    the servo model's control table."""

    first: str
    last: str

    def address(self, spec: ModelSpec) -> int:
        return spec.register(self.first).address

    def length(self, spec: ModelSpec) -> int:
        last = spec.register(self.last)
        return last.address + last.size - self.address(spec)

    def value(self, spec: ModelSpec, data: bytes, name: str) -> int:
        reg = spec.register(name)
        start = reg.address - self.address(spec)
        return p.le_int(data[start:start + reg.size], reg.signed)


#: Read every state cycle: present effort (current or load), velocity, position (adjacent registers).
STATE = Block(EFFORT, "present_position")
#: Read every health cycle: input voltage and temperature.
HEALTH = Block("present_input_voltage", "present_temperature")
HARDWARE_ERROR = Block("hardware_error_status", "hardware_error_status")


@dataclass
class SyncRead:
    """Outcome of a sync read with retries: data by servo ID, and what went wrong for whom."""

    data: Dict[int, bytes] = field(default_factory=dict)
    missing: List[int] = field(default_factory=list)  # no reply even after the retries
    failures: Dict[int, int] = field(default_factory=dict)  # ID -> failed attempts (timeouts + CRC errors)
    crc_errors: Dict[int, int] = field(default_factory=dict)  # ID -> corrupt replies
    stray: int = 0  # packets that belonged to nobody (corrupt IDs, duplicates)


@dataclass(frozen=True)
class ServoReading:
    """One servo's present position (rad), velocity (rad/s) and effort (N m, from its current)."""

    position: float
    velocity: float
    effort: float


def model_name(number: int) -> str:
    spec = MODEL_BY_NUMBER.get(number)
    return f"{spec.name} ({number})" if spec else f"unknown model number {number}"


def arrived(servo: Servo, position: float, goal: float) -> bool:
    """Whether the joint at ``position`` (rad) has arrived at ``goal``: within ARRIVED_RAD, or 2 ticks
    of a coarser counter."""
    return abs(position - goal) <= max(ARRIVED_RAD, 2 * servo.spec.rad_per_tick)


def at_rest(servo: Servo, velocity: float) -> bool:
    """Whether a joint moving at ``velocity`` (rad/s) stands still: AT_REST_RAD_S, or 2 units of a coarser
    velocity register."""
    return abs(velocity) <= max(AT_REST_RAD_S, 2 * servo.spec.rad_s_per_velocity_unit)


def decode_health(spec: ModelSpec, data: bytes) -> Tuple[float, float]:
    """(input voltage V, temperature degC) from the bytes of a HEALTH block."""
    return (HEALTH.value(spec, data, "present_input_voltage") * VOLTS_PER_UNIT,
            float(HEALTH.value(spec, data, "present_temperature")))


def velocity_units(servo: Servo, rad_s: float) -> int:
    """Profile velocity register value for ``rad_s`` (0 = no profile): rounded down, as it is a cap,
    and at most the model's limit."""
    if rad_s <= 0.0:
        return 0
    spec = servo.spec
    return max(1, min(spec.defaults["velocity_limit"], math.floor(rad_s / spec.rad_s_per_velocity_unit + 1e-9)))


def acceleration_units(servo: Servo, rad_s2: float) -> int:
    """Profile acceleration register value for ``rad_s2`` (0 = no profile), rounded down (a cap)."""
    if rad_s2 <= 0.0:
        return 0
    spec = servo.spec
    return max(1, min(spec.max_profile_acceleration, math.floor(rad_s2 / spec.rad_s2_per_acceleration_unit + 1e-9)))


class ServoBus:
    """The configured servos on one serial port; ``open()``, ``configure()`` each servo, then goals and reads."""

    def __init__(self, servos: Sequence[Servo], config: BusConfig, retries: int = DEFAULT_RETRIES,
                 timeout_margin_s: float = DEFAULT_TIMEOUT_MARGIN_S, link: Optional[SerialLink] = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        """``link``: the serial port of ``config`` unless given (an in-process EmulatorLink in tests);
        ``clock`` and ``sleep`` time the retries and waits (the link's simulated clock with it)."""
        if not servos:
            raise ValueError("ServoBus needs at least one servo")
        self.servos: Tuple[Servo, ...] = tuple(servos)
        self.config = config
        self.retries = retries
        self.timeout_margin_s = timeout_margin_s
        self.link = link or SerialLink(config.port, config.baud_rate)
        self.clock, self.sleep = clock, sleep
        # one sync write per goal register layout (address, size) among the servos' models
        self._goal_writers: Dict[Tuple[int, int], GroupSyncWrite] = {}
        self._goal_ids: Dict[Tuple[int, int], Set[int]] = {}  # the IDs in each writer
        self.alerts: Set[int] = set()
        self._by_joint: Dict[str, Servo] = {s.joint: s for s in self.servos}
        self._latency_s = config.latency_timer_ms * 1e-3

    @property
    def port_name(self) -> str:
        return self.link.port

    @property
    def is_open(self) -> bool:
        return self.link.is_open

    def servo(self, joint: str) -> Servo:
        try:
            return self._by_joint[joint]
        except KeyError:
            raise ValueError(f"unknown joint {joint!r}; known: {', '.join(self._by_joint)}") from None

    def open(self) -> Optional[str]:
        """Open the port; returns a warning when the USB adapter's latency timer exceeds 1 ms.

        Reply deadlines then allow for the larger latency, so the bus still works, only slower.
        """
        self.link.open()
        latency = usb_latency_timer_ms(self.link.port)
        self._latency_s = max(self.config.latency_timer_ms, latency or 0) * 1e-3
        if latency is not None and latency > 1:
            return (f"USB latency timer of {self.link.port} is {latency} ms (each bus read waits up to that long); "
                    f"set it to 1: echo 1 | sudo tee /sys/bus/usb-serial/devices/*/latency_timer "
                    f"(or a udev rule with ATTR{{latency_timer}}=\"1\")")
        return None

    def close(self) -> None:
        """Close the port (servo state is left as it is)."""
        self.link.close()

    def __enter__(self) -> "ServoBus":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- goals and states ------------------------------------------------------------------

    def write_goals(self, angles: Mapping[str, float]) -> Dict[str, float]:
        """Sync-write goal positions (clamped to the joint limits); returns the goals written (rad: the
        position counter's angle, which rounding may put up to half a tick past a limit, kept at the limit)."""
        ticks: Dict[Tuple[int, int], Dict[int, int]] = {}
        written = {}
        for joint, angle in angles.items():
            servo = self.servo(joint)
            goal = servo.spec.register("goal_position")
            tick = servo.to_tick(angle)
            ticks.setdefault((goal.address, goal.size), {})[servo.id] = tick
            written[joint] = servo.clamp(servo.from_tick(tick))
        for (address, size), group in ticks.items():
            writer = self._goal_writers.get((address, size))
            if writer is None:
                writer = GroupSyncWrite(self.link.port_handler, self.link.packet_handler, address, size)
                self._goal_writers[(address, size)] = writer
            for sid in self._goal_ids.get((address, size), set()) - group.keys():
                writer.removeParam(sid)
            for sid, tick in group.items():
                data = list(p.le_bytes(tick, size))
                if not (writer.changeParam(sid, data) or writer.addParam(sid, data)):
                    raise ValueError(f"goal of servo ID {sid}: {data} does not fit the sync write")
            self._goal_ids[(address, size)] = set(group)
            self.link.sync_write(writer)
        return written

    def read_states(self, servos: Sequence[Servo], retries: Optional[int] = None,
                    deadline: float = float("inf")) -> Tuple[Dict[str, ServoReading], SyncRead]:
        """Present position, velocity and effort of ``servos`` (those that answered) by joint."""
        result = self.sync_read(STATE, servos, retries, deadline)
        states = {}
        for servo in servos:
            data = result.data.get(servo.id)
            if data is None:
                continue
            spec, sign = servo.spec, servo.direction
            states[servo.joint] = ServoReading(
                position=servo.from_tick(STATE.value(spec, data, "present_position")),
                velocity=sign * STATE.value(spec, data, "present_velocity") * spec.rad_s_per_velocity_unit,
                effort=sign * STATE.value(spec, data, EFFORT) * spec.effort_unit_nm)
        return states, result

    def sync_read(self, block: Block, servos: Sequence[Servo], retries: Optional[int] = None,
                  deadline: float = float("inf")) -> SyncRead:
        """Sync-read ``block`` from ``servos``; missing or corrupt replies are asked again (only those)
        up to ``retries`` times while a retry still fits before ``deadline`` (the bus's clock). Servos
        whose models place the block elsewhere are read in one sync read per placement."""
        result = SyncRead()
        groups: Dict[Tuple[int, int], List[Servo]] = {}
        for servo in servos:
            groups.setdefault((block.address(servo.spec), block.length(servo.spec)), []).append(servo)
        for (address, length), group in groups.items():
            self._sync_read_group(address, length, group, 1 + (self.retries if retries is None else retries),
                                  deadline, result)
        return result

    def _sync_read_group(self, address: int, length: int, servos: List[Servo], tries: int, deadline: float,
                         result: SyncRead) -> None:
        pending = servos
        for attempt in range(tries):
            if not pending:
                break
            budget = self._budget(_SYNC_READ_OVERHEAD + len(pending), [(s, length) for s in pending])
            if attempt and self.clock() + budget > deadline:
                break
            reader = GroupSyncRead(self.link.port_handler, self.link.packet_handler, address, length)
            for servo in pending:
                reader.addParam(servo.id)
            replies = self.link.sync_read(reader, [s.id for s in pending], budget)
            self.alerts.update(sid for sid, reply in replies.packets.items() if reply.error & p.ERR_ALERT)
            result.stray += replies.stray
            for sid in replies.corrupt:
                result.crc_errors[sid] = result.crc_errors.get(sid, 0) + 1
            still = []
            for servo in pending:
                reply = replies.packets.get(servo.id)
                if reply is not None and len(reply.data) == length:
                    result.data[servo.id] = reply.data
                else:
                    result.failures[servo.id] = result.failures.get(servo.id, 0) + 1
                    still.append(servo)
            pending = still
        result.missing.extend(s.id for s in pending)

    # --- one servo -----------------------------------------------------------------------------

    def ping(self, servo: Servo) -> int:
        """The model number the servo reports."""
        return self._transact(servo, "ping", self.link.packet_handler.ping)

    def read(self, servo: Servo, name: str, retries: Optional[int] = None) -> int:
        block = Block(name, name)
        return block.value(servo.spec, self.read_block(servo, block, retries), name)

    def read_block(self, servo: Servo, block: Block, retries: Optional[int] = None) -> bytes:
        length = block.length(servo.spec)
        data = self._transact(servo, f"read {block.first}", self.link.packet_handler.readTxRx,
                              block.address(servo.spec), length, n_data=length, retries=retries)
        return bytes(data)

    def write(self, servo: Servo, name: str, value: int) -> None:
        reg = servo.spec.register(name)
        self._transact(servo, f"write {name}", self.link.packet_handler.writeTxRx, reg.address, reg.size,
                       list(p.le_bytes(value, reg.size)))

    def reboot(self, servo: Servo) -> None:
        """Reboot instruction (0x08): clears hardware errors; RAM back to defaults, torque off."""
        self._transact(servo, "reboot", self.link.packet_handler.reboot)

    def check_model(self, servo: Servo) -> None:
        """Ping; ServoError unless the servo answers with its configured model."""
        number = self.ping(servo)
        if number != servo.spec.model_number:
            raise ServoError(servo, self.port_name, f"expected model {servo.model} ({servo.spec.model_number}), "
                                                    f"found {model_name(number)}", model_mismatch=True)

    def configure(self, servo: Servo, goal: float, profile_velocity: float,
                  profile_acceleration: Optional[float] = None) -> None:
        """Start-up of one servo, torque off first: position mode, the joint limits into the servo's own
        limit registers and its return delay (EEPROM, written only when they differ), then
        ``profile_acceleration`` (rad/s^2, 0 = none; default the servo's configured one),
        ``profile_velocity`` (rad/s, 0 = none), goal (rad, clamped), torque on."""
        self.check_model(servo)
        self.write(servo, "torque_enable", 0)
        low, high = servo.tick_limits()
        wanted = {"operating_mode": POSITION_CONTROL_MODE, "return_delay_time": servo.return_delay_us // 2,
                  "max_position_limit": high, "min_position_limit": low}
        eeprom = Block("return_delay_time", "min_position_limit")
        present = self.read_block(servo, eeprom)
        for name, value in wanted.items():
            if eeprom.value(servo.spec, present, name) != value:
                self.write(servo, name, value)
        acceleration = servo.profile_acceleration if profile_acceleration is None else profile_acceleration
        self.write(servo, "profile_acceleration", acceleration_units(servo, acceleration))
        self.write(servo, "profile_velocity", velocity_units(servo, profile_velocity))
        self.write(servo, "goal_position", servo.to_tick(goal))
        self.write(servo, "torque_enable", 1)

    def present_position(self, servo: Servo) -> float:
        return servo.from_tick(self.read(servo, "present_position"))

    def move_to_neutral(self, servos: Sequence[Servo], timeout: float) -> List[str]:
        """Write neutral to ``servos`` and wait up to ``timeout`` s for them to be there at rest (a servo
        braking at its profile acceleration may pass it first); joints that did not arrive."""
        self.write_goals({s.joint: s.neutral for s in servos})
        deadline = self.clock() + timeout
        pending = list(servos)
        while pending:
            states, _ = self.read_states(pending, retries=0)
            pending = [s for s in pending if s.joint not in states or not arrived(s, states[s.joint].position, s.neutral)
                       or not at_rest(s, states[s.joint].velocity)]
            if not pending or self.clock() > deadline:
                break
            self.sleep(0.01)
        return [s.joint for s in pending]

    # --- internals -------------------------------------------------------------------------

    def _budget(self, request_bytes: int, expected: Sequence[Tuple[Servo, int]]) -> float:
        """Seconds from sending a request of ``request_bytes`` until the replies of the (servo, data
        length) pairs must be in: each servo's return delay and status packet, one after the other."""
        baud = self.link.baud
        return (p.transmission_time(request_bytes, baud) + self._latency_s + self.timeout_margin_s
                + sum(s.return_delay_us * 1e-6 + p.transmission_time(p.STATUS_OVERHEAD + n, baud) for s, n in expected))

    def _transact(self, servo: Servo, what: str, call: Callable[..., Tuple[Any, ...]], *args: object,
                  n_data: Optional[int] = None, retries: Optional[int] = None) -> Any:
        """``call(port, servo.id, *args)``, one of the SDK's PacketHandler transactions returning
        ``(value..., result, error)``; its value (None if it has none). Retried (default: ``self.retries``
        times) on timeout, corrupt reply, or a servo that received a corrupt packet; ServoError on failure
        or an error number in the status (the alert bit is not an error here). The reply may take the
        longest return delay (single transactions precede start-up, which sets it)."""
        tries = 1 + (self.retries if retries is None else retries)
        slack = self._latency_s + self.timeout_margin_s + _UNCONFIGURED_RETURN_DELAY_S
        problem = ""
        for _ in range(tries):
            *value, result, error = self.link.transact(call, servo.id, *args, slack_s=slack)
            if result == COMM_RX_TIMEOUT:
                problem = "no answer (timeout)"
                continue
            if result == COMM_RX_CORRUPT:
                problem = "corrupt or incomplete reply (CRC error)"
                continue
            if error & p.ERR_ALERT:
                self.alerts.add(servo.id)
            number = error & ~p.ERR_ALERT
            if number == p.ERR_CRC:
                problem = "the servo received a corrupt packet (CRC error)"
                continue
            if number:
                raise ServoError(servo, self.port_name, f"{what}: {_ERRORS.get(number, f'error {number}')}")
            if n_data is not None and len(value[0]) != n_data:
                problem = f"reply with {len(value[0])} data bytes, expected {n_data}"
                continue
            return value[0] if value else None
        raise ServoError(servo, self.port_name, f"{what}: {problem} after {tries} tries", no_reply=True)


_ERRORS = {p.ERR_RESULT_FAIL: "result fail", p.ERR_INSTRUCTION: "instruction error", p.ERR_CRC: "CRC error",
           p.ERR_DATA_RANGE: "data range error", p.ERR_DATA_LENGTH: "data length error",
           p.ERR_DATA_LIMIT: "data limit error (value outside the register's limits)",
           p.ERR_ACCESS: "access error (read-only, or EEPROM while torque is on)"}
