"""The ``mapping:`` and ``constraints:`` sections of the robot config, validated.

mapping:
  mirror: true|false          mirror image (the person's left is the robot's right) or same-side imitation
  curves: {channel: {deadband: x, gain: g, points: [[x, y], ...]}}   shaping before the weights
  model: {path: file.onnx, max_std: rad}    a learned mapping for the joints it outputs (path relative to the
                               config); a self-model's joint above max_std of predicted error falls back
  <joint>: {weights: {channel: weight}, offset: rad}

constraints:
  velocity: {joint: rad/s}, acceleration: {joint: rad/s^2}    per-joint caps (instead of the global ones)
  smoothing: {joint: s}       per-joint time constant of the target low-pass (instead of the global one; 0 = off)
  couplings: [{name: text, terms: {joint: coefficient}, min: x, max: y}]   min <= sum(c * angle) <= max

Errors are MappingError with the offending field, e.g. ``mapping.jaw.weights.AU2``.
"""
from __future__ import annotations

import math
from collections import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from humimic_core.channels import PUBLISHED, is_channel
from humimic_core.known_keys import check_keys, unknown
from humimic_core.response_curve import Curve

#: Keys of ``mapping:`` that are options, not joints.
MAPPING_OPTIONS = ("curves", "mirror", "model")
#: Known keys of each section (every other key is refused, naming its path).
JOINT_KEYS = ("weights", "offset")
CURVE_KEYS = ("deadband", "gain", "points")
MODEL_KEYS = ("path", "max_std")
CONSTRAINT_KEYS = ("velocity", "acceleration", "smoothing", "couplings")
COUPLING_KEYS = ("name", "terms", "min", "max")


class MappingError(ValueError):
    """A mapping or constraints section that cannot be used; the message names the field."""


@dataclass(frozen=True)
class JointMapping:
    """Linear mapping for one joint: target = neutral + offset + sum(weight * shaped channel)."""

    weights: Dict[str, float]
    offset: float = 0.0


@dataclass(frozen=True)
class MappingConfig(abc.Mapping):
    """The joints' linear mappings (reads like a dict joint -> JointMapping) and the options."""

    joints: Dict[str, JointMapping] = field(default_factory=dict)
    curves: Dict[str, Curve] = field(default_factory=dict)
    mirror: bool = False
    model: Optional[Path] = None
    #: rad: a joint whose predicted standard deviation (a self-model's joint_variance) is larger
    #: follows the linear mapping for that frame instead; None = always the model
    model_max_std: Optional[float] = None

    def __getitem__(self, joint: str) -> JointMapping:
        return self.joints[joint]

    def __iter__(self) -> Iterator[str]:
        return iter(self.joints)

    def __len__(self) -> int:
        return len(self.joints)

    @property
    def channels(self) -> List[str]:
        """Every channel the linear mapping reads, sorted."""
        return sorted({c for m in self.joints.values() for c in m.weights})

    def curve(self, channel: str) -> Curve:
        return self.curves.get(channel, Curve())


@dataclass(frozen=True)
class Coupling:
    """A linear inequality between joints: min <= sum(coefficient * angle) <= max."""

    name: str
    terms: Dict[str, float]
    min: float = -math.inf
    max: float = math.inf

    def value(self, angles: Mapping[str, float]) -> float:
        return sum(c * angles[j] for j, c in self.terms.items())


@dataclass(frozen=True)
class Constraints:
    """Per-joint dynamics (joint -> value; a joint without an entry has the retarget node's global
    value) and the couplings."""

    velocity: Dict[str, float] = field(default_factory=dict)
    acceleration: Dict[str, float] = field(default_factory=dict)
    smoothing: Dict[str, float] = field(default_factory=dict)
    couplings: Tuple[Coupling, ...] = ()


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MappingError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _table(raw: Any, where: str, what: str) -> Mapping:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise MappingError(f"{where}: expected a mapping {what}, got {raw!r}")
    return raw


def _known_keys(raw: Mapping, known: Sequence[str], where: str) -> None:
    check_keys(raw, known, where, MappingError)


def _channel(name: Any, where: str) -> str:
    """A channel perception publishes (humimic_core.channels); others are refused with the list."""
    if not isinstance(name, str) or not is_channel(name):
        raise MappingError(unknown(where, name, PUBLISHED, "channel, perception never publishes it"))
    return name


def _joint(name: Any, joints: Sequence[str], where: str) -> str:
    if name not in joints:
        raise MappingError(unknown(where, name, list(joints), "joint, no servo drives it"))
    return str(name)


def _curve(raw: Any, where: str) -> Curve:
    raw = _table(raw, where, "{deadband, gain, points}")
    _known_keys(raw, CURVE_KEYS, where)
    deadband = _finite(raw.get("deadband", 0.0), f"{where}.deadband")
    if deadband < 0:
        raise MappingError(f"{where}.deadband: must be >= 0, got {deadband}")
    points = raw.get("points", []) or []
    if not isinstance(points, list) or len(points) == 1:
        raise MappingError(f"{where}.points: expected a list of at least 2 [x, y] pairs")
    parsed = []
    for i, p in enumerate(points):
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise MappingError(f"{where}.points[{i}]: expected [x, y], got {p!r}")
        parsed.append((_finite(p[0], f"{where}.points[{i}][0]"), _finite(p[1], f"{where}.points[{i}][1]")))
    for i in range(1, len(parsed)):
        if parsed[i][0] <= parsed[i - 1][0]:
            raise MappingError(f"{where}.points[{i}]: x must increase ({parsed[i][0]} after {parsed[i - 1][0]})")
    return Curve(deadband=deadband, gain=_finite(raw.get("gain", 1.0), f"{where}.gain"), points=tuple(parsed))


def parse_mapping(raw: Any, joints: Sequence[str], base_dir: Optional[Path] = None) -> MappingConfig:
    """The ``mapping:`` section; ``base_dir`` resolves a relative model path."""
    raw = _table(raw, "mapping", "of joint -> {weights, offset} and options " + ", ".join(MAPPING_OPTIONS))
    _known_keys(raw, [*MAPPING_OPTIONS, *joints], "mapping")
    out: Dict[str, JointMapping] = {}
    for joint, entry in raw.items():
        if joint in MAPPING_OPTIONS:
            continue
        where = f"mapping.{joint}"
        entry = _table(entry, where, "{weights: {channel: weight}, offset: rad}")
        _known_keys(entry, JOINT_KEYS, where)
        weights = _table(entry.get("weights"), f"{where}.weights", "channel -> weight")
        out[str(joint)] = JointMapping(
            weights={_channel(c, f"{where}.weights.{c}"): _finite(w, f"{where}.weights.{c}")
                     for c, w in weights.items()},
            offset=_finite(entry.get("offset", 0.0), f"{where}.offset"),
        )
    curves = {_channel(c, f"mapping.curves.{c}"): _curve(v, f"mapping.curves.{c}")
              for c, v in _table(raw.get("curves"), "mapping.curves", "channel -> curve").items()}
    mirror = raw.get("mirror", False)
    if not isinstance(mirror, bool):
        raise MappingError(f"mapping.mirror: expected true or false, got {mirror!r}")
    model, max_std = None, None
    if raw.get("model") is not None:
        entry = _table(raw["model"], "mapping.model", "{path: file.onnx}")
        _known_keys(entry, MODEL_KEYS, "mapping.model")
        path = entry.get("path")
        if not isinstance(path, str) or not path:
            raise MappingError(f"mapping.model.path: expected the path of an ONNX file, got {path!r}")
        model = Path(path) if base_dir is None else base_dir / path
        max_std = entry.get("max_std")
        if max_std is not None and (isinstance(max_std, bool) or not isinstance(max_std, (int, float))
                                    or not 0 < max_std < 10):
            raise MappingError(f"mapping.model.max_std: expected a standard deviation in rad (0..10), got {max_std!r}")
    return MappingConfig(joints=out, curves=curves, mirror=mirror, model=model,
                         model_max_std=None if max_std is None else float(max_std))


def _caps(raw: Any, joints: Sequence[str], where: str, unit: str, zero: bool = False) -> Dict[str, float]:
    """joint -> value > 0 (>= 0 with ``zero``)."""
    out = {}
    for joint, value in _table(raw, where, f"joint -> {unit}").items():
        _joint(joint, joints, f"{where}.{joint}")
        value = _finite(value, f"{where}.{joint}")
        if value < 0 or (value == 0 and not zero):
            raise MappingError(f"{where}.{joint}: must be {'>=' if zero else '>'} 0 {unit}, got {value}")
        out[str(joint)] = value
    return out


def _coupling(raw: Any, joints: Sequence[str], neutral: Mapping[str, float], where: str) -> Coupling:
    raw = _table(raw, where, "{name, terms, min, max}")
    _known_keys(raw, COUPLING_KEYS, where)
    terms = {}
    for joint, c in _table(raw.get("terms"), f"{where}.terms", "joint -> coefficient").items():
        _joint(joint, joints, f"{where}.terms.{joint}")
        c = _finite(c, f"{where}.terms.{joint}")
        if c == 0:
            raise MappingError(f"{where}.terms.{joint}: a coefficient of 0 constrains nothing")
        terms[str(joint)] = c
    if not terms:
        raise MappingError(f"{where}.terms: expected at least one joint")
    if "min" not in raw and "max" not in raw:
        raise MappingError(f"{where}: expected min, max or both")
    lo = _finite(raw["min"], f"{where}.min") if "min" in raw else -math.inf
    hi = _finite(raw["max"], f"{where}.max") if "max" in raw else math.inf
    if lo > hi:
        raise MappingError(f"{where}.max: must be >= min ({hi} < {lo})")
    coupling = Coupling(str(raw.get("name", where)), terms, lo, hi)
    at_rest = coupling.value(neutral)
    if not lo - 1e-9 <= at_rest <= hi + 1e-9:
        raise MappingError(f"{where}: the neutral pose violates it ({at_rest:.4f} outside [{lo}, {hi}])")
    return coupling


def parse_constraints(raw: Any, neutral: Mapping[str, float]) -> Constraints:
    """The ``constraints:`` section; ``neutral`` (joint -> neutral angle) must satisfy every coupling."""
    raw = _table(raw, "constraints", "{velocity, acceleration, smoothing, couplings}")
    _known_keys(raw, CONSTRAINT_KEYS, "constraints")
    joints = list(neutral)
    couplings = raw.get("couplings") or []
    if not isinstance(couplings, list):
        raise MappingError("constraints.couplings: expected a list of {terms, min, max}")
    return Constraints(
        velocity=_caps(raw.get("velocity"), joints, "constraints.velocity", "rad/s"),
        acceleration=_caps(raw.get("acceleration"), joints, "constraints.acceleration", "rad/s^2"),
        smoothing=_caps(raw.get("smoothing"), joints, "constraints.smoothing", "s", zero=True),
        couplings=tuple(_coupling(c, joints, neutral, f"constraints.couplings[{i}]") for i, c in enumerate(couplings)),
    )
