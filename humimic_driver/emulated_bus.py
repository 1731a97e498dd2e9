"""humimic-servo-emulator: the robot's Dynamixel bus emulated on a pseudo-terminal.

Opens a pty in raw mode, links ``--link`` (default /tmp/humimic_servo_bus) to its slave end and
answers Protocol 2.0 packets for every servo of the robot config, each starting at its neutral
position, until SIGINT/SIGTERM. Any Dynamixel client (dynamixel-sdk, the driver node) can open
the link as a serial port at any baud rate.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
import tty
from pathlib import Path
from typing import Iterator, List, Optional

from humimic_core import paths
from humimic_core.robot_config import ConfigError, load_robot_config
from humimic_driver.servo_emulator import ServoEmulator, servos_from_config

DEFAULT_LINK = "/tmp/humimic_servo_bus"
READY_PREFIX = "humimic-servo-emulator: serving"


class _Stop(Exception):
    """Raised by the signal handlers to leave the serving loop."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


def _make_link(link: Path, target: str) -> None:
    """Point ``link`` at ``target``, replacing a stale symlink but never a real file."""
    if link.exists() or link.is_symlink():
        if not link.is_symlink():
            raise FileExistsError(f"--link {link} exists and is not a symlink; not replacing it")
        link.unlink()
    link.symlink_to(target)


def serve(emulator: ServoEmulator, master_fd: int) -> None:
    """Answer packets arriving on ``master_fd`` until a _Stop is raised."""
    poller = select.poll()
    poller.register(master_fd, select.POLLIN)
    while True:
        poller.poll()
        try:
            data = os.read(master_fd, 4096)
        except BlockingIOError:
            continue
        reply = emulator.receive(data, time.monotonic())
        while reply:
            try:
                reply = reply[os.write(master_fd, reply):]
            except BlockingIOError:  # nobody reads the bus: drop the rest, like a real bus
                break


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="humimic-servo-emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--link", default=DEFAULT_LINK, help=f"symlink to the pty slave (default {DEFAULT_LINK})")
    parser.add_argument("--robot-config", default=None,
                        help="robot config YAML (default: the package's config/robot_face.yaml)")
    args = parser.parse_args(argv)
    try:
        config = load_robot_config(args.robot_config or paths.config_file("robot_face.yaml"))
    except ConfigError as exc:
        print(f"humimic-servo-emulator: {exc}", file=sys.stderr)
        return 2
    emulator = ServoEmulator(servos_from_config(config.servos))
    link = Path(args.link)
    master_fd, slave_fd = os.openpty()  # the slave stays open here so the bus survives clients closing
    tty.setraw(slave_fd)
    os.set_blocking(master_fd, False)
    slave_name = os.ttyname(slave_fd)
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        _make_link(link, slave_name)
        print(f"{READY_PREFIX} {len(emulator.servos)} servos on {link}", flush=True)
        serve(emulator, master_fd)
    except _Stop:
        pass
    except OSError as exc:
        print(f"humimic-servo-emulator: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with contextlib.suppress(OSError):
            if os.readlink(link) == slave_name:
                link.unlink()
        os.close(master_fd)
        os.close(slave_fd)
    return 0


@contextlib.contextmanager
def emulator_process(link: str | Path, robot_config: Optional[str | Path] = None,
                     timeout: float = 10.0) -> Iterator[subprocess.Popen]:
    """Run the emulator as a child process serving on ``link``; stop it (SIGINT) on exit.

    Returns once it is ready; RuntimeError with its output if it does not get ready in ``timeout`` s.
    """
    cmd = [sys.executable, "-m", "humimic_driver.emulated_bus", "--link", str(link)]
    if robot_config is not None:
        cmd += ["--robot-config", str(robot_config)]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        _wait_ready(proc, timeout)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _wait_ready(proc: subprocess.Popen, timeout: float) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    output = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(READY_PREFIX):
            return
        output.append(line)
    raise RuntimeError(f"servo emulator did not get ready (exit code {proc.poll()}): {''.join(output).strip()}")


if __name__ == "__main__":
    sys.exit(main())
