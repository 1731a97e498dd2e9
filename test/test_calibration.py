"""Calibration: YAML write-back that changes nothing else, the session bookkeeping, and the
interactive tool driven through stdin against the emulated servo bus."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from humimic_core.paths import config_file
from humimic_core.robot_config import ConfigError, load_robot_config
from humimic_core.control_tables import RAD_PER_TICK
from humimic_driver.sim.emulated_bus import emulator_process
from humimic_retarget.offline.calibration import Calibration
from humimic_retarget.offline.calibration_yaml import patch_servo_fields, write_servo_fields

ROOT = Path(__file__).resolve().parent.parent
TEXT = config_file("robot_face.yaml").read_text()


@pytest.fixture()
def robot_yaml(tmp_path):
    path = tmp_path / "robot.yaml"
    path.write_text(TEXT)
    return path


def changed_lines(before: str, after: str):
    a, b = before.splitlines(), after.splitlines()
    assert len(a) == len(b), "line structure kept"
    return [(x, y) for x, y in zip(a, b) if x != y]


def test_write_back_changes_only_those_values(robot_yaml):
    write_servo_fields(robot_yaml, {"jaw": {"min": -0.05061, "max": 0.6, "neutral": 0.01}, "neck_yaw": {"max": 0.75}})
    after = robot_yaml.read_text()
    diff = changed_lines(TEXT, after)
    assert len(diff) == 2
    jaw_old, jaw_new = next(d for d in diff if "joint: jaw" in d[0])
    assert jaw_new == jaw_old.replace("min: 0.0,", "min: -0.0506,").replace("max: 0.45,", "max: 0.6000,") \
        .replace("neutral: 0.0,", "neutral: 0.0100,")
    assert jaw_new.startswith("  - {joint: jaw,") and jaw_new.endswith("zero_tick: 2048,"), "flow style kept"
    config = load_robot_config(robot_yaml)
    assert (config.servo("jaw").min, config.servo("jaw").max, config.servo("jaw").neutral) == (-0.0506, 0.6, 0.01)
    assert config.servo("neck_yaw").max == 0.75 and config.servo("neck_yaw").min == -0.70
    assert yaml.safe_load(after)["mapping"] == yaml.safe_load(TEXT)["mapping"]


def test_write_back_refuses_an_invalid_config_and_leaves_the_file(robot_yaml):
    with pytest.raises(ConfigError, match=r"servos\[13\].neutral"):
        write_servo_fields(robot_yaml, {"jaw": {"neutral": 0.9}})
    with pytest.raises(ConfigError, match="no servo with joint 'nose'"):
        write_servo_fields(robot_yaml, {"nose": {"min": 0.1}})
    with pytest.raises(ConfigError, match="cannot write colour"):
        write_servo_fields(robot_yaml, {"jaw": {"colour": 0.1}})
    assert robot_yaml.read_text() == TEXT


def test_write_back_works_on_block_style_too():
    text = "# robot\nservos:\n  - joint: jaw   # the jaw\n    id: 14\n    min: 0.0\n    max: 0.45\n    neutral: 0.0\n"
    patched = patch_servo_fields(text, {"jaw": {"max": 0.5}})
    assert patched == text.replace("max: 0.45", "max: 0.5000")


def test_jog_range_and_recorded_values():
    config = load_robot_config(config_file("robot_face.yaml"))
    calibration = Calibration(config, reach=0.5)
    jaw = calibration.jog_servo("jaw")
    assert (jaw.min, jaw.max) == (pytest.approx(-0.5), pytest.approx(0.95))
    wide = Calibration(config, reach=10.0).jog_servo("neck_yaw")
    low, high = wide.tick_limits()
    assert (low, high) == config.servo("neck_yaw").spec.position_range, "never beyond the servo's own range"
    calibration.record("jaw", "max", 0.612345)
    assert calibration.values("jaw") == {"min": 0.0, "neutral": 0.0, "max": 0.6123}
    assert calibration.problem("jaw") is None
    calibration.record("jaw", "neutral", 0.7)
    assert "neutral 0.7 is outside" in calibration.problem("jaw")
    with pytest.raises(ValueError, match="not 'middle'"):
        calibration.record("jaw", "middle", 0.1)


def run_tool(link: Path, robot_yaml: Path, script: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "humimic_retarget.offline.calibrate_tool", "--robot-config", str(robot_yaml),
                           "--port", str(link), "--speed", "3.0"],
                          input=script, capture_output=True, text=True, timeout=60, env=env)


def tick_angle(angle: float) -> float:
    return round(angle / RAD_PER_TICK) * RAD_PER_TICK


@pytest.mark.timeout(120)
def test_tool_jogs_records_and_saves_on_the_emulated_bus(robot_yaml, tmp_path):
    link = tmp_path / "bus"
    with emulator_process(link, robot_yaml):
        done = run_tool(link, robot_yaml, "select jaw\ngoto -0.05\nmin\ngoto 0.6\nmax\nstep 0.01\n- 4\n--\nneutral\n"
                                          "select 12\n+\nwhere\nsave\nquit\n")
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert "jaw at -0.0506 rad  (outside the configured [0.0, 0.45])" in out
        assert f"jaw max = {tick_angle(0.6):.4f} rad (recorded)" in out
        neutral = tick_angle(tick_angle(tick_angle(0.6) - 0.04) - 0.1)
        assert f"jaw neutral = {neutral:.4f} rad (recorded)" in out
        assert f"eyes_yaw at {tick_angle(0.01):.4f} rad" in out, "servo ID 12 jogged one step of 0.01 rad"
        assert "saved jaw into" in out and "parked eyes_yaw, jaw at neutral" in out
        jaw = load_robot_config(robot_yaml).servo("jaw")
        assert (jaw.min, jaw.max) == (round(tick_angle(-0.05), 4), round(tick_angle(0.6), 4))
        assert jaw.neutral == pytest.approx(neutral, abs=1e-4)
        assert len(changed_lines(TEXT, robot_yaml.read_text())) == 1
        # values that cannot be saved are refused, quit asks for save or quit!
        refused = run_tool(link, robot_yaml, "select jaw\ngoto -0.1\nmax\nsave\nquit\nfoo\nquit!\n")
        assert refused.returncode == 0, refused.stderr
        assert "? not saved: jaw: min -0.0506 must be below max" in refused.stdout
        assert "unsaved values for jaw: save, or quit! to discard them" in refused.stdout
        assert "? unknown command 'foo'" in refused.stdout
        assert load_robot_config(robot_yaml).servo("jaw").max == round(tick_angle(0.6), 4)


def test_tool_reports_a_missing_bus(robot_yaml, tmp_path):
    done = run_tool(tmp_path / "no_such_port", robot_yaml, "quit\n")
    assert done.returncode == 2 and "humimic-calibrate:" in done.stderr and "no_such_port" in done.stderr
