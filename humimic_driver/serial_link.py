"""The serial port under the servo bus: send an instruction packet, collect the status packets.

Waits with select() until the expected replies are in or a deadline passes (no busy loop), and
parses with humimic_driver.protocol, so every reply is judged on its own: a missing or corrupt
reply names its servo and the others still count. Failures of the port itself (USB adapter
unplugged, I/O error) raise ``LinkError``, a ``BusError``.
"""
from __future__ import annotations

import os
import select
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Dict, List, Optional

import serial

from humimic_driver import protocol as p


#: What pyserial and the tty layer raise when the device fails or vanishes.
_PORT_ERRORS = (OSError, serial.SerialException, termios.error)


class BusError(RuntimeError):
    """A servo bus problem; the message names the port, servo ID and joint where known."""


class LinkError(BusError):
    """The serial port failed or is gone; the message names the port."""


@dataclass
class Replies:
    """Status packets of one transaction, by servo ID."""

    packets: Dict[int, p.Packet] = field(default_factory=dict)
    corrupt: List[int] = field(default_factory=list)  # expected IDs whose reply had a bad CRC
    stray: int = 0  # other packets: corrupt with an unknown ID, unexpected IDs, duplicates

    def missing(self, expected: Collection[int]) -> List[int]:
        """Expected IDs with neither a good nor a corrupt reply (timed out)."""
        return [i for i in expected if i not in self.packets and i not in self.corrupt]


def usb_latency_timer_ms(port: str, devices: Path = Path("/sys/bus/usb-serial/devices")) -> Optional[int]:
    """The USB serial adapter's latency timer (ms) from sysfs (``port`` may be a symlink such as
    /dev/serial/by-id/...), or None where the port has none (pty, native UART)."""
    try:
        return int((devices / Path(os.path.realpath(port)).name / "latency_timer").read_text().strip())
    except (OSError, ValueError):
        return None


class SerialLink:
    """One open serial port at one baud rate."""

    def __init__(self, port: str, baud: int) -> None:
        self.port = port
        self.baud = baud
        self._serial: Optional[serial.Serial] = None
        self._parser = p.PacketParser()

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def open(self) -> None:
        """Open the port (exclusively: two drivers on one bus would fight); LinkError naming it if that fails."""
        self.close()
        try:
            self._serial = serial.Serial(self.port, self.baud, timeout=0, write_timeout=1.0, exclusive=True)
        except (*_PORT_ERRORS, ValueError) as exc:
            raise LinkError(f"cannot open servo bus port {self.port} at {self.baud} baud: {exc}") from None
        self._parser.clear()

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except _PORT_ERRORS:
                pass  # the device is already gone
            self._serial = None

    def send(self, packet: bytes) -> None:
        """Drop unread input (late replies of an earlier transaction), then write ``packet``."""
        port = self._port()
        self._parser.clear()
        try:
            port.reset_input_buffer()
            written = port.write(packet)
            if written != len(packet):
                raise OSError(f"wrote {written} of {len(packet)} bytes")
        except _PORT_ERRORS as exc:
            self._failed(exc)

    def receive(self, expected: Collection[int], deadline: float) -> Replies:
        """Status packets until each expected ID has replied (or sent a corrupt reply) or ``deadline``
        (time.monotonic) passes."""
        port = self._port()
        fd = port.fileno()
        replies = Replies()
        waiting = set(expected)
        while waiting:
            # past the deadline this still takes what already arrived (this process may have been
            # descheduled while the servos answered in time)
            timeout = max(0.0, deadline - time.monotonic())
            try:
                ready, _, _ = select.select([fd], [], [], timeout)
                if not ready:
                    break
                data = os.read(fd, 4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                self._failed(exc)
            if not data:
                self._failed(OSError("device disconnected"))
            for packet in self._parser.feed(data):
                if isinstance(packet, p.CorruptPacket):
                    if packet.id in waiting:
                        replies.corrupt.append(packet.id)
                        waiting.discard(packet.id)
                    else:
                        replies.stray += 1
                elif packet.is_status and packet.id in waiting and packet.params:
                    replies.packets[packet.id] = packet
                    waiting.discard(packet.id)
                else:
                    replies.stray += 1
        return replies

    def _port(self) -> serial.Serial:
        if self._serial is None:
            raise LinkError(f"servo bus port {self.port} is not open")
        return self._serial

    def _failed(self, exc: Exception) -> None:
        self.close()
        raise LinkError(f"servo bus port {self.port} failed: {exc}") from None
