"""Ctrl-C in a terminal reaches every process of its process group at once, as under `ros2
launch`: the emulated bus (with --linger) keeps serving until the driver has moved to neutral,
turned torque off and closed the port (issue 12 item 2), without a bus error line, also on a
machine whose processes hold many open files; a real fault at the stop is still logged."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple

import pytest

from humimic_bringup.graph import imitation_graph
from humimic_bringup.runner import command
from humimic_core.paths import config_file
from humimic_core.robot_config import load_robot_config
from humimic_driver.bus import ServoBus, ServoError
from humimic_driver.sim.emulated_bus import emulator_process, send_command

pytestmark = pytest.mark.timeout(120)

#: open files held while the bus lingers: a desktop's browsers and IDE hold tens of thousands, and
#: the emulator once scanned every process's files for clients, stalling the bus (7-20 us a file here)
MANY_FILES = 24000


#: a process that holds `count` open files (argv[1]) until its stdin closes
_HOLDER = """
import os, resource, sys
count = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and hard < count + 64:
    print("limit", hard, flush=True)
    sys.exit(0)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, count + 64), hard))
base = os.open(os.devnull, os.O_RDONLY)
fds = [os.dup(base) for _ in range(count)]
print("holding", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def open_files(count: int, per_process: int = 4000) -> Iterator[None]:
    """Other processes hold `count` open files meanwhile, `per_process` each (within a common limit
    of 4096); skipped where the open-file limit forbids."""
    holders = [subprocess.Popen([sys.executable, "-c", _HOLDER, str(min(per_process, count - start))],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for start in range(0, count, per_process)]
    try:
        for holder in holders:
            line = holder.stdout.readline()
            if not line.startswith("holding"):
                pytest.skip(f"cannot hold {per_process} open files in a process: {line.strip()}")
        yield
    finally:
        for holder in holders:
            holder.stdin.close()
            holder.wait(10)


def stop_together(link: Path, before_stop: Optional[Callable[[], None]] = None) -> Tuple[int, str, int, str]:
    """Start the emulator and the driver as the graph does, in one process group; Ctrl-C both once
    the driver runs (after `before_stop`). The driver's exit code and output, the emulator's."""
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
        if before_stop is not None:
            before_stop()
        os.killpg(emulator.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        rest, _ = driver.communicate(timeout=60)
        emulator_log, _ = emulator.communicate(timeout=30)
    finally:
        for proc in (driver, emulator):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    return driver.returncode, "".join(log) + rest, emulator.returncode, emulator_log


def test_ctrl_c_to_driver_and_bus_together_leaves_the_servos_safe(tmp_path):
    """No error line: torque-off and every other shutdown write answered (many files open meanwhile)."""
    with open_files(MANY_FILES):
        code, text, emulator_code, emulator_log = stop_together(tmp_path / "servo_bus")
    assert code == 0, text
    assert "lost" not in text and "shutdown:" not in text and "ERROR" not in text, text
    assert emulator_code == 0 and "stopping once the port is closed" in emulator_log, emulator_log


def test_a_lingering_bus_answers_on_time_and_stops_when_the_port_closes(tmp_path):
    """After SIGINT (--linger) every transaction of a second of pings is answered within the bus's
    deadlines, with many files open on the machine (the /proc scan stalled it 0.2 s here), and
    the bus stops once the client closes the port."""
    link = tmp_path / "servo_bus"
    config = load_robot_config(config_file("robot_face.yaml"))
    with open_files(MANY_FILES), emulator_process(link, args=["--linger", "10"]) as emulator:
        # patient deadlines, as test_bus.py: the emulated servos share the loaded test machine
        bus = ServoBus(config.servos, dataclasses.replace(config.bus, port=str(link)), timeout_margin_s=0.03)
        assert bus.open() is None
        emulator.send_signal(signal.SIGINT)
        failures, count, end = [], 0, time.monotonic() + 1.0
        while time.monotonic() < end:
            servo = config.servos[count % len(config.servos)]
            try:
                bus.ping(servo)
            except ServoError as exc:
                failures.append(str(exc))
            count += 1
        assert emulator.poll() is None, "the bus stopped while the port was held"
        bus.close()
        assert emulator.wait(5.0) == 0
        log = emulator.stdout.read()
    assert failures == [], f"{len(failures)} of {count} pings failed: {failures[:3]}"
    assert "stopping once the port is closed" in log, log


def test_a_fault_at_the_stop_is_still_logged(tmp_path):
    """Every packet corrupt from the Ctrl-C on: the driver's shutdown names the corrupt replies."""
    link = tmp_path / "servo_bus"
    code, text, _, _ = stop_together(link, lambda: send_command(link, "crc 1.0"))
    assert code == 0, text
    assert any("shutdown:" in line and "corrupt or incomplete reply" in line for line in text.splitlines()), text
