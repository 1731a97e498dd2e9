"""Conversions between ROS time messages and nanoseconds."""
from __future__ import annotations

from builtin_interfaces.msg import Time


def to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def from_ns(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))
