"""Linear expression-to-joint mapping: target = neutral + offset + sum(weight * channel)."""
from __future__ import annotations

import math
from typing import Dict, Mapping

from humimic_core.robot_config import RobotConfig


def map_channels(config: RobotConfig, channels: Mapping[str, float]) -> Dict[str, float]:
    """Joint targets (rad, not yet limited) for every servo of the config.

    A channel missing from ``channels`` contributes nothing. A joint any of whose weighted
    channels is not finite gets NaN, so the caller can hold that joint instead of guessing.
    """
    targets: Dict[str, float] = {}
    for servo in config.servos:
        entry = config.mapping.get(servo.joint)
        value = servo.neutral
        if entry is not None:
            value += entry.offset
            for channel, weight in entry.weights.items():
                x = channels.get(channel)
                if x is None:
                    continue
                x = float(x)
                if not math.isfinite(x):
                    value = math.nan
                    break
                value += weight * x
        targets[servo.joint] = value
    return targets
