"""The retargeting state machine: frames of channels in, limited joint commands out.

Per step: the mapping gives each joint a target for the frame; a joint whose input is missing or
NaN/inf holds its last valid target, and once it has had no valid input for
``face_lost_timeout`` seconds (a frame without a face invalidates every joint) it glides to
neutral at ``neutral_velocity``. Targets are smoothed (first-order, time constant ``smoothing``),
moved inside the joint limits and couplings, and reached under the velocity and acceleration
limits of constraints.JointLimits. The robot config's ``constraints`` may give a joint its own
smoothing, velocity and acceleration instead of these global ones (fast lids, slow neck).
Every command returned is within its limits.

Time steps are clamped to MAX_STEP: a step of less than MIN_STEP moves nothing (its time counts
toward the next), and after a gap longer than MAX_STEP (the commands stood still) motion restarts
from rest.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from humimic_core.processes import realtime_priority_setting
from humimic_core.robot_config import DEFAULT_MAX_ACCELERATION, DEFAULT_MAX_VELOCITY, RobotConfig
from humimic_core.settings import Settings, group, setting
from humimic_retarget.constraints import JointLimits
from humimic_retarget.expression_mapping import ExpressionMapping
from humimic_retarget.forecast import ForecastSettings

#: Longest step (s) a single update may integrate: a gap in the stream is not a licence to jump.
MAX_STEP = 0.2
#: Shortest step (s) that moves the joints.
MIN_STEP = 1e-6


@dataclass(frozen=True)
class RetargetNodeSettings(Settings):
    """The retarget node's parameters read at start (the live ones: RetargetParams)."""

    robot_config: str = setting("", "Robot config YAML; empty = the package's config/robot_face.yaml")
    rate: float = setting(50.0, "Hz of the timer that keeps commands flowing when frames are late", (1.0, 1000.0))
    stamp_tolerance: float = setting(1.0, "Seconds a frame stamp may be ahead of this node's clock (further: refused) "
                                          "and jump ahead of its arrival (further: timing re-anchored)", (0.01, 3600.0))
    realtime_priority: int = realtime_priority_setting(5, "the retarget node's threads (below the driver's), so a "
                                                          "frame's command is not made behind perception's work")
    forecast: ForecastSettings = group(ForecastSettings, "forecast")


@dataclass
class RetargetParams(Settings):
    """The live-tunable settings (the retarget node's parameters; ``mirror`` and ``gains.<channel>``
    default to the robot config's mapping, so the node declares them from it). A velocity or
    acceleration of 0 is in the range but refused by ``validate``."""

    max_velocity: float = setting(DEFAULT_MAX_VELOCITY, "Velocity limit (rad/s) of joints without a "
                                  "constraints.velocity entry in the robot config", (0.0, 100.0), read_only=False)
    max_acceleration: float = setting(DEFAULT_MAX_ACCELERATION, "Acceleration limit (rad/s^2) of joints without a "
                                      "constraints.acceleration entry", (0.0, 10000.0), read_only=False)
    neutral_velocity: float = setting(0.8, "Velocity of the glide to neutral (rad/s)", (0.0, 100.0), read_only=False)
    face_lost_timeout: float = setting(0.5, "Seconds without valid input before a joint glides to neutral",
                                       (0.0, 60.0), read_only=False)
    smoothing: float = setting(0.03, "Time constant (s) of the low-pass on targets of joints without a "
                                     "constraints.smoothing entry; 0 = off", (0.0, 10.0), read_only=False)
    mirror: Optional[bool] = None    # None: the robot config's mapping.mirror
    gains: Dict[str, float] = field(default_factory=dict)  # channel -> gain; others: the config's curves

    @classmethod
    def from_parameters(cls, values: Mapping[str, object]) -> "RetargetParams":  # type: ignore[override]
        """The settings from the retarget node's parameters by name (``gains.<channel>`` for gains;
        names that are not settings, such as robot_config and rate, are ignored): the one way the
        live node and the offline re-run build them."""
        return with_changes(cls(), values)

    def validate(self, channels: Sequence[str]) -> None:
        """ValueError naming the parameter when a value cannot be used."""
        for name in ("max_velocity", "max_acceleration", "neutral_velocity"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        for name in ("face_lost_timeout", "smoothing"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
        for channel, gain in self.gains.items():
            if channel not in channels:
                raise ValueError(f"gains.{channel}: the mapping reads no channel {channel!r} "
                                 f"(it reads {', '.join(channels)})")
            if not (math.isfinite(gain) and gain >= 0.0):
                raise ValueError(f"gains.{channel} must be a finite number >= 0 (flip a channel with a "
                                 f"negative weight instead), got {gain!r}")


class Retargeter:
    """Turns per-frame channel values (AUs, head and gaze angles) into safe joint commands."""

    def __init__(self, config: RobotConfig, params: RetargetParams) -> None:
        self.config = config
        self.mapping = ExpressionMapping(config)
        self.joints = config.joint_names
        self.neutral = np.array([s.neutral for s in config.servos])
        self.position = self.neutral.copy()
        self.velocity = np.zeros_like(self.neutral)
        self._raw = self.neutral.copy()
        self._smoothed = self.neutral.copy()
        self._valid_time = np.full_like(self.neutral, -math.inf)
        self._time: Optional[float] = None
        self.set_params(params)

    def set_params(self, params: RetargetParams) -> None:
        """Apply new settings (ValueError, nothing changed, when one is invalid)."""
        params.validate(self.mapping.channels)
        constraints = self.config.constraints
        self.limits = JointLimits.from_caps(self.config.servos, constraints.couplings, params.max_velocity,
                                            params.max_acceleration, constraints.velocity, constraints.acceleration)
        self._smoothing = np.array([constraints.smoothing.get(j, params.smoothing) for j in self.joints])
        shaper = self.mapping.shaper
        shaper.gains = np.array([params.gains.get(c, self.config.mapping.curve(c).gain) for c in shaper.channels])
        shaper.mirror = self.config.mapping.mirror if params.mirror is None else params.mirror
        self.params = params

    def response_times(self) -> Dict[str, float]:
        """Per input channel, the seconds the slowest joint it moves trails a steady ramp of its target:
        its smoothing's time constant plus v / 2a, the lag an acceleration-limited joint builds up getting
        to its velocity cap (anticipation looks no further ahead: forecast.make_forecaster)."""
        lag = self._smoothing + self.limits.vmax / (2.0 * self.limits.amax)
        return {c: float(lag[joints].max()) for c, joints in self.mapping.driven_joints().items() if joints.any()}

    def driver_times(self) -> Dict[str, float]:
        """Per input channel, the seconds the driver adds behind its slowest joint's commands: v / 2a
        again, its setpoint limiter and the servo's profile keeping the same caps (forecast.Forecaster)."""
        lag = self.limits.vmax / (2.0 * self.limits.amax)
        return {c: float(lag[joints].max()) for c, joints in self.mapping.driven_joints().items() if joints.any()}

    @property
    def command(self) -> Dict[str, float]:
        return dict(zip(self.joints, self.position.tolist()))

    def update(self, t: float, frame: Optional[Mapping[str, float]]) -> Dict[str, float]:
        """Take a frame's channels at time ``t`` (s; None = a frame without a face) and step."""
        if frame is not None:
            targets, valid = self.mapping(frame)
            # a target beyond a joint's range cannot be reached anyway; clipping it here also keeps
            # extreme inputs (1e308) from overflowing the smoothing into inf - inf = NaN
            self._raw[valid] = np.clip(targets[valid], self.limits.lo[valid], self.limits.hi[valid])
            self._valid_time[valid] = t
        return self.tick(t)

    def tick(self, t: float) -> Dict[str, float]:
        """Step to time ``t`` (s) without a new frame."""
        if self._time is None:
            self._time = t
        if t - self._time < MIN_STEP:
            return self.command
        h = t - self._time
        if h > MAX_STEP:
            self.velocity[:] = 0.0
            h = MAX_STEP
        self._time = t
        lost = t - self._valid_time > self.params.face_lost_timeout
        with np.errstate(divide="ignore", over="ignore"):
            alpha = -np.expm1(-h / self._smoothing)  # 1 where the time constant is 0
        self._smoothed = np.where(lost, self.neutral, self._smoothed + alpha * (self._raw - self._smoothed))
        target = self.limits.feasible_target(self._smoothed.copy())
        soft = np.where(lost, self.params.neutral_velocity, math.inf)
        self.position, self.velocity = self.limits.step(self.position, self.velocity, target, h, soft)
        return self.command


def with_changes(params: RetargetParams, changes: Mapping[str, object]) -> RetargetParams:
    """``params`` with parameter values by name (``gains.<channel>`` for gains); other names are ignored."""
    names = {f.name for f in dataclasses.fields(params)} - {"gains"}
    gains = dict(params.gains)
    plain = {}
    for name, value in changes.items():
        if name.startswith("gains."):
            gains[name[len("gains."):]] = value
        elif name in names:
            plain[name] = value
    return dataclasses.replace(params, gains=gains, **plain)
