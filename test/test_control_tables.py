"""The driver's Dynamixel control-table data against ROBOTIS' own, shipped in the dynamixel-sdk wheel
(dynamixel_easy_sdk/control_table/<model>.model: address, size and name of every item, by model number)."""
from __future__ import annotations

import re
from importlib.resources import files

import pytest

from humimic_core.control_tables import EFFORT, MODELS, hardware_error_words

SDK_TABLES = files("dynamixel_easy_sdk") / "control_table"


def sdk_model_file(model_number: int) -> str:
    lines = (SDK_TABLES / "dynamixel.model").read_text().splitlines()[1:]
    return dict(line.split("\t")[:2] for line in lines if line.strip())[str(model_number)]


def sdk_registers(model_file: str) -> dict:
    """snake_case item name -> (address, size) of the SDK's [control table] section."""
    text = (SDK_TABLES / model_file).read_text().split("[control table]")[1]
    out = {}
    for line in text.strip().splitlines()[1:]:
        if line.startswith("["):
            break
        address, size, name = line.split("\t")[:3]
        key = re.sub(r"[^a-z0-9]+", "_", re.sub(r"\(.*?\)", "", name.lower())).strip("_")
        out[key] = (int(address), int(size))
    return out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_register_addresses_and_sizes_are_robotis_own(name):
    spec = MODELS[name]
    sdk = sdk_registers(sdk_model_file(spec.model_number))
    ours = {n: (r.address, r.size) for n, r in spec.registers.items()}
    compared = {n: (ours[n], sdk[n]) for n in ours if n in sdk}
    assert len(compared) >= 0.9 * len(ours), f"{name}: names not found in the SDK table: {set(ours) - set(sdk)}"
    assert {n: o for n, (o, s) in compared.items() if o != s} == {}, sdk_model_file(spec.model_number)


def sdk_sections(model_file: str) -> dict:
    """name -> value of the SDK table's [type info] and [unit info] sections (first value column)."""
    out = {}
    for section in (SDK_TABLES / model_file).read_text().split("[")[1:]:
        title, _, body = section.partition("]")
        if title in ("type info", "unit info"):
            for line in body.strip().splitlines()[1:]:
                name, value = line.split("\t")[:2]
                out[name] = float(value)
    return out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_position_and_velocity_units_are_robotis_own(name):
    """Ticks per revolution and the velocity unit agree with the SDK's (to its rounding: it puts pi rad
    at tick 4095 of a 4096-tick X series, 0.05 % off)."""
    spec = MODELS[name]
    sdk = sdk_sections(sdk_model_file(spec.model_number))
    ticks_per_rad = (sdk["value_of_max_radian_position"] - sdk["value_of_zero_radian_position"]) / sdk["max_radian"]
    assert 1.0 / spec.rad_per_tick == pytest.approx(ticks_per_rad, rel=1e-3)
    assert spec.rad_s_per_velocity_unit == pytest.approx(sdk["Present Velocity"], rel=1e-3)
    assert spec.position_range[0] <= sdk["value_of_min_radian_position"] < sdk["value_of_max_radian_position"] \
        <= spec.position_range[1]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_has_what_the_driver_and_emulator_use(name):
    """The EEPROM area ends where Torque Enable starts; the registers the driver reads and writes exist."""
    spec = MODELS[name]
    ram = spec.register("torque_enable").address
    assert [n for n, r in spec.registers.items() if r.eeprom != (r.address < ram)] == []
    for register in ("goal_position", "present_position", "present_velocity", EFFORT, "profile_velocity",
                     "profile_acceleration", "present_input_voltage", "present_temperature", "hardware_error_status",
                     "operating_mode", "return_delay_time", "min_position_limit", "max_position_limit", "shutdown"):
        spec.register(register)
    assert {"velocity_limit", "present_input_voltage", "present_temperature", "max_voltage_limit",
            "min_voltage_limit"} <= set(spec.defaults)
    assert spec.defaults["max_position_limit"] <= spec.position_range[1]


def test_every_bit_of_a_models_default_shutdown_has_a_name():
    """The bits a model shuts down for by default are named in the diagnostics: the P series' 58 includes
    bit 1, its motor hall sensor error (before: "unknown bits 0x02")."""
    for spec in MODELS.values():
        words = hardware_error_words(spec.defaults["shutdown"])
        assert not [w for w in words if w.startswith("unknown")], spec.name
    assert "motor hall sensor" in hardware_error_words(MODELS["PH42-020-S300-R"].defaults["shutdown"])
