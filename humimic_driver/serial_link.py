"""The serial port under the servo bus, through dynamixel-sdk: its PortHandler and Protocol 2.0
PacketHandler carry every byte the driver sends and receives.

Two changes to the SDK's PortHandler (a subclass, ``DeadlinePort``):

- packet timeouts: the SDK sizes them as the reply's bytes plus 2 x LATENCY_TIMER (16 ms) + 2 ms,
  so every missing reply would cost at least 34 ms (one silent servo: the loop below 30 Hz); here
  every timeout is the request's and the reply's bytes at the baud rate plus a slack the bus
  computes (return delay, USB latency timer, margin), set through the SDK's ``setPacketTimeoutMillis``;
- ``readPort`` waits in select() for bytes until the packet deadline before it returns empty: the
  SDK's receive loop calls it back to back, so without the wait it would spin a CPU core.

The replies of a sync read are read one status packet at a time with the SDK's
``Protocol2PacketHandler.rxPacket`` and judged by the ID each carries. The SDK's own readers cannot
be used for them: ``GroupSyncRead.rxPacket`` drops each servo's error byte (the hardware-alert bit)
and stops at the first missing reply, and ``readRx(id)``, under it, discards the replies of other IDs
while it waits for the one asked for, so one silent servo would lose every reply after it.

Failures of the port itself (USB adapter unplugged, I/O error) raise ``LinkError``, a ``BusError``.
"""
from __future__ import annotations

import fcntl
import os
import select
import termios
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Dict, List, NamedTuple, NoReturn, Optional, Tuple

import serial
from dynamixel_sdk import (BROADCAST_ID, COMM_RX_CORRUPT, COMM_RX_TIMEOUT, COMM_SUCCESS, DXL_MAKEWORD, INST_PING,
                           INST_READ, INST_REBOOT, INST_WRITE, GroupSyncRead, GroupSyncWrite, PortHandler,
                           Protocol2PacketHandler)
from dynamixel_sdk.protocol2_packet_handler import (PKT_ERROR, PKT_ID, PKT_INSTRUCTION, PKT_LENGTH_H, PKT_LENGTH_L,
                                                    PKT_PARAMETER0)

#: What pyserial and the tty layer raise when the device fails or vanishes.
_PORT_ERRORS = (OSError, serial.SerialException, termios.error)
#: Bytes of a status packet before its LEN counts: header 4, ID, LEN 2; LEN covers INST, error, data, CRC 2.
_FRAME, _MIN_STATUS_LEN = 7, 4


class BusError(RuntimeError):
    """A servo bus problem; the message names the port, servo ID and joint where known."""


class LinkError(BusError):
    """The serial port failed or is gone; the message names the port."""


class Status(NamedTuple):
    """A status packet with a good CRC: the servo's error byte and the data after it."""

    error: int
    data: bytes


@dataclass
class Replies:
    """Status packets of one sync read, by servo ID."""

    packets: Dict[int, Status] = field(default_factory=dict)
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


class DeadlinePort(PortHandler):
    """dynamixel-sdk's PortHandler with packet timeouts from the bytes on the wire plus ``slack_ms``,
    and a ``readPort`` that waits for bytes until the packet deadline instead of returning at once."""

    def __init__(self, port_name: str) -> None:
        super().__init__(port_name)
        self.slack_ms = 0.0
        self._written = 0

    def writePort(self, packet) -> int:
        self._written = len(packet)
        return super().writePort(packet)

    def setPacketTimeout(self, packet_length: int) -> None:
        """Called by the SDK after each request with the length of the reply it expects."""
        self.setPacketTimeoutMillis((self._written + packet_length) * self.tx_time_per_byte + self.slack_ms)

    def readPort(self, length: int) -> bytes:
        data = super().readPort(length)
        if data or length <= 0:
            return data
        wait_s = (self.packet_timeout - self.getTimeSinceStart()) * 1e-3
        if wait_s > 0.0 and select.select([self.ser.fileno()], [], [], wait_s)[0]:
            return super().readPort(length)
        return data


class CheckedPacketHandler(Protocol2PacketHandler):
    """The SDK's Protocol 2.0 handler, with the reply's length checked against the request: a late
    reply to an earlier request of the same servo (a timed-out read answered after the next request
    went out) is a corrupt reply to retry, not data (the SDK matches replies by ID only)."""

    def txRxPacket(self, port, txpacket):
        rxpacket, result, error = super().txRxPacket(port, txpacket)
        if result == COMM_SUCCESS and txpacket[PKT_ID] != BROADCAST_ID:
            expected = _reply_length(txpacket)
            if expected is not None and DXL_MAKEWORD(rxpacket[PKT_LENGTH_L], rxpacket[PKT_LENGTH_H]) != expected:
                return rxpacket, COMM_RX_CORRUPT, 0
        return rxpacket, result, error


def _reply_length(txpacket) -> Optional[int]:
    """The status packet's length field a request calls for (error byte + params + CRC + instruction)."""
    instruction = txpacket[PKT_INSTRUCTION]
    if instruction == INST_READ:
        return 4 + DXL_MAKEWORD(txpacket[PKT_PARAMETER0 + 2], txpacket[PKT_PARAMETER0 + 3])
    if instruction == INST_PING:
        return 7
    if instruction in (INST_WRITE, INST_REBOOT):
        return 4
    return None


class SerialLink:
    """One serial port at one baud rate: ``port_handler`` and ``packet_handler`` for the SDK's
    transactions and group objects, which go through ``transact``, ``sync_write`` and ``sync_read``
    so that a failing port becomes a ``LinkError``."""

    def __init__(self, port: str, baud: int) -> None:
        self.port = port
        self.baud = baud
        self.port_handler = DeadlinePort(port)
        self.packet_handler = CheckedPacketHandler()

    @property
    def is_open(self) -> bool:
        return self.port_handler.is_open

    def open(self) -> None:
        """Open the port (exclusively: two drivers on one bus would fight); LinkError naming it if that fails."""
        self.close()
        handler = self.port_handler
        handler.is_using = False  # a transaction cut short by a failing port left it set
        try:
            # The SDK's openPort() is setBaudRate(1 Mbps): setBaudRate opens the port at ours at once.
            if not handler.setBaudRate(self.baud):
                raise ValueError(f"dynamixel-sdk does not support {self.baud} baud")
            fcntl.flock(handler.ser.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise LinkError(f"cannot open servo bus port {self.port}: in use by another process") from None
        except (*_PORT_ERRORS, ValueError) as exc:
            self.close()
            raise LinkError(f"cannot open servo bus port {self.port} at {self.baud} baud: {exc}") from None

    def close(self) -> None:
        handler = self.port_handler
        if handler.ser is not None and handler.is_open:
            try:
                handler.closePort()
            except _PORT_ERRORS:
                pass  # the device is already gone
        handler.is_open = False

    def transact(self, call: Callable[..., Tuple[Any, ...]], *args: object, slack_s: float) -> Tuple[Any, ...]:
        """``call(port_handler, *args)``: one of the SDK's PacketHandler transactions (ping, readTxRx,
        writeTxRx, reboot), its reply awaited for its bytes on the wire plus ``slack_s``. Returns what
        the SDK does, ``(value..., result, error)``, for a result of success, timeout or corrupt reply."""
        handler = self._handler()
        handler.slack_ms = slack_s * 1e3
        try:
            outcome = call(handler, *args)
            if outcome[-2] not in (COMM_RX_TIMEOUT, COMM_RX_CORRUPT):
                self._check_sent(outcome[-2])
            return outcome
        except _PORT_ERRORS as exc:
            self._failed(exc)
        finally:
            handler.is_using = False

    def sync_write(self, group: GroupSyncWrite) -> None:
        """Send a GroupSyncWrite (broadcast: no reply)."""
        handler = self._handler()
        try:
            self._check_sent(group.txPacket())
        except _PORT_ERRORS as exc:
            self._failed(exc)
        finally:
            handler.is_using = False

    def sync_read(self, group: GroupSyncRead, expected: Collection[int], timeout_s: float) -> Replies:
        """Send a GroupSyncRead's request, then collect the replies of ``expected`` for ``timeout_s``."""
        handler = self._handler()
        try:
            self._check_sent(group.txPacket())
            return self.collect(expected, timeout_s)
        except _PORT_ERRORS as exc:
            self._failed(exc)
        finally:
            handler.is_using = False

    def collect(self, expected: Collection[int], timeout_s: float) -> Replies:
        """Status packets (the SDK's rxPacket, one at a time) until each expected ID has replied or sent
        a corrupt reply, or ``timeout_s`` passes. Replies already in after the timeout still count
        (this process may have been descheduled while the servos answered in time)."""
        handler = self._handler()
        handler.setPacketTimeoutMillis(timeout_s * 1e3)
        replies = Replies()
        waiting = set(expected)
        try:
            while waiting:
                raw, result = self.packet_handler.rxPacket(handler, False)
                if result == COMM_SUCCESS:
                    n_data = (raw[PKT_LENGTH_L] | raw[PKT_LENGTH_H] << 8) - _MIN_STATUS_LEN  # LEN once unstuffed
                    if raw[PKT_ID] in waiting and n_data >= 0:
                        data = bytes(raw[PKT_ERROR + 1:PKT_ERROR + 1 + n_data])
                        replies.packets[raw[PKT_ID]] = Status(raw[PKT_ERROR], data)
                        waiting.discard(raw[PKT_ID])
                    else:
                        replies.stray += 1
                elif result == COMM_RX_CORRUPT and _complete(raw):  # all its bytes came, the CRC did not match
                    if raw[PKT_ID] in waiting:
                        replies.corrupt.append(raw[PKT_ID])
                        waiting.discard(raw[PKT_ID])
                    else:
                        replies.stray += 1
                else:  # timeout, with nothing or part of a packet
                    break
        except _PORT_ERRORS as exc:
            self._failed(exc)
        finally:
            handler.is_using = False
        return replies

    def _handler(self) -> DeadlinePort:
        if not self.port_handler.is_open:
            raise LinkError(f"servo bus port {self.port} is not open")
        return self.port_handler

    def _check_sent(self, result: int) -> None:
        """An OSError (the port failed) unless the SDK reports the request sent."""
        if result != COMM_SUCCESS:
            raise OSError(self.packet_handler.getTxRxResult(result))

    def _failed(self, exc: Exception) -> NoReturn:
        self.close()
        raise LinkError(f"servo bus port {self.port} failed: {exc}") from None


def _complete(raw: List[int]) -> bool:
    """A framed packet whose bytes all arrived (the SDK returns the partial bytes on a timeout too)."""
    return len(raw) >= _FRAME + _MIN_STATUS_LEN and len(raw) >= _FRAME + (raw[PKT_LENGTH_L] | raw[PKT_LENGTH_H] << 8)

