"""The driver's Dynamixel control-table data against ROBOTIS' own, shipped in the dynamixel-sdk wheel
(dynamixel_easy_sdk/control_table/<model>.model: address, size and name of every item, by model number)."""
from __future__ import annotations

import re
from importlib.resources import files

import pytest

from humimic_core.control_tables import MODELS

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
