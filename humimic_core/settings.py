"""Node settings as frozen dataclasses whose fields are the node's ROS parameters.

A field made with ``setting()`` is one parameter: its default, description, range (numbers) and
whether it is read-only (read once at start; ``ros2 param set`` is then refused, not ignored). A
field made with ``group()`` holds a nested settings dataclass whose parameters are named
``<field>.<name>`` (``smoothing.gaze.beta``). Pure (no ROS): ``humimic_core.ros_util.declare_settings``
declares the parameters on a node; ``from_parameters`` builds the settings from parameter values by
name, a live node's or a parameter file's (``humimic_core.parameters.node_parameters``), so a node
and an offline re-run build the same settings the same way.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Callable, List, Mapping, Optional, Tuple, Type, TypeVar

S = TypeVar("S", bound="Settings")


@dataclass(frozen=True)
class Param:
    """One ROS parameter: name, default, description, range of a number, read-only."""

    name: str
    default: Any
    description: str
    bounds: Optional[Tuple[float, float]] = None
    read_only: bool = True


def setting(default: Any, description: str, bounds: Optional[Tuple[float, float]] = None,
            read_only: bool = True) -> Any:
    """A settings field that is one parameter (read-only unless it can change at run time)."""
    return field(default=default, metadata={"param": (description, bounds, read_only)})


def group(factory: Callable[[], "Settings"], description: str) -> Any:
    """A settings field holding nested settings, their parameters named ``<field>.<name>``;
    ``description`` says what they apply to and starts each of their descriptions."""
    return field(default_factory=factory, metadata={"group": description})


class Settings:
    """Base of settings dataclasses: their ``setting()`` and ``group()`` fields are parameters
    (other fields are not, and keep their defaults here)."""

    @classmethod
    def parameters(cls, prefix: str = "") -> List[Param]:
        """Every parameter with its default, in field order, named ``<prefix><name>``."""
        return _parameters(cls(), prefix, "")

    @classmethod
    def from_parameters(cls: Type[S], values: Mapping[str, Any], prefix: str = "") -> S:
        """The settings from parameter values by name (``<prefix><name>``); missing ones keep their
        default, other names are ignored. ValueError when a value cannot be used."""
        return _with_values(cls(), values, prefix)


def _parameters(settings: Any, prefix: str, context: str) -> List[Param]:
    out: List[Param] = []
    for f in fields(settings):
        value = getattr(settings, f.name)
        if "group" in f.metadata:
            out += _parameters(value, f"{prefix}{f.name}.", f.metadata["group"])
        elif "param" in f.metadata:
            description, bounds, read_only = f.metadata["param"]
            out.append(Param(prefix + f.name, value, f"{context}: {description}" if context else description,
                             bounds, read_only))
    return out


def _with_values(settings: Any, values: Mapping[str, Any], prefix: str) -> Any:
    changes = {}
    for f in fields(settings):
        name = prefix + f.name
        if "group" in f.metadata:
            changes[f.name] = _with_values(getattr(settings, f.name), values, name + ".")
        elif "param" in f.metadata and name in values:
            value, default = values[name], f.default
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            elif type(value) is not type(default):
                raise ValueError(f"parameter {name}: expected {type(default).__name__}, got {value!r}")
            changes[f.name] = value
    return dataclasses.replace(settings, **changes)
