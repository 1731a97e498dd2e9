"""Writing calibrated servo values back into the robot config YAML, changing nothing else.

ruamel.yaml's round-trip loader locates each value to change (line and column of the scalar in
its flow- or block-style servo map); only those scalars are replaced in the text, so comments,
order, flow style, line breaks and number formatting of everything else stay byte for byte. The
result is re-read with the round-trip loader and checked to differ from the original in exactly
those values, and validated as a robot config, before it atomically replaces the file.
"""
from __future__ import annotations

import io
import math
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import yaml
from ruamel.yaml import YAML

from humimic_core.robot_config import ConfigError, parse_robot_config

#: Decimals written for a calibrated angle (1e-4 rad is well below one servo tick).
DECIMALS = 4
_SCALAR = re.compile(r"[^\s,}\]#]+")


def _load(text: str) -> Any:
    return YAML(typ="rt").load(io.StringIO(text))


def _servo_entries(data: Any, path: Path) -> Dict[str, Any]:
    servos = data.get("servos") if hasattr(data, "get") else None
    if not isinstance(servos, list):
        raise ConfigError(f"{path}: no servos list")
    return {str(s.get("joint")): s for s in servos if hasattr(s, "get")}


def format_angle(value: float) -> str:
    text = f"{value:.{DECIMALS}f}"
    return "0.0" if float(text) == 0.0 else text


def patch_servo_fields(text: str, updates: Mapping[str, Mapping[str, float]], path: Path = Path("<yaml>")) -> str:
    """The YAML text with ``updates`` (joint -> {field: value}) written into its servo entries."""
    lines = text.splitlines(keepends=True)
    entries = _servo_entries(_load(text), path)
    edits: List[Tuple[int, int, str]] = []
    for joint, fields in updates.items():
        if joint not in entries:
            raise ConfigError(f"{path}: no servo with joint {joint!r}")
        entry = entries[joint]
        for name, value in fields.items():
            if name not in entry or not math.isfinite(value):
                raise ConfigError(f"{path}: servo {joint}: cannot write {name} = {value!r} "
                                  f"({'not finite' if name in entry else 'no such field in its entry'})")
            line, col = entry.lc.value(name)
            edits.append((line, col, format_angle(value)))
    for line, col, new in sorted(edits, reverse=True):
        match = _SCALAR.match(lines[line], col)
        if match is None:
            raise ConfigError(f"{path}:{line + 1}: no plain scalar at column {col + 1} to replace")
        lines[line] = lines[line][:col] + new + lines[line][match.end():]
    patched = "".join(lines)
    _check_only_updates(text, patched, updates, path)
    return patched


def _check_only_updates(before: str, after: str, updates: Mapping[str, Mapping[str, float]], path: Path) -> None:
    old, new = _load(before), _load(after)
    old_servos, new_servos = _servo_entries(old, path), _servo_entries(new, path)
    for joint, entry in old_servos.items():
        for name, value in entry.items():
            expected = round(updates[joint][name], DECIMALS) if name in updates.get(joint, {}) else value
            if new_servos[joint][name] != expected:
                raise ConfigError(f"{path}: writing back changed servo {joint} {name} to {new_servos[joint][name]!r}, "
                                  f"expected {expected!r}; file left as it was")
    if {k: v for k, v in old.items() if k != "servos"} != {k: v for k, v in new.items() if k != "servos"}:
        raise ConfigError(f"{path}: writing back changed more than the servo values; file left as it was")


def write_servo_fields(path: str | Path, updates: Mapping[str, Mapping[str, float]]) -> None:
    """Write calibrated values into a robot config file (ConfigError, file untouched, if the result
    would not be a valid robot config)."""
    path = Path(path)
    patched = patch_servo_fields(path.read_text(), updates, path)
    parse_robot_config(yaml.safe_load(patched), str(path))
    tmp = path.with_name(f".{path.name}.calibrating")
    tmp.write_text(patched)
    os.replace(tmp, path)
