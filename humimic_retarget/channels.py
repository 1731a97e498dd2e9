"""The input channels of the retargeting and their mirror image.

Channels: action units ``AU01`` ... ``AU45`` (intensity 0..5; ``AUnn_L`` / ``AUnn_R`` for one side
of the person's face, L = the person's own left), head pose ``head_yaw``, ``head_pitch``,
``head_roll`` and gaze ``gaze_yaw``, ``gaze_pitch`` (radians: yaw + = turned to the person's own
left, pitch + = down, roll + = right ear down).

The mirror image of an expression swaps the person's left and right: ``AUnn_L`` and ``AUnn_R``
trade places and the lateral angles (head_yaw, head_roll, gaze_yaw) change sign.
"""
from __future__ import annotations

import re
from typing import Dict, Mapping, Optional, Tuple

HEAD_CHANNELS = ("head_yaw", "head_pitch", "head_roll")
GAZE_CHANNELS = ("gaze_yaw", "gaze_pitch")
#: Angles whose sign flips in the mirror image.
LATERAL_ANGLES = frozenset({"head_yaw", "head_roll", "gaze_yaw"})
#: Intensity range of an action unit.
AU_RANGE = (0.0, 5.0)

_AU = re.compile(r"^AU\d\d(_[LR])?$")


def is_channel(name: str) -> bool:
    return bool(_AU.match(name)) or name in HEAD_CHANNELS or name in GAZE_CHANNELS


def channel_range(name: str) -> Optional[Tuple[float, float]]:
    """The value range of a channel: (0, 5) for action units, None (unbounded) for angles."""
    return AU_RANGE if _AU.match(name) else None


def mirror_source(name: str) -> Tuple[str, float]:
    """(channel, sign): the mirror image's ``name`` is ``sign`` times the person's ``channel``."""
    if name in LATERAL_ANGLES:
        return name, -1.0
    if _AU.match(name) and name[-2:] in ("_L", "_R"):
        return name[:-1] + ("R" if name.endswith("L") else "L"), 1.0
    return name, 1.0


def mirrored(channels: Mapping[str, float]) -> Dict[str, float]:
    """The mirror image of an expression (an involution: mirrored twice is the original)."""
    out = {}
    for name, value in channels.items():
        image, sign = mirror_source(name)
        out[image] = sign * value
    return out
