"""Fault injection for the emulated servo bus: one text command per fault, given on the command
line of humimic-servo-emulator (``--fault CMD``, ``--at SECONDS CMD``) or sent to a running
emulator through its control socket (``--send CMD``, or ``send_command()``).

    crc RATE              corrupt this fraction of packets on the wire, both directions (0..1)
    drop RATE             lose this fraction of status packets (0..1)
    dead ID               servo ID loses power: hears and answers nothing
    revive ID             its power comes back: it boots (RAM at defaults, torque off)
    overheat ID SECONDS   servo ID heats up to 1 degC above its temperature limit in SECONDS
    temperature ID DEGC   set its temperature now (stops heating; e.g. cooled down)
    voltage ID VOLTS      set its input voltage
    overload ID | shock ID | encoder ID   latch that hardware error (torque drops, Shutdown register)
    unplug [SECONDS]      the port vanishes: its link is removed and open clients get I/O errors;
                          it comes back (new pty, same link) after SECONDS, or on `plug`
    plug                  bring the port back now
    state ID              reply with the servo's registers and temperature as JSON
"""
from __future__ import annotations

import json
from typing import Callable, Dict, List, Optional, Protocol, Tuple

from humimic_core.control_tables import EFFORT, HW_ELECTRICAL_SHOCK, HW_ENCODER, HW_OVERLOAD
from humimic_driver.sim.servo_emulator import EmulatedServo, ServoEmulator

#: Registers reported by `state ID`.
STATE_REGISTERS = ("torque_enable", "goal_position", "present_position", "present_velocity", EFFORT,
                   "min_position_limit", "max_position_limit", "operating_mode", "return_delay_time",
                   "profile_velocity", "profile_acceleration", "present_temperature", "present_input_voltage",
                   "hardware_error_status", "temperature_limit")
_INJECTED = {"overload": HW_OVERLOAD, "shock": HW_ELECTRICAL_SHOCK, "encoder": HW_ENCODER}


class Port(Protocol):
    """The emulator's serial port, as far as faults go."""

    def unplug(self, seconds: Optional[float]) -> None: ...

    def plug(self) -> None: ...


def _number(text: str, what: str, low: float = -float("inf"), high: float = float("inf")) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what}: expected a number, got {text!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{what}: {value:g} outside {low:g}..{high:g}")
    return value


def _servo(emulator: ServoEmulator, text: str) -> EmulatedServo:
    try:
        return emulator.servos[int(text)]
    except (ValueError, KeyError):
        raise ValueError(f"no emulated servo with ID {text!r} (IDs: "
                         f"{', '.join(str(i) for i in sorted(emulator.servos))})") from None


def servo_state(servo: EmulatedServo) -> Dict[str, object]:
    state: Dict[str, object] = {name: servo.get(name) for name in STATE_REGISTERS}
    state.update(id=servo.id, alive=servo.alive, temperature=round(servo.temperature, 2))
    return state


def apply_fault(command: str, emulator: ServoEmulator, now: float, port: Optional[Port] = None) -> str:
    """Apply one command at time ``now``; returns the reply ("ok" or the state JSON); ValueError
    naming the problem for a bad command (unplug / plug need a ``port``)."""
    words = command.split()
    if not words:
        raise ValueError("empty command")
    name, args = words[0].lower(), words[1:]
    arity = {"crc": (1,), "drop": (1,), "dead": (1,), "revive": (1,), "overheat": (2,), "temperature": (2,),
             "voltage": (2,), "overload": (1,), "shock": (1,), "encoder": (1,), "unplug": (0, 1), "plug": (0,),
             "state": (1,)}
    if name not in arity:
        raise ValueError(f"unknown fault command {name!r} (known: {', '.join(sorted(arity))})")
    if len(args) not in arity[name]:
        raise ValueError(f"{name}: expected {' or '.join(str(n) for n in arity[name])} arguments, got {len(args)}")
    if name in ("unplug", "plug") and port is None:
        raise ValueError(f"{name}: no port here")
    actions: Dict[str, Callable[[], None]] = {
        "crc": lambda: setattr(emulator, "crc_rate", _number(args[0], "crc rate", 0.0, 1.0)),
        "drop": lambda: setattr(emulator, "drop_rate", _number(args[0], "drop rate", 0.0, 1.0)),
        "unplug": lambda: port.unplug(_number(args[0], "unplug seconds", 0.0) if args else None),  # type: ignore
        "plug": lambda: port.plug(),  # type: ignore[union-attr]
    }
    if name in actions:
        actions[name]()
        return "ok"
    servo = _servo(emulator, args[0])
    servo.update(now)
    if name == "state":
        return json.dumps(servo_state(servo))
    if name == "dead":
        servo.alive = False
    elif name == "revive":
        if not servo.alive:
            servo.alive = True
            servo.reboot(now)
    elif name == "overheat":
        servo.overheat(now, _number(args[1], "overheat seconds", 0.0))
    elif name == "temperature":
        servo.set_temperature(now, _number(args[1], "temperature", -40.0, 200.0))
    elif name == "voltage":
        servo.voltage = _number(args[1], "voltage", 0.0, 30.0)
    else:
        servo.injected_errors |= _INJECTED[name]
    servo.update(now)
    return "ok"


def parse_schedule(pairs: List[List[str]]) -> List[Tuple[float, str]]:
    """--at SECONDS CMD pairs -> [(seconds, command)], sorted by time; ValueError for a bad time."""
    schedule = [(_number(seconds, "--at seconds", 0.0), command) for seconds, command in pairs]
    return sorted(schedule, key=lambda item: item[0])
