"""Diagnostic reports of the servo bus and of each servo (pure; the node turns them into
diagnostic_msgs/DiagnosticStatus). Levels are those of DiagnosticStatus: OK, WARN, ERROR, STALE.

Per servo: ERROR for a hardware error (bits decoded into words), a temperature at or above
``temperature_error`` or a comm error rate at or above ``comm_error_error``; WARN for a
temperature at or above ``temperature_warn``, an input voltage within ``voltage_warn_margin`` of
the model's voltage limits, or a comm error rate at or above ``comm_error_warn``; STALE while it
does not answer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional

from humimic_core.control_tables import VOLTS_PER_UNIT, hardware_error_words
from humimic_driver.servo_health import ACTIVE, FAULT, REBOOTING, STALE, ServoHealth

OK, WARN, ERROR, STALE_LEVEL = 0, 1, 2, 3


@dataclass(frozen=True)
class Thresholds:
    temperature_warn: float
    temperature_error: float
    voltage_warn_margin: float
    comm_error_warn: float
    comm_error_error: float


@dataclass(frozen=True)
class Report:
    level: int
    name: str
    message: str
    hardware_id: str
    values: Dict[str, str]


def _fmt(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def servo_report(h: ServoHealth, limits: Thresholds, port: str, goal: float, motion: str, now: float,
                 max_reboots: int, cooling_below: Optional[float] = None) -> Report:
    """The diagnostic status of one servo (``goal``: its commanded goal in rad; ``motion``: how the
    temperature policy treats it; ``cooling_below``: overheated, its reboot waits until it is cooler)."""
    servo = h.servo
    words = hardware_error_words(h.hardware_error)
    level, reasons = OK, []

    def flag(lvl: int, reason: str) -> None:
        nonlocal level
        level = max(level, lvl)
        reasons.append(reason)

    if h.mode == STALE:
        flag(STALE_LEVEL, f"no answer for {now - h.since:.1f} s ({h.problem}); "
                          f"next ping in {max(0.0, h.retry.due - now):.1f} s")
    elif h.mode in (FAULT, REBOOTING):
        if h.mode == REBOOTING:
            action = f"rebooted ({h.reboots} of {max_reboots}), waiting for it"
        elif h.reboots >= max_reboots:
            action = f"not rebooting: {h.reboots} reboots used" if max_reboots else "automatic reboot off"
        elif cooling_below is not None:
            action = (f"torque off by the servo, waiting to cool below {cooling_below:g} C before reboot "
                      f"{h.reboots + 1} of {max_reboots}")
        else:
            action = f"reboot {h.reboots + 1} of {max_reboots} in {max(0.0, h.retry.due - now):.1f} s"
        flag(ERROR, f"hardware error: {', '.join(words) or h.problem}; not driven; {action}")
    if not math.isnan(h.temperature):
        if h.temperature >= limits.temperature_error:
            flag(ERROR, f"temperature {h.temperature:.0f} C >= {limits.temperature_error:g}")
        elif h.temperature >= limits.temperature_warn:
            flag(WARN, f"temperature {h.temperature:.0f} C >= {limits.temperature_warn:g}")
    defaults = servo.spec.defaults
    v_lo, v_hi = defaults["min_voltage_limit"] * VOLTS_PER_UNIT, defaults["max_voltage_limit"] * VOLTS_PER_UNIT
    margin = limits.voltage_warn_margin
    if not math.isnan(h.voltage) and not v_lo + margin <= h.voltage <= v_hi - margin:
        flag(WARN, f"input voltage {h.voltage:.1f} V near or outside {v_lo:.1f}..{v_hi:.1f} V")
    rate = h.comm_error_rate
    if rate >= limits.comm_error_error:
        flag(ERROR, f"comm error rate {rate:.0%}")
    elif rate >= limits.comm_error_warn:
        flag(WARN, f"comm error rate {rate:.0%}")
    if h.mode == ACTIVE and h.homing_until is not None:
        reasons.append("moving slowly to its goal")
    if motion != "full":
        reasons.append(f"motion {motion}")
    values = {
        "id": str(servo.id), "model": servo.model, "mode": h.mode,
        "position_rad": _fmt(h.position, 4), "goal_rad": _fmt(goal, 4),
        "temperature_c": _fmt(h.temperature, 0), "voltage_v": _fmt(h.voltage),
        "hardware_error": ", ".join(words) or "none", "hardware_error_status": f"0x{h.hardware_error:02x}",
        "comm_error_rate": f"{rate:.4f}", "transactions": str(h.transactions), "failed": str(h.failures),
        "crc_errors": str(h.crc_errors), "reboots": str(h.reboots), "motion": motion,
    }
    return Report(level, f"dynamixel_driver: {servo.joint} (ID {servo.id})", "; ".join(reasons) or "OK",
                  f"dynamixel {port} ID {servo.id}", values)


def bus_report(port: str, baud: int, connected: bool, problem: str, values: Dict[str, str],
               healths: List[ServoHealth]) -> Report:
    """The diagnostic status of the bus as a whole."""
    counts = {mode: sum(h.mode == mode for h in healths) for mode in (ACTIVE, STALE, FAULT, REBOOTING)}
    summary = ", ".join(f"{n} {mode}" for mode, n in counts.items() if n)
    if not connected:
        level, message = ERROR, f"port lost, reopening: {problem}"
    else:
        level, message = (OK if counts[ACTIVE] == len(healths) else WARN), f"bus up: {summary}"
    return Report(level, "dynamixel_driver: servo bus", message, f"dynamixel {port}",
                  {"port": port, "baud_rate": str(baud), "connected": str(connected).lower(), **values})
