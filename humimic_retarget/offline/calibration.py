"""Calibration bookkeeping: how far each servo may be jogged and what min / neutral / max were recorded."""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

from humimic_core.robot_config import RobotConfig, Servo
from humimic_retarget.offline.calibration_yaml import DECIMALS

FIELDS = ("min", "neutral", "max")


class Calibration:
    """Recorded values per joint; ``reach`` (rad) is how far beyond its configured limits a joint
    may be jogged while looking for the real ones (never beyond its servo's position range)."""

    def __init__(self, config: RobotConfig, reach: float) -> None:
        if not reach >= 0:
            raise ValueError(f"reach must be >= 0 rad, got {reach!r}")
        self.config, self.reach = config, reach
        self.recorded: Dict[str, Dict[str, float]] = {}

    def jog_servo(self, joint: str) -> Servo:
        """The joint's servo with its limits widened to the jog range."""
        servo = self.config.servo(joint)
        ends = [servo.from_tick(t) for t in servo.spec.position_range]
        return dataclasses.replace(servo, min=max(min(ends), servo.min - self.reach),
                                   max=min(max(ends), servo.max + self.reach))

    def jog_servos(self) -> List[Servo]:
        return [self.jog_servo(j) for j in self.config.joint_names]

    def record(self, joint: str, field: str, angle: float) -> None:
        if field not in FIELDS:
            raise ValueError(f"can record {', '.join(FIELDS)}, not {field!r}")
        self.recorded.setdefault(joint, {})[field] = round(angle, DECIMALS)

    def values(self, joint: str) -> Dict[str, float]:
        """min / neutral / max of a joint: recorded where recorded, else configured."""
        servo = self.config.servo(joint)
        return {f: self.recorded.get(joint, {}).get(f, getattr(servo, f)) for f in FIELDS}

    def problem(self, joint: str) -> Optional[str]:
        """Why the joint's values cannot be saved, or None."""
        v = self.values(joint)
        if not v["min"] < v["max"]:
            return f"{joint}: min {v['min']} must be below max {v['max']}"
        if not v["min"] <= v["neutral"] <= v["max"]:
            return f"{joint}: neutral {v['neutral']} is outside [min, max] = [{v['min']}, {v['max']}]"
        return None
