"""The channel vocabulary: every input channel perception publishes and the retargeting reads,
their ranges and their mirror image. This module owns it; perception and retargeting import it.

Channels: the 17 action units of CODES (intensity 0..5 on /face/action_units), one-side action
units (SIDED_CODES: each lip corner's puller and depressor ``AU12_L`` / ``AU12_R``, ``AU15_L`` /
``AU15_R``, each eye's closure ``AU45_L`` / ``AU45_R``; L = the person's own left), head pose
``head_yaw``, ``head_pitch``, ``head_roll`` and gaze ``gaze_yaw``, ``gaze_pitch`` (radians: yaw + =
turned to the person's own left, pitch + = down, roll + = right ear down).

The mirror image of an expression swaps the person's left and right: ``*_L`` and ``*_R``
trade places and the lateral angles (head_yaw, head_roll, gaze_yaw) change sign.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

#: The action units perception publishes (OpenFace's 17 intensity AUs) -> what each looks like in
#: plain words (FACS names), top of the face to the bottom; the describer and the report word them so.
MEANINGS: Dict[str, str] = {
    "AU01": "inner brows raised",
    "AU02": "outer brows raised",
    "AU04": "brows lowered",
    "AU05": "upper lids raised",
    "AU06": "cheeks raised",
    "AU07": "lids tightened",
    "AU09": "nose wrinkled",
    "AU10": "upper lip raised",
    "AU12": "lip corners pulled up",
    "AU14": "mouth corners dimpled",
    "AU15": "lip corners pulled down",
    "AU17": "chin raised",
    "AU20": "lips stretched",
    "AU23": "lips tightened",
    "AU25": "lips parted",
    "AU26": "jaw dropped",
    "AU45": "eyes closed",
}
#: The action units perception publishes, sorted.
CODES: Tuple[str, ...] = tuple(MEANINGS)
#: One-side action units perception publishes (L = the person's own left).
SIDED_CODES: Tuple[str, ...] = ("AU12_L", "AU12_R", "AU15_L", "AU15_R", "AU45_L", "AU45_R")
HEAD_CHANNELS = ("head_yaw", "head_pitch", "head_roll")
GAZE_CHANNELS = ("gaze_yaw", "gaze_pitch")
#: Every channel perception publishes: the only names a mapping may read.
PUBLISHED: Tuple[str, ...] = CODES + SIDED_CODES + HEAD_CHANNELS + GAZE_CHANNELS
#: Angles whose sign flips in the mirror image.
LATERAL_ANGLES = frozenset({"head_yaw", "head_roll", "gaze_yaw"})
#: Intensity range of an action unit.
AU_RANGE = (0.0, 5.0)

_PUBLISHED = frozenset(PUBLISHED)
_ACTION_UNITS = frozenset(CODES + SIDED_CODES)


def is_channel(name: str) -> bool:
    """Whether perception publishes a channel of this name."""
    return name in _PUBLISHED


def channel_range(name: str) -> Optional[Tuple[float, float]]:
    """The value range of a channel: (0, 5) for action units, None (unbounded) for angles."""
    return AU_RANGE if name in _ACTION_UNITS else None


def mirror_source(name: str) -> Tuple[str, float]:
    """(channel, sign): the mirror image's ``name`` is ``sign`` times the person's ``channel``."""
    if name in LATERAL_ANGLES:
        return name, -1.0
    if name in _ACTION_UNITS and name[-2:] in ("_L", "_R"):
        return name[:-1] + ("R" if name.endswith("L") else "L"), 1.0
    return name, 1.0


def mirrored(channels: Mapping[str, float]) -> Dict[str, float]:
    """The mirror image of an expression (an involution: mirrored twice is the original)."""
    out = {}
    for name, value in channels.items():
        image, sign = mirror_source(name)
        out[image] = sign * value
    return out
