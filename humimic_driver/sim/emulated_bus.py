"""humimic-servo-emulator: the robot's Dynamixel bus emulated on a pseudo-terminal.

Opens a pty in raw mode, links ``--link`` (default: bus.port of the robot config) to its slave end
and answers Protocol 2.0 packets for every servo of the robot config, each starting at its
neutral position, until SIGINT/SIGTERM. Any Dynamixel client (dynamixel-sdk, the driver node) can
open the link as a serial port. Replies are sent when their last byte would arrive on a real bus
at ``--baud`` (default: bus.baud_rate of the robot config); a client whose port is set to another
baud rate gets no answer, as on a real bus.

With ``--linger SECONDS`` a SIGINT does not stop the bus while a client still holds the port
open (at most SECONDS): a Ctrl-C that reaches the driver and the emulator together, as under
``ros2 launch``, leaves the driver its move to neutral and torque-off. The emulator then lets go of
its own end of the port and stops when the pty hangs up (the last client closed it): serving goes
on undisturbed meanwhile, where scanning /proc for clients stalled the bus for the scan's time (tens
of ms) and made the driver's shutdown transactions time out or read stale replies. SIGTERM stops at once.

Faults (see humimic_driver/sim/fault_injection.py for the commands): ``--fault CMD`` at start,
``--at SECONDS CMD`` later, or ``--send CMD`` to a running emulator, which listens on a UNIX
socket named after its link (``control_address()``), mode 0600 in a directory only its owner may
enter (0700), so other local users cannot inject faults.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import heapq
import os
import select
import signal
import socket
import subprocess
import stat
import sys
import tempfile
import termios
import time
import tty
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from humimic_core import paths
from humimic_core.robot_config import ConfigError, load_robot_config
from humimic_core.processes import interrupt
from humimic_core.control_tables import BAUD_CODES
from humimic_driver.sim.fault_injection import apply_fault, parse_schedule
from humimic_driver.sim.servo_emulator import ServoEmulator, servos_from_config

READY_PREFIX = "humimic-servo-emulator: serving"
#: Replies due within this many seconds of each other go out in one write.
_COALESCE_S = 50e-6
#: termios speed constant -> baud rate, for the rates the bus supports.
_BAUD_BY_SPEED = {getattr(termios, f"B{b}"): b for b in BAUD_CODES if hasattr(termios, f"B{b}")}


class _Stop(Exception):
    """Raised by the signal handlers to leave the serving loop."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


def control_dir() -> Path:
    """The owner-only directory of the control sockets (``<tmp>/humimic-<uid>``, mode 0700), created
    if needed; OSError if it exists but belongs to someone else or is not a directory."""
    path = Path(tempfile.gettempdir()) / f"humimic-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise OSError(f"{path} is not a directory of this user; not putting the control socket there")
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)
    return path


def control_address(link: str | Path) -> Path:
    """The UNIX socket of the emulator serving ``link``, in control_dir()."""
    digest = hashlib.sha1(str(Path(link).absolute()).encode()).hexdigest()[:16]
    return control_dir() / f"emulator-{digest}.sock"  # short: a socket path has at most 107 bytes


def bind_control(link: str | Path) -> socket.socket:
    """A listening control socket for ``link``, created with mode 0600 (a stale one from a killed
    emulator is replaced); OSError if another emulator serves ``link``."""
    path = control_address(link)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        if probe.connect_ex(str(path)) == 0:
            raise OSError(f"another servo emulator serves {link} (control socket {path})")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)  # created 0600: no moment with wider permissions
    try:
        sock.bind(str(path))
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(umask)
    sock.listen(4)
    return sock


def send_command(link: str | Path, command: str, timeout: float = 5.0) -> str:
    """Send one fault command to the emulator serving ``link``; its reply. ValueError for a refused
    command, ConnectionError when no emulator serves ``link``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(control_address(link)))
        except OSError as exc:
            raise ConnectionError(f"no servo emulator serving {link}: {exc}") from None
        sock.sendall(command.encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    text = reply.decode().strip()
    if text.startswith("error:"):
        raise ValueError(f"servo emulator refused {command!r}: {text[6:].strip()}")
    return text


def _make_link(link: Path, target: str) -> None:
    """Point ``link`` at ``target``, replacing a stale symlink but never a real file."""
    if link.exists() or link.is_symlink():
        if not link.is_symlink():
            raise FileExistsError(f"--link {link} exists and is not a symlink; not replacing it")
        link.unlink()
    link.symlink_to(target)


class PtyPort:
    """The emulated serial port: a pty whose slave end is linked at ``link``; it can be unplugged
    (fds closed, link removed: clients get I/O errors) and plugged back (a new pty, same link)."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master: Optional[int] = None
        self._slave: Optional[int] = None
        self._slave_name = ""
        self.replug_at: Optional[float] = None

    def plug(self) -> None:
        self.replug_at = None
        if self.master is not None:
            return
        master, slave = os.openpty()  # the slave stays open here so the bus survives clients closing
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._slave_name = os.ttyname(slave)
        try:
            _make_link(self.link, self._slave_name)
        except OSError:
            os.close(master)
            os.close(slave)
            raise
        self.master, self._slave = master, slave

    def unplug(self, seconds: Optional[float]) -> None:
        self.close()
        self.replug_at = None if seconds is None else time.monotonic() + seconds

    def release(self) -> None:
        """Close this process's own slave end: the master hangs up (reads fail with EIO) once the
        last client has closed the port, at once if none holds it."""
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    def client_baud(self) -> Optional[int]:
        """The baud rate the client set on the port (None if not one of the bus rates); the master
        reads the slave's settings (Linux ptys share them)."""
        if self.master is None:
            return None
        return _BAUD_BY_SPEED.get(termios.tcgetattr(self.master)[4])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self._slave_name and os.readlink(self.link) == self._slave_name:
                self.link.unlink()
        for fd in (self.master, self._slave):
            if fd is not None:
                os.close(fd)
        self.master = self._slave = None


class Server:
    """The serving loop: bus bytes in, timed replies out, fault commands on the control socket."""

    def __init__(self, emulator: ServoEmulator, port: PtyPort, control: socket.socket,
                 schedule: Sequence[Tuple[float, str]]) -> None:
        self.emulator = emulator
        self.port = port
        self.control = control
        self.start = time.monotonic()
        self.schedule = list(schedule)
        self._outgoing: List[Tuple[float, int, bytes]] = []  # heap of (due, sequence, bytes)
        self._sequence = 0
        self._warned_baud: Optional[int] = None
        self.linger_until: Optional[float] = None  # set on SIGINT with --linger: serve while clients remain
        # a signal wakes the select below (its handler runs in Python only after the wait otherwise)
        self._wake, wake_write = os.pipe()
        for fd in (self._wake, wake_write):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(wake_write)

    def command(self, text: str) -> str:
        try:
            return apply_fault(text, self.emulator, time.monotonic(), self.port)
        except (ValueError, OSError) as exc:
            return f"error: {exc}"

    def linger(self, seconds: float) -> None:
        """SIGINT with --linger: keep serving while a client holds the port, at most `seconds`."""
        if self.linger_until is None:
            self.linger_until = time.monotonic() + seconds
            self.port.release()
            print(f"humimic-servo-emulator: stopping once the port is closed (at most {seconds:g} s)",
                  file=sys.stderr, flush=True)

    def run(self) -> None:
        while True:
            now = time.monotonic()
            if self.linger_until is not None and (now >= self.linger_until or self.port.master is None):
                return  # lingered long enough, or unplugged: no client can be served
            while self.schedule and self.start + self.schedule[0][0] <= now:
                _, text = self.schedule.pop(0)
                print(f"humimic-servo-emulator: {text}: {self.command(text)}", file=sys.stderr, flush=True)
            if self.port.replug_at is not None and now >= self.port.replug_at:
                self.port.plug()
            self._send_due(now)
            wake = [t for t in (self._outgoing[0][0] if self._outgoing else None, self.port.replug_at,
                                self.start + self.schedule[0][0] if self.schedule else None,
                                self.linger_until) if t is not None]
            timeout = max(0.0, min(wake) - time.monotonic()) if wake else None
            fds = [self.control.fileno(), self._wake] + ([self.port.master] if self.port.master is not None else [])
            ready, _, _ = select.select(fds, [], [], timeout)
            if self._wake in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake, 64)
            if self.port.master is not None and self.port.master in ready and not self._receive():
                return  # lingering, and the last client closed the port
            if self.control.fileno() in ready:
                self._serve_control()

    def _receive(self) -> bool:
        """Read and answer the bus bytes that came; False when the port hung up (released, and its
        last client closed it)."""
        try:
            data = os.read(self.port.master, 4096)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError as exc:
            if exc.errno == errno.EIO and self.linger_until is not None:
                return False
            raise
        now = time.monotonic()
        client = self.port.client_baud()
        if client != self.emulator.baud:
            if client != self._warned_baud:
                print(f"humimic-servo-emulator: client port at {client} baud, servos at {self.emulator.baud}: "
                      f"they hear noise", file=sys.stderr, flush=True)
                self._warned_baud = client
            return True
        for due, reply in self.emulator.receive(data, now):
            heapq.heappush(self._outgoing, (due, self._sequence, reply))
            self._sequence += 1
        return True

    def _send_due(self, now: float) -> None:
        chunks = []
        while self._outgoing and self._outgoing[0][0] <= now + _COALESCE_S:
            chunks.append(heapq.heappop(self._outgoing)[2])
        if chunks and self.port.master is not None:
            with contextlib.suppress(BlockingIOError):  # nobody reads the bus: dropped, like a real bus
                os.write(self.port.master, b"".join(chunks))

    def _serve_control(self) -> None:
        conn, _ = self.control.accept()
        with conn:
            conn.settimeout(1.0)
            data = b""
            with contextlib.suppress(OSError):
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(self.command(data.decode(errors="replace").strip()).encode() + b"\n")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="humimic-servo-emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--robot-config", default=None,
                        help="robot config YAML (default: the package's config/robot_face.yaml)")
    parser.add_argument("--link", default=None,
                        help="symlink to the pty slave (default: bus.port of the robot config)")
    parser.add_argument("--baud", type=int, default=None,
                        help="bus baud rate (default: bus.baud_rate of the robot config)")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the fault rates")
    parser.add_argument("--fault", action="append", default=[], metavar="CMD", help="fault command applied at start")
    parser.add_argument("--at", action="append", default=[], nargs=2, metavar=("SECONDS", "CMD"),
                        help="fault command applied SECONDS after start")
    parser.add_argument("--linger", type=float, default=0.0, metavar="SECONDS",
                        help="on SIGINT, keep serving while a client holds the port open, at most SECONDS "
                             "(as under ros2 launch, where Ctrl-C reaches the driver and the bus together)")
    parser.add_argument("--send", default=None, metavar="CMD",
                        help="send CMD to the emulator already serving --link, print its reply, exit")
    args = parser.parse_args(argv)
    try:
        config = load_robot_config(args.robot_config or paths.config_file("robot_face.yaml"))
        baud = args.baud or config.bus.baud_rate
        if baud not in BAUD_CODES:
            raise ConfigError(f"--baud {baud}: not a Dynamixel baud rate ({', '.join(map(str, sorted(BAUD_CODES)))})")
        schedule = parse_schedule(args.at)
    except (ConfigError, ValueError) as exc:
        print(f"humimic-servo-emulator: {exc}", file=sys.stderr)
        return 2
    link = Path(args.link or config.bus.port)
    if args.send is not None:
        try:
            print(send_command(link, args.send))
        except (ValueError, ConnectionError) as exc:
            print(f"humimic-servo-emulator: {exc}", file=sys.stderr)
            return 1
        return 0
    emulator = ServoEmulator(servos_from_config(config.servos, baud), baud, seed=args.seed)
    port = PtyPort(link)
    control: Optional[socket.socket] = None
    server: Optional[Server] = None

    def on_sigint(signum: int, frame: object) -> None:
        if server is None or args.linger <= 0:
            raise _Stop
        server.linger(args.linger)

    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        control = bind_control(link)
        port.plug()
        server = Server(emulator, port, control, schedule)
        for text in args.fault:
            reply = server.command(text)
            if reply.startswith("error:"):
                raise ValueError(f"--fault {text!r}: {reply[6:].strip()}")
        print(f"{READY_PREFIX} {len(emulator.servos)} servos on {link} at {baud} baud", flush=True)
        server.run()
    except _Stop:
        pass
    except (OSError, ValueError) as exc:
        print(f"humimic-servo-emulator: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        port.close()
        if control is not None:
            with contextlib.suppress(OSError):
                Path(control.getsockname()).unlink()
            control.close()
    return 0


@contextlib.contextmanager
def emulator_process(link: str | Path, robot_config: Optional[str | Path] = None, args: Sequence[str] = (),
                     timeout: float = 10.0) -> Iterator[subprocess.Popen]:
    """Run the emulator as a child process serving on ``link`` (extra command line ``args``, e.g.
    ``["--fault", "crc 0.1"]``); stop it (SIGINT) on exit.

    Returns once it is ready; RuntimeError with its output if it does not get ready in ``timeout`` s.
    """
    cmd = [sys.executable, "-m", "humimic_driver.sim.emulated_bus", "--link", str(link), *args]
    if robot_config is not None:
        cmd += ["--robot-config", str(robot_config)]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        _wait_ready(proc, timeout)
        yield proc
    finally:
        interrupt(proc, 5.0)
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
