"""Ctrl-C in a terminal reaches every process of its process group at once, as under `ros2
launch`: the emulated bus (with --linger) keeps serving until the driver has moved to neutral,
turned torque off and closed the port (issue 12 item 2), without a bus error line, also on a
machine whose processes hold many open files; a real fault at the stop is still logged."""
from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple

import pytest

from humimic_bringup.graph import imitation_graph
from humimic_bringup.runner import command
from humimic_driver.sim.emulated_bus import send_command

pytestmark = pytest.mark.timeout(120)

#: open files held while the bus lingers: a desktop's browser and IDE hold thousands, and the
#: emulator once scanned every process's files for clients, stalling the bus (~20 us a file)
MANY_FILES = 6000


@contextlib.contextmanager
def open_files(count: int) -> Iterator[None]:
    """Hold `count` more open files in this process (raising its soft limit where it must)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, count + 1024) if hard != resource.RLIM_INFINITY else count + 1024
    if count and wanted < count + 256:
        pytest.skip(f"the open-file limit ({hard}) is below {count + 256}")
    if count and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    base = os.open(os.devnull, os.O_RDONLY)
    fds = [os.dup(base) for _ in range(count)]
    try:
        yield
    finally:
        for fd in (base, *fds):
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


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


@pytest.mark.parametrize("files", [0, MANY_FILES])
def test_ctrl_c_to_driver_and_bus_together_leaves_the_servos_safe(tmp_path, files):
    with open_files(files):
        code, text, emulator_code, emulator_log = stop_together(tmp_path / "servo_bus")
    assert code == 0, text
    assert "lost" not in text and "shutdown:" not in text and "ERROR" not in text, text
    assert emulator_code == 0 and "stopping once the port is closed" in emulator_log, emulator_log


def test_a_fault_at_the_stop_is_still_logged(tmp_path):
    """Every packet corrupt from the Ctrl-C on: the driver's shutdown names the corrupt replies."""
    link = tmp_path / "servo_bus"
    code, text, _, _ = stop_together(link, lambda: send_command(link, "crc 1.0"))
    assert code == 0, text
    assert any("shutdown:" in line and "corrupt or incomplete reply" in line for line in text.splitlines()), text
