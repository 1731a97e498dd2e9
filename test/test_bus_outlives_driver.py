"""Ctrl-C in a terminal reaches every process of its process group at once, as under `ros2
launch`: the emulated bus (with --linger) keeps serving until the driver has moved to neutral,
turned torque off and closed the port (issue 12 item 2)."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from humimic_bringup.graph import imitation_graph
from humimic_bringup.runner import command

pytestmark = pytest.mark.timeout(120)


def test_ctrl_c_to_driver_and_bus_together_leaves_the_servos_safe(tmp_path):
    link = tmp_path / "servo_bus"
    specs = {s.name: s for s in imitation_graph({"serial_port": str(link)}, include_external=False)}
    emulator_cmd = command(specs["servo_emulator"])
    assert "--linger" in emulator_cmd  # as the launch file and humimic-run start it
    # both in one process group of their own, like a terminal's job
    emulator = subprocess.Popen(emulator_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=lambda: os.setpgid(0, 0))
    driver = None
    try:
        assert emulator.stdout.readline().startswith("humimic-servo-emulator: serving")
        driver = subprocess.Popen(command(specs["dynamixel_driver"]), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True,
                                  preexec_fn=lambda: os.setpgid(0, emulator.pid))
        deadline = time.monotonic() + 60
        log = []
        while time.monotonic() < deadline:
            line = driver.stdout.readline()
            log.append(line)
            if "servos ready" in line or not line:
                break
        time.sleep(1.0)
        os.killpg(emulator.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        rest, _ = driver.communicate(timeout=60)
        emulator_log, _ = emulator.communicate(timeout=30)
    finally:
        for proc in (driver, emulator):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    text = "".join(log) + rest
    assert driver.returncode == 0, text
    assert "lost" not in text and "shutdown:" not in text, text
    assert emulator.returncode == 0 and "stopping once the port is closed" in emulator_log, emulator_log
