"""The robot config YAML: servos, joint limits, URDF placement and the expression mapping.

Loaded once and validated here; every node and tool reads the robot from this one file.
Errors name the offending field, e.g. ``servos[3].max``. The schema of the ``mapping:`` and
``constraints:`` sections lives with the retargeting (humimic_core/mapping_config.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Sequence, Tuple

import yaml

from humimic_core.control_tables import BAUD_CODES, MAX_RETURN_DELAY, RETURN_DELAY_UNIT_S, ModelSpec, model
from humimic_core.face_regions import REGIONS
from humimic_core.known_keys import check_keys, unknown, yaml_problem
from humimic_core.mapping_config import (Constraints, MappingConfig, MappingError, parse_constraints,
                                             parse_mapping)


class ConfigError(ValueError):
    """A robot config that cannot be used; the message names the field."""


#: Default caps (rad/s, rad/s^2) of joints without a constraints entry: the driver's and the retarget
#: node's max_velocity / max_acceleration parameters.
DEFAULT_MAX_VELOCITY, DEFAULT_MAX_ACCELERATION = 3.0, 40.0
#: Known keys at each level of the robot config (mapping/constraints: humimic_core.mapping_config).
TOP_KEYS = ("robot", "bus", "servos", "fixed_links", "mapping", "constraints")
ROBOT_KEYS = ("name", "base_link")
BUS_KEYS = ("port", "baud_rate", "latency_timer_ms")
SERVO_KEYS = ("joint", "id", "model", "min", "max", "neutral", "direction", "zero_tick", "parent", "xyz", "rpy",
              "axis", "profile_velocity", "profile_acceleration", "return_delay_us", "twin")
TWIN_KEYS = ("region", "move", "falloff", "rotate")
FIXED_LINK_KEYS = ("link", "parent", "xyz", "rpy")


Vec3 = Tuple[float, float, float]


@dataclass(frozen=True)
class TwinMove:
    """How one joint moves the face twin's mesh, per radian from its neutral: a ``region`` of
    humimic_core.face_regions moved by ``move`` (x = image right = the face's left, y = down; in
    inter-ocular distances, IOD) with neighbours following within ``falloff`` IOD, or the whole
    face turned about ``rotate`` (a unit axis in the camera's frame: x right, y down, z away)."""

    region: str = ""
    move: Tuple[float, float] = (0.0, 0.0)
    falloff: float = 0.0
    rotate: Vec3 = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Servo:
    """One joint driven by one Dynamixel servo. Angles in radians."""

    joint: str
    id: int
    model: str
    min: float
    max: float
    neutral: float
    direction: int = 1
    zero_tick: int = 2048
    parent: str = "base_link"
    xyz: Vec3 = (0.0, 0.0, 0.0)
    rpy: Vec3 = (0.0, 0.0, 0.0)
    axis: Vec3 = (0.0, 0.0, 1.0)
    profile_velocity: float = 0.0  # rad/s the servo's own trajectory keeps to; 0 = its velocity limit
    profile_acceleration: float = 0.0  # rad/s^2 of that trajectory; 0 = no limit
    return_delay_us: int = 0  # wait before the servo answers (us, 0..508 in steps of 2)
    twin: Tuple[TwinMove, ...] = ()  # how the joint moves the face twin (humimic_perception.sim)

    @property
    def spec(self) -> ModelSpec:
        return model(self.model)

    @property
    def link(self) -> str:
        return f"{self.joint}_link"

    def clamp(self, angle: float) -> float:
        """The angle limited to [min, max]; a non-finite angle becomes neutral."""
        if not math.isfinite(angle):
            return self.neutral
        return min(self.max, max(self.min, angle))

    def to_tick(self, angle: float) -> int:
        """Servo position counter for a joint angle, clamped to the joint limits first."""
        tick = self.zero_tick + self.direction * round(self.clamp(angle) / self.spec.rad_per_tick)
        return int(tick)

    def from_tick(self, tick: int) -> float:
        """Joint angle in radians for a servo position counter (not clamped)."""
        return self.direction * (tick - self.zero_tick) * self.spec.rad_per_tick

    def tick_limits(self) -> Tuple[int, int]:
        """(low, high) position counter limits that correspond to [min, max]."""
        a, b = self.to_tick(self.min), self.to_tick(self.max)
        return (min(a, b), max(a, b))


@dataclass(frozen=True)
class BusConfig:
    """The servo bus: serial port, baud rate (all servos use it) and the USB adapter's latency timer."""

    port: str = "/tmp/humimic_servo_bus"
    baud_rate: int = 1000000
    latency_timer_ms: float = 1.0


class MotionCaps(NamedTuple):
    """Speed limits of one joint."""

    velocity: float  # rad/s
    acceleration: float  # rad/s^2


@dataclass(frozen=True)
class FixedLink:
    link: str
    parent: str
    xyz: Vec3 = (0.0, 0.0, 0.0)
    rpy: Vec3 = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class RobotConfig:
    name: str
    base_link: str
    servos: Tuple[Servo, ...]
    mapping: MappingConfig
    fixed_links: Tuple[FixedLink, ...] = ()
    constraints: Constraints = field(default_factory=Constraints)
    bus: BusConfig = field(default_factory=BusConfig)
    source: str = ""
    raw: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def joint_names(self) -> List[str]:
        return [s.joint for s in self.servos]

    def servo(self, joint: str) -> Servo:
        for s in self.servos:
            if s.joint == joint:
                return s
        raise KeyError(joint)

    def motion_caps(self, max_velocity: float, max_acceleration: float) -> Dict[str, MotionCaps]:
        """Speed limits per joint under this config's constraints (see ``motion_caps``)."""
        return motion_caps(self.servos, max_velocity, max_acceleration, self.constraints)

    @property
    def channels(self) -> List[str]:
        """Every input channel the linear mapping reads, sorted."""
        return self.mapping.channels


def motion_caps(servos: Sequence[Servo], max_velocity: float, max_acceleration: float,
                constraints: Constraints = Constraints()) -> Dict[str, MotionCaps]:
    """Per joint: its constraints.velocity / .acceleration entry where given (higher or lower than the
    defaults), else ``max_velocity`` / ``max_acceleration``; never above what the servo model can do
    (its velocity limit, its largest profile acceleration)."""
    c = constraints
    return {s.joint: MotionCaps(min(c.velocity.get(s.joint, max_velocity), s.spec.max_velocity),
                                min(c.acceleration.get(s.joint, max_acceleration), s.spec.max_acceleration))
            for s in servos}


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _vec3(value: Any, where: str) -> Vec3:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 3:
        raise ConfigError(f"{where}: expected a list of 3 numbers, got {value!r}")
    return tuple(_number(v, f"{where}[{i}]") for i, v in enumerate(value))  # type: ignore[return-value]


def _servo(raw: Any, where: str) -> Servo:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    check_keys(raw, SERVO_KEYS, where, ConfigError)
    for key in ("joint", "id", "model", "min", "max", "neutral"):
        if key not in raw:
            raise ConfigError(f"{where}.{key}: missing")
    joint = raw["joint"]
    if not isinstance(joint, str) or not joint:
        raise ConfigError(f"{where}.joint: expected a non-empty name, got {joint!r}")
    sid = raw["id"]
    if isinstance(sid, bool) or not isinstance(sid, int) or not 0 <= sid <= 252:
        raise ConfigError(f"{where}.id: expected an integer 0..252, got {sid!r}")
    try:
        spec = model(str(raw["model"]))
    except ValueError as exc:
        raise ConfigError(f"{where}.model: {exc}") from None
    lo, hi = _number(raw["min"], f"{where}.min"), _number(raw["max"], f"{where}.max")
    neutral = _number(raw["neutral"], f"{where}.neutral")
    if lo >= hi:
        raise ConfigError(f"{where}.max: must be greater than min ({lo} >= {hi})")
    if not lo <= neutral <= hi:
        raise ConfigError(f"{where}.neutral: {neutral} is outside [min, max] = [{lo}, {hi}]")
    direction = raw.get("direction", 1)
    if direction not in (1, -1):
        raise ConfigError(f"{where}.direction: expected 1 or -1, got {direction!r}")
    zero_tick = raw.get("zero_tick", spec.center_tick)
    if isinstance(zero_tick, bool) or not isinstance(zero_tick, int):
        raise ConfigError(f"{where}.zero_tick: expected an integer, got {zero_tick!r}")
    axis = _vec3(raw.get("axis", [0, 0, 1]), f"{where}.axis")
    norm = math.sqrt(sum(a * a for a in axis))
    if norm < 1e-9:
        raise ConfigError(f"{where}.axis: must not be zero")
    servo = Servo(
        joint=joint, id=sid, model=spec.name, min=lo, max=hi, neutral=neutral,
        direction=direction, zero_tick=zero_tick, parent=str(raw.get("parent", "base_link")),
        xyz=_vec3(raw.get("xyz", [0, 0, 0]), f"{where}.xyz"),
        rpy=_vec3(raw.get("rpy", [0, 0, 0]), f"{where}.rpy"),
        axis=tuple(a / norm for a in axis),  # type: ignore[arg-type]
        twin=_twin(raw.get("twin", []), f"{where}.twin"),
        **_servo_motion(raw, spec, where),
    )
    low_tick, high_tick = servo.tick_limits()
    p_lo, p_hi = spec.position_range
    if low_tick < p_lo or high_tick > p_hi:
        raise ConfigError(
            f"{where}.min/max: [{lo}, {hi}] rad maps to ticks [{low_tick}, {high_tick}], outside the "
            f"{spec.name} position range [{p_lo}, {p_hi}] (check zero_tick and direction)")
    return servo


def _twin(raw: Any, where: str) -> Tuple[TwinMove, ...]:
    """A servo's ``twin`` list: entries {region, move: [x, y], falloff} or {rotate: [x, y, z]}."""
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: expected a list of {{region, move, falloff}} or {{rotate}}, got {raw!r}")
    moves = []
    for i, entry in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{at}: expected a mapping, got {entry!r}")
        check_keys(entry, TWIN_KEYS, at, ConfigError)
        if "rotate" in entry:
            if set(entry) != {"rotate"}:
                raise ConfigError(f"{at}: rotate takes no region, move or falloff")
            axis = _vec3(entry["rotate"], f"{at}.rotate")
            norm = math.sqrt(sum(a * a for a in axis))
            if norm < 1e-9:
                raise ConfigError(f"{at}.rotate: must not be zero")
            moves.append(TwinMove(rotate=tuple(a / norm for a in axis)))  # type: ignore[arg-type]
            continue
        region = entry.get("region")
        if region not in REGIONS:
            raise ConfigError(unknown(f"{at}.region", region, sorted(REGIONS), "region"))
        move = entry.get("move")
        if not isinstance(move, Sequence) or isinstance(move, str) or len(move) != 2:
            raise ConfigError(f"{at}.move: expected [x, y] (IOD per radian), got {move!r}")
        falloff = _number(entry.get("falloff", 0.0), f"{at}.falloff")
        if not 0.0 <= falloff <= 2.0:
            raise ConfigError(f"{at}.falloff: {falloff} IOD is outside 0..2")
        moves.append(TwinMove(str(region), (_number(move[0], f"{at}.move[0]"), _number(move[1], f"{at}.move[1]")),
                              falloff))
    return tuple(moves)


def _servo_motion(raw: Mapping, spec: ModelSpec, where: str) -> Dict[str, Any]:
    """profile_velocity, profile_acceleration and return_delay_us of a servo, checked against its model."""
    velocity = _number(raw.get("profile_velocity", 0.0), f"{where}.profile_velocity")
    if not 0.0 <= velocity <= spec.max_velocity:
        raise ConfigError(f"{where}.profile_velocity: {velocity} rad/s is outside 0..{spec.max_velocity:.3f} "
                          f"(the {spec.name} velocity limit; 0 = no profile)")
    acceleration = _number(raw.get("profile_acceleration", 0.0), f"{where}.profile_acceleration")
    max_acceleration = spec.max_acceleration
    if not 0.0 <= acceleration <= max_acceleration:
        raise ConfigError(f"{where}.profile_acceleration: {acceleration} rad/s^2 is outside 0..{max_acceleration:.0f}")
    delay = raw.get("return_delay_us", 0)
    max_delay = round(MAX_RETURN_DELAY * RETURN_DELAY_UNIT_S * 1e6)
    if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= max_delay or delay % 2:
        raise ConfigError(f"{where}.return_delay_us: expected an even integer 0..{max_delay}, got {delay!r}")
    return {"profile_velocity": velocity, "profile_acceleration": acceleration, "return_delay_us": delay}


def _bus(raw: Any) -> BusConfig:
    if raw is None:
        return BusConfig()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"bus: expected a mapping with port, baud_rate, latency_timer_ms, got {raw!r}")
    check_keys(raw, BUS_KEYS, "bus", ConfigError)
    default = BusConfig()
    port = raw.get("port", default.port)
    if not isinstance(port, str) or not port:
        raise ConfigError(f"bus.port: expected a serial port path, got {port!r}")
    baud = raw.get("baud_rate", default.baud_rate)
    if isinstance(baud, bool) or not isinstance(baud, int) or baud not in BAUD_CODES:
        raise ConfigError(f"bus.baud_rate: {baud!r} is not a Dynamixel baud rate "
                          f"(one of {', '.join(str(b) for b in sorted(BAUD_CODES))})")
    latency = _number(raw.get("latency_timer_ms", default.latency_timer_ms), "bus.latency_timer_ms")
    if not 0.0 <= latency <= 255.0:
        raise ConfigError(f"bus.latency_timer_ms: {latency} is outside 0..255")
    return BusConfig(port, int(baud), latency)


def parse_robot_config(data: Any, source: str = "<memory>") -> RobotConfig:
    """Validate a parsed YAML document into a RobotConfig (ConfigError names the bad field)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    check_keys(data, TOP_KEYS, "", ConfigError)
    robot = data.get("robot", {}) or {}
    if not isinstance(robot, Mapping):
        raise ConfigError("robot: expected a mapping with name and base_link")
    check_keys(robot, ROBOT_KEYS, "robot", ConfigError)
    raw_servos = data.get("servos")
    if not isinstance(raw_servos, list) or not raw_servos:
        raise ConfigError("servos: expected a non-empty list")
    servos = tuple(_servo(s, f"servos[{i}]") for i, s in enumerate(raw_servos))
    seen_ids: Dict[int, int] = {}
    seen_joints: Dict[str, int] = {}
    for i, s in enumerate(servos):
        if s.id in seen_ids:
            raise ConfigError(f"servos[{i}].id: duplicate ID {s.id} (also servos[{seen_ids[s.id]}])")
        if s.joint in seen_joints:
            raise ConfigError(f"servos[{i}].joint: duplicate joint {s.joint!r} (also servos[{seen_joints[s.joint]}])")
        seen_ids[s.id], seen_joints[s.joint] = i, i
    fixed = []
    for i, f in enumerate(data.get("fixed_links", []) or []):
        where = f"fixed_links[{i}]"
        if not isinstance(f, Mapping) or "link" not in f or "parent" not in f:
            raise ConfigError(f"{where}: expected {{link, parent, xyz, rpy}}")
        check_keys(f, FIXED_LINK_KEYS, where, ConfigError)
        fixed.append(FixedLink(str(f["link"]), str(f["parent"]), _vec3(f.get("xyz", [0, 0, 0]), f"{where}.xyz"),
                               _vec3(f.get("rpy", [0, 0, 0]), f"{where}.rpy")))
    base = str(robot.get("base_link", "base_link"))
    links = {base} | {s.link for s in servos} | {f.link for f in fixed}
    for i, s in enumerate(servos):
        if s.parent not in links:
            raise ConfigError(f"servos[{i}].parent: unknown link {s.parent!r}")
    for i, f in enumerate(fixed):
        if f.parent not in links:
            raise ConfigError(f"fixed_links[{i}].parent: unknown link {f.parent!r}")
    try:
        mapping = parse_mapping(data.get("mapping"), [s.joint for s in servos],
                                Path(source).parent if Path(source).is_file() else None)
        constraints = parse_constraints(data.get("constraints"), {s.joint: s.neutral for s in servos})
    except MappingError as exc:
        raise ConfigError(str(exc)) from None
    return RobotConfig(
        name=str(robot.get("name", "humimic_face")), base_link=base, servos=servos, mapping=mapping,
        fixed_links=tuple(fixed), constraints=constraints, bus=_bus(data.get("bus")), source=source,
        raw=dict(data),
    )


def load_robot_config(path: str | Path) -> RobotConfig:
    """Read and validate a robot config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read robot config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None
    return parse_robot_config(data, str(path))
