"""An in-process servo bus: ServoBus's link over a ServoEmulator, on simulated time.

``EmulatorLink`` replaces SerialLink (``ServoBus(..., link=EmulatorLink(emulator, clock))``): the
SDK's packets go straight into ``ServoEmulator.receive`` and its replies come back when they are
due on the simulated ``SimClock``. Waiting for a reply moves that clock instead of sleeping, so
fault tests are fast and deterministic (the pty tests keep the real byte path covered).
"""
from __future__ import annotations

import heapq
from typing import List, Tuple

from humimic_driver.serial_link import CheckedPacketHandler, DeadlinePort, SerialLink
from humimic_driver.sim.servo_emulator import ServoEmulator


class SimClock:
    """Seconds of simulated time: ``clock()`` reads it, ``clock.sleep(s)`` moves it on."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class EmulatorPort(DeadlinePort):
    """dynamixel-sdk's PortHandler interface over an emulator: written bytes reach it at once,
    replies are read once the clock reaches their time; a read with nothing due waits (moves the
    clock) until the next reply or the packet deadline."""

    def __init__(self, emulator: ServoEmulator, clock: SimClock, baud: int) -> None:
        super().__init__("emulator")
        self.emulator, self.clock = emulator, clock
        self.baudrate = baud
        self.tx_time_per_byte = (1000.0 / baud) * 10.0
        self._due: List[Tuple[float, int, bytes]] = []
        self._buffer = b""
        self._sequence = 0

    def openPort(self) -> bool:
        self.is_open = True
        return True

    def setBaudRate(self, baudrate: int) -> bool:
        self.baudrate = baudrate
        self.tx_time_per_byte = (1000.0 / baudrate) * 10.0
        return self.openPort()

    def closePort(self) -> None:
        self.is_open = False

    def clearPort(self) -> None:
        self._buffer = b""

    def getBytesAvailable(self) -> int:
        self._deliver()
        return len(self._buffer)

    def getCurrentTime(self) -> float:
        return self.clock.now * 1e3

    def writePort(self, packet) -> int:
        self._written = len(packet)
        for due, reply in self.emulator.receive(bytes(packet), self.clock.now):
            self._sequence += 1
            heapq.heappush(self._due, (due, self._sequence, reply))
        return len(packet)

    def readPort(self, length: int) -> bytes:
        self._deliver()
        if not self._buffer and length > 0:
            # just past the deadline: the SDK times out only once the time since start exceeds it
            deadline = (self.packet_start_time + self.packet_timeout) * 1e-3 + 1e-6
            target = min(self._due[0][0], deadline) if self._due else deadline
            if target > self.clock.now:
                self.clock.now = target
            self._deliver()
        data, self._buffer = self._buffer[:length], self._buffer[length:]
        return data

    def _deliver(self) -> None:
        while self._due and self._due[0][0] <= self.clock.now:
            self._buffer += heapq.heappop(self._due)[2]


class EmulatorLink(SerialLink):
    """SerialLink's transactions over an EmulatorPort (``port`` names it in messages)."""

    def __init__(self, emulator: ServoEmulator, clock: SimClock, baud: int = 1_000_000) -> None:
        self.port = "emulator"
        self.baud = baud
        self.port_handler = EmulatorPort(emulator, clock, baud)
        self.packet_handler = CheckedPacketHandler()

    def open(self) -> None:
        self.port_handler.is_using = False
        self.port_handler.setBaudRate(self.baud)

    def close(self) -> None:
        self.port_handler.closePort()
