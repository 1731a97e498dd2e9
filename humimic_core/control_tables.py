"""Dynamixel X-series control tables as data (Protocol 2.0).

Addresses and units are those of the ROBOTIS e-Manual pages of each model
(emanual.robotis.com, "Control Table of EEPROM Area" / "RAM Area"). One table per model
family: the X-series share the layout below, and differ in model number, current unit and
limits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Tuple


@dataclass(frozen=True)
class Register:
    """One control-table entry: address, size in bytes, EEPROM (locked while torque is on),
    signed value, read-only (access "R" in the e-Manual)."""

    address: int
    size: int
    eeprom: bool = False
    signed: bool = False
    readonly: bool = False


# Layout shared by the X-series (XL330, XC330, XM430, XM540, ...): name -> register.
X_SERIES_REGISTERS: Dict[str, Register] = {
    "model_number": Register(0, 2, True, readonly=True),
    "model_information": Register(2, 4, True, readonly=True),
    "firmware_version": Register(6, 1, True, readonly=True),
    "id": Register(7, 1, True),
    "baud_rate": Register(8, 1, True),
    "return_delay_time": Register(9, 1, True),
    "drive_mode": Register(10, 1, True),
    "operating_mode": Register(11, 1, True),
    "secondary_id": Register(12, 1, True),
    "protocol_type": Register(13, 1, True),
    "homing_offset": Register(20, 4, True, signed=True),
    "moving_threshold": Register(24, 4, True),
    "temperature_limit": Register(31, 1, True),
    "max_voltage_limit": Register(32, 2, True),
    "min_voltage_limit": Register(34, 2, True),
    "pwm_limit": Register(36, 2, True),
    "current_limit": Register(38, 2, True),
    "velocity_limit": Register(44, 4, True),
    "max_position_limit": Register(48, 4, True),
    "min_position_limit": Register(52, 4, True),
    "shutdown": Register(63, 1, True),
    "torque_enable": Register(64, 1),
    "led": Register(65, 1),
    "status_return_level": Register(68, 1),
    "registered_instruction": Register(69, 1, readonly=True),
    "hardware_error_status": Register(70, 1, readonly=True),
    "velocity_i_gain": Register(76, 2),
    "velocity_p_gain": Register(78, 2),
    "position_d_gain": Register(80, 2),
    "position_i_gain": Register(82, 2),
    "position_p_gain": Register(84, 2),
    "goal_pwm": Register(100, 2, signed=True),
    "goal_current": Register(102, 2, signed=True),
    "goal_velocity": Register(104, 4, signed=True),
    "profile_acceleration": Register(108, 4),
    "profile_velocity": Register(112, 4),
    "goal_position": Register(116, 4, signed=True),
    "realtime_tick": Register(120, 2, readonly=True),
    "moving": Register(122, 1, readonly=True),
    "moving_status": Register(123, 1, readonly=True),
    "present_pwm": Register(124, 2, signed=True, readonly=True),
    "present_current": Register(126, 2, signed=True, readonly=True),
    "present_velocity": Register(128, 4, signed=True, readonly=True),
    "present_position": Register(132, 4, signed=True, readonly=True),
    "velocity_trajectory": Register(136, 4, signed=True, readonly=True),
    "position_trajectory": Register(140, 4, signed=True, readonly=True),
    "present_input_voltage": Register(144, 2, readonly=True),
    "present_temperature": Register(146, 1, readonly=True),
}

# Operating mode values (address 11).
POSITION_CONTROL_MODE = 3
# Position counter: 4096 ticks per revolution, 0..4095 in position control mode.
TICKS_PER_REV = 4096
RAD_PER_TICK = 2.0 * math.pi / TICKS_PER_REV
# Velocity unit 0.229 rev/min for the whole X-series (present velocity, profile velocity, limits).
RAD_S_PER_VELOCITY_UNIT = 0.229 * 2.0 * math.pi / 60.0
# Profile acceleration unit 214.577 rev/min^2.
RAD_S2_PER_ACCELERATION_UNIT = 214.577 * 2.0 * math.pi / 3600.0
# Largest profile acceleration value (register range 0..32767; 0 = no limit).
MAX_PROFILE_ACCELERATION = 32767
# Return delay time unit (s) and largest register value (0..254, factory default 250 = 500 us).
RETURN_DELAY_UNIT_S = 2e-6
MAX_RETURN_DELAY = 254
# Present input voltage unit (V).
VOLTS_PER_UNIT = 0.1

# Baud rate register (address 8) value -> bit/s. 9600 (value 0) is left out on purpose: the
# driver supports 57600 .. 4 Mbps, which every model here can do.
BAUD_RATES: Dict[int, int] = {1: 57600, 2: 115200, 3: 1000000, 4: 2000000, 5: 3000000, 6: 4000000}
BAUD_CODES: Dict[int, int] = {baud: code for code, baud in BAUD_RATES.items()}

# Hardware error status (address 70) bit -> word. The servo keeps them until rebooted; those set
# in the Shutdown register (address 63, default 52 = overheating, electrical shock, overload)
# also switch torque off.
HARDWARE_ERROR_BITS: Dict[int, str] = {
    0: "input voltage",
    2: "overheating",
    3: "motor encoder",
    4: "electrical shock",
    5: "overload",
}
HW_INPUT_VOLTAGE, HW_OVERHEATING, HW_ENCODER, HW_ELECTRICAL_SHOCK, HW_OVERLOAD = (1 << b for b in (0, 2, 3, 4, 5))


def hardware_error_words(bits: int) -> List[str]:
    """The hardware error status bits as words, e.g. 0x24 -> ["overheating", "overload"]."""
    words = [word for bit, word in sorted(HARDWARE_ERROR_BITS.items()) if bits >> bit & 1]
    unknown = bits & ~sum(1 << b for b in HARDWARE_ERROR_BITS) & 0xFF
    if unknown:
        words.append(f"unknown bits 0x{unknown:02x}")
    return words


@dataclass(frozen=True)
class ModelSpec:
    """A Dynamixel model: its model number, units and the ranges of its position counter."""

    name: str
    model_number: int
    current_unit_a: float  # amperes per unit of present/goal current
    # Torque per ampere (N m / A), from the e-Manual's stall torque / stall current at the
    # recommended voltage: a rough conversion of present current into JointState effort.
    torque_per_amp: float
    position_range: Tuple[int, int] = (0, TICKS_PER_REV - 1)
    registers: Dict[str, Register] = field(default_factory=lambda: X_SERIES_REGISTERS)
    # Factory defaults the emulator starts from (the e-Manual's "initial value").
    defaults: Dict[str, int] = field(default_factory=dict)

    def register(self, name: str) -> Register:
        return self.registers[name]

    @property
    def max_velocity(self) -> float:
        """Fastest profile velocity (rad/s): the factory velocity limit."""
        return self.defaults["velocity_limit"] * RAD_S_PER_VELOCITY_UNIT


_X_DEFAULTS = {
    "firmware_version": 52,
    "baud_rate": 1,
    "return_delay_time": 250,
    "operating_mode": POSITION_CONTROL_MODE,
    "protocol_type": 2,
    "moving_threshold": 10,
    "temperature_limit": 80,
    "pwm_limit": 885,
    "max_position_limit": 4095,
    "min_position_limit": 0,
    "shutdown": 52,
    "status_return_level": 2,
    "position_p_gain": 800,
    "present_temperature": 30,  # room temperature, for the emulator
}

MODELS: Dict[str, ModelSpec] = {
    "XL330-M288": ModelSpec(
        "XL330-M288", 1200, 0.001, 0.52 / 1.47,
        defaults={**_X_DEFAULTS, "max_voltage_limit": 70, "min_voltage_limit": 35, "present_input_voltage": 50,
                  "current_limit": 1750, "velocity_limit": 445, "temperature_limit": 70},
    ),
    "XL330-M077": ModelSpec(
        "XL330-M077", 1190, 0.001, 0.215 / 1.47,
        defaults={**_X_DEFAULTS, "max_voltage_limit": 70, "min_voltage_limit": 35, "present_input_voltage": 50,
                  "current_limit": 1750, "velocity_limit": 1620, "temperature_limit": 70},
    ),
    "XC330-M288": ModelSpec(
        "XC330-M288", 1240, 0.001, 0.93 / 1.80,
        defaults={**_X_DEFAULTS, "max_voltage_limit": 70, "min_voltage_limit": 35, "present_input_voltage": 50,
                  "current_limit": 1750, "velocity_limit": 445, "temperature_limit": 70},
    ),
    "XM430-W350": ModelSpec(
        "XM430-W350", 1020, 0.00269, 4.1 / 2.3,
        defaults={**_X_DEFAULTS, "max_voltage_limit": 160, "min_voltage_limit": 95, "present_input_voltage": 120,
                  "current_limit": 1193, "velocity_limit": 200},
    ),
    "XM540-W270": ModelSpec(
        "XM540-W270", 1120, 0.00269, 10.6 / 4.4,
        defaults={**_X_DEFAULTS, "max_voltage_limit": 160, "min_voltage_limit": 95, "present_input_voltage": 120,
                  "current_limit": 2047, "velocity_limit": 128},
    ),
}

MODEL_BY_NUMBER: Dict[int, ModelSpec] = {m.model_number: m for m in MODELS.values()}


def model(name: str) -> ModelSpec:
    """The model spec for a name, or a ValueError listing the known models."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown Dynamixel model {name!r}; known: {', '.join(sorted(MODELS))}") from None
