"""ROS 2 parameter files read without ROS: one node's parameters under their dotted names."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import yaml


def flatten_parameters(params: Any) -> Dict[str, Any]:
    """Nested parameter maps as ROS names them: {smoothing: {enabled: true}} -> {"smoothing.enabled": true}."""
    out: Dict[str, Any] = {}

    def flatten(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                flatten(f"{prefix}{key}.", item)
        else:
            out[prefix[:-1]] = value

    flatten("", params or {})
    return out


def node_parameters(params_file: str | Path, node: str) -> Dict[str, Any]:
    """The `ros__parameters` of one node in a ROS 2 parameter file, nested maps flattened into
    dotted names as ROS does (smoothing: {enabled: true} -> "smoothing.enabled")."""
    data = yaml.safe_load(Path(params_file).read_text()) or {}
    return flatten_parameters((data.get(node) or {}).get("ros__parameters"))
