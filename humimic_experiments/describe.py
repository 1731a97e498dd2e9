"""Text descriptions of facial expressions from action-unit intensities, for expression datasets.

The vocabulary (AU code -> what it looks like, humimic_core.channels.MEANINGS) follows FACS names
in plain words; intensities
0..5 are quantised into `levels` steps and stated as "k/levels" (levels = 5 gives the FACS-like
scale, e.g. "lip corners pulled up 4/5"), or in words with `words=True`
("slightly", "clearly", "strongly" for levels = 3). Channels below `threshold` are not mentioned;
a face with none above it is "neutral face".
"""
from __future__ import annotations

import math
from typing import List, Mapping, Optional, Sequence

from humimic_core import channels

#: AU code -> plain description, in order of mention (top of the face to the bottom)
VOCABULARY: Mapping[str, str] = channels.MEANINGS
ORDER: Sequence[str] = channels.CODES
_WORDS = {2: ("slightly", "strongly"), 3: ("slightly", "clearly", "strongly"),
          4: ("slightly", "moderately", "clearly", "strongly"),
          5: ("trace of", "slightly", "moderately", "clearly", "strongly")}
MAX_INTENSITY = channels.AU_RANGE[1]


def level(intensity: float, levels: int) -> int:
    """Intensity 0..5 quantised to 0..levels (rounded to the nearest step)."""
    if not math.isfinite(intensity) or intensity <= 0:
        return 0
    return int(min(levels, round(min(intensity, MAX_INTENSITY) / MAX_INTENSITY * levels)))


def describe(aus: Mapping[str, float], levels: int = 5, threshold: float = 0.5, words: bool = False,
             head: Optional[Mapping[str, float]] = None) -> str:
    """One sentence stating the expression with intensity levels, e.g.
    "inner brows raised 3/5, lip corners pulled up 4/5, jaw dropped 1/5"."""
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if words and levels not in _WORDS:
        raise ValueError(f"words=True needs levels in {sorted(_WORDS)}, got {levels}")
    parts: List[str] = []
    for code in ORDER:
        value = aus.get(code)
        if value is None or not math.isfinite(value) or value < threshold:
            continue
        k = level(value, levels)
        if k == 0:
            continue
        parts.append(f"{_WORDS[levels][k - 1]} {VOCABULARY[code]}" if words else f"{VOCABULARY[code]} {k}/{levels}")
    for name, (pos, neg) in (("head_yaw", ("turned left", "turned right")),
                             ("head_pitch", ("tilted down", "tilted up")),
                             ("head_roll", ("tilted toward the right shoulder", "tilted toward the left shoulder"))):
        angle = (head or {}).get(name)
        if angle is not None and math.isfinite(angle) and abs(math.degrees(angle)) >= 5:
            parts.append(f"head {pos if angle > 0 else neg} {abs(math.degrees(angle)):.0f} deg")
    return ", ".join(parts) if parts else "neutral face"
