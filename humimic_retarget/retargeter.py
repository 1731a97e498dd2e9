"""The retargeting state machine: channels in, limited joint commands out.

Per update: map channels to joint targets, clamp to joint limits, then limit each joint's
velocity against the previous command. A frame without a face holds the last command; once no
face has been seen for ``face_lost_timeout`` seconds every joint glides to neutral at
``neutral_velocity``. A joint whose input is NaN/inf holds its previous command. Every command
returned is within [min, max] of its servo.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Mapping, Optional

from humimic_core.robot_config import RobotConfig
from humimic_retarget.linear_mapping import map_channels

#: Longest step (s) a single update may integrate: a gap in the stream is not a licence to jump.
MAX_STEP = 0.2


@dataclass
class RetargetParams:
    max_velocity: float = 3.0
    neutral_velocity: float = 0.8
    face_lost_timeout: float = 0.5

    def validate(self) -> None:
        for name in ("max_velocity", "neutral_velocity"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be a positive number of rad/s, got {value!r}")
        if not (math.isfinite(self.face_lost_timeout) and self.face_lost_timeout >= 0.0):
            raise ValueError(f"face_lost_timeout must be >= 0 s, got {self.face_lost_timeout!r}")


class Retargeter:
    """Turns per-frame channel values (AUs, head angles) into safe joint commands."""

    def __init__(self, config: RobotConfig, params: RetargetParams) -> None:
        params.validate()
        self.config = config
        self.params = params
        self.command: Dict[str, float] = {s.joint: s.neutral for s in config.servos}
        self._last_time: Optional[float] = None
        self._last_face_time: Optional[float] = None

    @property
    def face_lost(self) -> bool:
        return self._last_face_time is None or (
            self._last_time is not None and self._last_time - self._last_face_time > self.params.face_lost_timeout)

    def update(self, t: float, channels: Optional[Mapping[str, float]]) -> Dict[str, float]:
        """Advance to time ``t`` (s) with this frame's channels, or None when there is no face."""
        dt = 0.0 if self._last_time is None else min(MAX_STEP, max(0.0, t - self._last_time))
        if self._last_time is None or t > self._last_time:
            self._last_time = t
        if channels is not None:
            self._last_face_time = self._last_time
            targets, velocity = map_channels(self.config, channels), self.params.max_velocity
        elif self.face_lost:
            targets = {s.joint: s.neutral for s in self.config.servos}
            velocity = self.params.neutral_velocity
        else:
            return dict(self.command)
        step = velocity * dt
        for servo in self.config.servos:
            previous = self.command[servo.joint]
            target = targets[servo.joint]
            if not math.isfinite(target):
                continue
            target = servo.clamp(target)
            self.command[servo.joint] = servo.clamp(previous + max(-step, min(step, target - previous)))
        return dict(self.command)
