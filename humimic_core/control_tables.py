"""Dynamixel control tables as data (Protocol 2.0): register layouts, units and factory defaults
per model.

Addresses, units and initial values are those of each model's ROBOTIS e-Manual page
(emanual.robotis.com, "Control Table of EEPROM Area" / "RAM Area"); the URL is beside each model.
A model is one ``ModelSpec`` entry in ``MODELS``: its register layout (the X-series one, the MX(2.0)
one, the P-series one, or a new table here), its units and its factory defaults. The driver, the
robot config and the emulator address registers and convert units only through the model's spec.
test/test_control_tables.py checks every layout and the position and velocity units against the
control tables ROBOTIS ships in the dynamixel-sdk wheel (dynamixel_easy_sdk/control_table/).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
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

# MX(2.0) firmware (MX-28/64/106 in Protocol 2.0): the X-series layout, but the load instead of a
# current (no Current Limit, Goal Current, Present Current) and an Acceleration Limit.
# https://emanual.robotis.com/docs/en/dxl/mx/mx-28-2/
MX2_REGISTERS: Dict[str, Register] = {
    **{name: reg for name, reg in X_SERIES_REGISTERS.items()
       if name not in ("current_limit", "goal_current", "present_current")},
    "acceleration_limit": Register(40, 4, True),
    "present_load": Register(126, 2, signed=True, readonly=True),
}

# DYNAMIXEL-P series (PH42, PH54, PM42, PM54): the EEPROM area as the X series' up to address 63, the
# RAM area the X series' moved from address 64 to 512, with three LEDs where the X series has one.
# https://emanual.robotis.com/docs/en/dxl/p/ph42-020-s300-r/
P_RAM_OFFSET = 512 - 64
P_SERIES_REGISTERS: Dict[str, Register] = {
    **{name: reg for name, reg in X_SERIES_REGISTERS.items() if reg.eeprom},
    "acceleration_limit": Register(40, 4, True),
    "max_position_limit": Register(48, 4, True, signed=True),  # the position counter is signed here
    "min_position_limit": Register(52, 4, True, signed=True),
    **{name: replace(reg, address=reg.address + P_RAM_OFFSET)
       for name, reg in X_SERIES_REGISTERS.items() if not reg.eeprom and name != "led"},
    "led_red": Register(513, 1),
    "led_green": Register(514, 1),
    "led_blue": Register(515, 1),
}

# Common to every Protocol 2.0 model here (X, MX(2.0), P):
# Operating mode values (address 11).
POSITION_CONTROL_MODE = 3
# Position counter of the X series and MX: 4096 ticks per revolution, 0..4095 in position control mode.
TICKS_PER_REV = 4096
RAD_PER_TICK = 2.0 * math.pi / TICKS_PER_REV
# Return delay time unit (s) and largest register value (0..254, factory default 250 = 500 us).
RETURN_DELAY_UNIT_S = 2e-6
MAX_RETURN_DELAY = 254
# Present input voltage unit (V).
VOLTS_PER_UNIT = 0.1
#: Alias of the register a model reports its load in: "present_current" (X, P) or "present_load" (MX).
EFFORT = "effort"

# Baud rate register (address 8) value -> bit/s. 9600 (value 0) is left out on purpose: the
# driver supports 57600 .. 4 Mbps, which every model here can do.
BAUD_RATES: Dict[int, int] = {1: 57600, 2: 115200, 3: 1000000, 4: 2000000, 5: 3000000, 6: 4000000}
BAUD_CODES: Dict[int, int] = {baud: code for code, baud in BAUD_RATES.items()}

# Hardware error status (address 70; 518 on the P series) bit -> word. The servo keeps them until
# rebooted; those set in the Shutdown register (address 63, default 52 = overheating, electrical
# shock, overload; 53 on the XL330s = input voltage too; 58 on the P series = motor hall sensor, motor
# encoder, electrical shock, overload)
# also switch torque off. Bit 1 is the P series' only (unused on the X series and MX).
HARDWARE_ERROR_BITS: Dict[int, str] = {
    0: "input voltage",
    1: "motor hall sensor",
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
    """A Dynamixel model: its register layout, the units of its registers and its factory defaults."""

    name: str
    model_number: int
    # N m per unit of the effort register: from the e-Manual's stall (or continuous) torque and current
    # (or, for a load in 0.1 % of the stall torque, that torque / 1000); a rough JointState effort.
    effort_unit_nm: float
    registers: Dict[str, Register] = field(default_factory=lambda: X_SERIES_REGISTERS)
    effort_register: str = "present_current"
    ticks_per_rev: int = TICKS_PER_REV
    position_range: Tuple[int, int] = (0, TICKS_PER_REV - 1)
    velocity_unit_rpm: float = 0.229  # rev/min per unit of the velocity registers
    acceleration_unit_rpm2: float = 214.577  # rev/min^2 per unit of Profile Acceleration
    max_profile_acceleration: int = 32767  # largest Profile Acceleration value (0 = no limit)
    # Factory defaults the emulator starts from (the e-Manual's "initial value").
    defaults: Dict[str, int] = field(default_factory=dict)

    def register(self, name: str) -> Register:
        """The register ``name`` (``EFFORT``: the model's effort register)."""
        return self.registers[self.effort_register if name == EFFORT else name]

    @property
    def rad_per_tick(self) -> float:
        return 2.0 * math.pi / self.ticks_per_rev

    @property
    def center_tick(self) -> int:
        """Middle of the position range: the default zero of a joint."""
        low, high = self.position_range
        return (low + high + 1) // 2

    @property
    def rad_s_per_velocity_unit(self) -> float:
        return self.velocity_unit_rpm * 2.0 * math.pi / 60.0

    @property
    def rad_s2_per_acceleration_unit(self) -> float:
        return self.acceleration_unit_rpm2 * 2.0 * math.pi / 3600.0

    @property
    def max_velocity(self) -> float:
        """Fastest profile velocity (rad/s): the factory velocity limit."""
        return self.defaults["velocity_limit"] * self.rad_s_per_velocity_unit

    @property
    def max_acceleration(self) -> float:
        """Largest profile acceleration (rad/s^2)."""
        return self.max_profile_acceleration * self.rad_s2_per_acceleration_unit


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

# X series: https://emanual.robotis.com/docs/en/dxl/x/<model>/ (e.g. .../x/xm430-w350/); current
# unit 1 mA (XL330, XC330) or 2.69 mA (XM430, XM540); effort unit = current unit * stall torque / current.
# The XL330s shut down for an input voltage error as well (Shutdown 53) and start with Position P Gain
# 400 (e-Manual, xl330-m288 and xl330-m077 control tables).
_XL330_DEFAULTS = {**_X_DEFAULTS, "shutdown": 53, "position_p_gain": 400}
MODELS: Dict[str, ModelSpec] = {
    "XL330-M288": ModelSpec(
        "XL330-M288", 1200, 0.001 * 0.52 / 1.47,
        defaults={**_XL330_DEFAULTS, "max_voltage_limit": 70, "min_voltage_limit": 35, "present_input_voltage": 50,
                  "current_limit": 1750, "velocity_limit": 445, "temperature_limit": 70},
    ),
    "XL330-M077": ModelSpec(
        "XL330-M077", 1190, 0.001 * 0.215 / 1.47,
        defaults={**_XL330_DEFAULTS, "max_voltage_limit": 70, "min_voltage_limit": 35, "present_input_voltage": 50,
                  "current_limit": 1750, "velocity_limit": 1620, "temperature_limit": 70},
    ),
    "XC330-M288": ModelSpec(
        "XC330-M288", 1240, 0.001 * 0.93 / 1.80,
        defaults={**_X_DEFAULTS, "max_voltage_limit": 70, "min_voltage_limit": 35, "present_input_voltage": 50,
                  "current_limit": 1750, "velocity_limit": 445, "temperature_limit": 70},
    ),
    "XM430-W350": ModelSpec(
        "XM430-W350", 1020, 0.00269 * 4.1 / 2.3,
        defaults={**_X_DEFAULTS, "max_voltage_limit": 160, "min_voltage_limit": 95, "present_input_voltage": 120,
                  "current_limit": 1193, "velocity_limit": 200},
    ),
    "XM540-W270": ModelSpec(
        "XM540-W270", 1120, 0.00269 * 10.6 / 4.4,
        defaults={**_X_DEFAULTS, "max_voltage_limit": 160, "min_voltage_limit": 95, "present_input_voltage": 120,
                  "current_limit": 2047, "velocity_limit": 128},
    ),
    # https://emanual.robotis.com/docs/en/dxl/mx/mx-28-2/ : model number 30, 4096 pulse/rev, velocity
    # 0.229 rev/min, Present Load 0.1 % (of the stall torque, 2.5 N m at 12 V), velocity limit 230
    # (later e-Manual revisions: 380), position P gain 850.
    "MX-28": ModelSpec(
        "MX-28", 30, 0.001 * 2.5, registers=MX2_REGISTERS, effort_register="present_load",
        defaults={**_X_DEFAULTS, "max_voltage_limit": 160, "min_voltage_limit": 95, "present_input_voltage": 120,
                  "acceleration_limit": 32767, "velocity_limit": 230, "position_p_gain": 850},
    ),
    # https://emanual.robotis.com/docs/en/dxl/p/ph42-020-s300-r/ : model number 2000, 607,500 pulse/rev
    # (-303,750..303,750), velocity 0.01 rev/min (limit 2,920), acceleration 1 rev/min^2 (limit 10,765),
    # current 1 mA (limit 4,500), continuous torque 5.1 N m at 1.5 A, voltage limits 15..35 V (24 V input).
    "PH42-020-S300-R": ModelSpec(
        "PH42-020-S300-R", 2000, 0.001 * 5.1 / 1.5, registers=P_SERIES_REGISTERS, ticks_per_rev=607500,
        position_range=(-303750, 303750), velocity_unit_rpm=0.01, acceleration_unit_rpm2=1.0,
        max_profile_acceleration=10765,
        defaults={**{k: v for k, v in _X_DEFAULTS.items() if k != "position_p_gain"}, "moving_threshold": 20, "max_voltage_limit": 350,
                  "min_voltage_limit": 150, "present_input_voltage": 240, "pwm_limit": 2009, "current_limit": 4500,
                  "acceleration_limit": 10765, "velocity_limit": 2920, "max_position_limit": 303454,
                  "min_position_limit": -303454, "shutdown": 58},
    ),
}


MODEL_BY_NUMBER: Dict[int, ModelSpec] = {m.model_number: m for m in MODELS.values()}


def model(name: str) -> ModelSpec:
    """The model spec for a name, or a ValueError listing the known models."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown Dynamixel model {name!r}; known: {', '.join(sorted(MODELS))}") from None
