"""Dynamixel Protocol 2.0 packets as bytes: CRC, byte stuffing, encoding and an incremental parser.

Packet layout (ROBOTIS e-Manual, "Protocol 2.0"):
``FF FF FD 00 | ID | LEN_L LEN_H | INST | PARAMS... | CRC_L CRC_H`` where LEN counts INST,
the (stuffed) parameters and the CRC. A status packet is an instruction packet with INST 0x55
whose first parameter is the error byte. Pure bytes in, bytes out: no serial port here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple, Union

HEADER = b"\xff\xff\xfd\x00"
BROADCAST_ID = 0xFE
MAX_ID = 0xFC
#: Largest LEN accepted by the parser (the ROBOTIS SDK's packet buffers hold 1 KiB).
MAX_LENGTH = 1024

INST_PING = 0x01
INST_READ = 0x02
INST_WRITE = 0x03
INST_REBOOT = 0x08
INST_STATUS = 0x55
INST_SYNC_READ = 0x82
INST_SYNC_WRITE = 0x83

# Status packet error numbers (bits 0..6 of the error byte); bit 7 is the hardware alert.
ERR_RESULT_FAIL = 0x01
ERR_INSTRUCTION = 0x02
ERR_CRC = 0x03
ERR_DATA_RANGE = 0x04
ERR_DATA_LENGTH = 0x05
ERR_DATA_LIMIT = 0x06
ERR_ACCESS = 0x07
ERR_ALERT = 0x80

_CRC_POLY = 0x8005


def _crc_table() -> Tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ _CRC_POLY) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _crc_table()


def crc16(data: bytes, crc: int = 0) -> int:
    """CRC-16 of Protocol 2.0 (polynomial 0x8005, initial 0, not reflected) over ``data``."""
    table = _TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


def stuff(body: bytes) -> bytes:
    """Byte stuffing of the instruction+parameter field: every FF FF FD becomes FF FF FD FD."""
    if b"\xff\xff\xfd" not in body:
        return bytes(body)
    out = bytearray()
    for byte in body:
        out.append(byte)
        if byte == 0xFD and out[-3:-1] == b"\xff\xff":
            out.append(0xFD)
    return bytes(out)


def unstuff(body: bytes) -> bytes:
    """Undo byte stuffing: every FF FF FD FD becomes FF FF FD."""
    return bytes(body).replace(b"\xff\xff\xfd\xfd", b"\xff\xff\xfd")


def encode(packet_id: int, instruction: int, params: bytes = b"") -> bytes:
    """A complete packet (header, length, stuffed body, CRC) for any instruction byte."""
    if not 0 <= packet_id <= BROADCAST_ID:
        raise ValueError(f"packet ID {packet_id} outside 0..{BROADCAST_ID}")
    body = stuff(bytes((instruction,)) + bytes(params))
    length = len(body) + 2
    if length > MAX_LENGTH:
        raise ValueError(f"packet too long: LEN {length} > {MAX_LENGTH}")
    frame = HEADER + bytes((packet_id, length & 0xFF, length >> 8)) + body
    crc = crc16(frame)
    return frame + bytes((crc & 0xFF, crc >> 8))


def encode_instruction(packet_id: int, instruction: int, params: bytes = b"") -> bytes:
    """An instruction packet."""
    if instruction == INST_STATUS:
        raise ValueError("0x55 is the status instruction; use encode_status")
    return encode(packet_id, instruction, params)


def encode_status(packet_id: int, error: int = 0, params: bytes = b"") -> bytes:
    """A status packet: error byte followed by the returned data."""
    return encode(packet_id, INST_STATUS, bytes((error & 0xFF,)) + bytes(params))


@dataclass(frozen=True)
class Packet:
    """A received packet with a good CRC; ``params`` are unstuffed."""

    id: int
    instruction: int
    params: bytes

    @property
    def is_status(self) -> bool:
        return self.instruction == INST_STATUS

    @property
    def error(self) -> int:
        """Error byte of a status packet."""
        return self.params[0] if self.is_status and self.params else 0

    @property
    def data(self) -> bytes:
        """Returned data of a status packet (the parameters after the error byte)."""
        return self.params[1:] if self.is_status else self.params


@dataclass(frozen=True)
class CorruptPacket:
    """A framed packet whose CRC did not match; ``id`` is as received (may itself be corrupt)."""

    id: int
    raw: bytes


class PacketParser:
    """Incremental parser: feed bytes as they arrive, get complete packets back.

    Garbage before a header is skipped; a packet with a bad CRC is reported as a
    ``CorruptPacket`` and parsing resumes right after its first header byte.
    """

    def __init__(self, max_length: int = MAX_LENGTH) -> None:
        self._buf = bytearray()
        self._max_length = max_length

    @property
    def pending(self) -> int:
        """Bytes held back while waiting for the rest of a packet."""
        return len(self._buf)

    def clear(self) -> None:
        """Drop a partly received packet (e.g. after a silence on the bus)."""
        self._buf.clear()

    def feed(self, data: bytes) -> List[Union[Packet, CorruptPacket]]:
        """Add received bytes; return the packets completed by them, in order."""
        buf = self._buf
        buf += data
        out: List[Union[Packet, CorruptPacket]] = []
        while True:
            start = buf.find(HEADER)
            if start < 0:
                # Keep a tail that may be the start of a header split across reads.
                keep = next((k for k in (3, 2, 1) if buf.endswith(HEADER[:k])), 0)
                del buf[:len(buf) - keep]
                return out
            if start:
                del buf[:start]
            if len(buf) < 7:
                return out
            length = buf[5] | (buf[6] << 8)
            if length < 3 or length > self._max_length:
                del buf[:1]
                continue
            total = 7 + length
            if len(buf) < total:
                return out
            frame = bytes(buf[:total])
            if crc16(frame[:-2]) != (frame[-2] | (frame[-1] << 8)):
                out.append(CorruptPacket(frame[4], frame))
                del buf[:1]
                continue
            del buf[:total]
            body = unstuff(frame[7:-2])
            out.append(Packet(frame[4], body[0], body[1:]))


#: Bits on the wire per byte: start bit, 8 data bits, stop bit (8N1).
BITS_PER_BYTE = 10
#: Bytes of a status packet around its data: header 4, ID, LEN 2, INST, error, CRC 2.
STATUS_OVERHEAD = 11


def transmission_time(n_bytes: int, baud: int) -> float:
    """Seconds ``n_bytes`` take on a half-duplex 8N1 line at ``baud`` bit/s."""
    return n_bytes * BITS_PER_BYTE / baud


def le_bytes(value: int, size: int) -> bytes:
    """Little-endian bytes of an integer (negative values as two's complement)."""
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def le_int(data: bytes, signed: bool = False) -> int:
    """Integer from little-endian bytes."""
    return int.from_bytes(data, "little", signed=signed)


def read_params(address: int, length: int) -> bytes:
    """Parameters of READ: start address, data length."""
    return le_bytes(address, 2) + le_bytes(length, 2)


def write_params(address: int, data: bytes) -> bytes:
    """Parameters of WRITE: start address, data."""
    return le_bytes(address, 2) + bytes(data)


def sync_read_params(address: int, length: int, ids: Iterable[int]) -> bytes:
    """Parameters of SYNC READ: start address, data length, IDs (replies come in this order)."""
    return read_params(address, length) + bytes(ids)


def sync_write_params(address: int, length: int, data: Mapping[int, bytes]) -> bytes:
    """Parameters of SYNC WRITE: start address, data length, then ID + data per servo."""
    out = bytearray(read_params(address, length))
    for sid, chunk in data.items():
        if len(chunk) != length:
            raise ValueError(f"sync write data for ID {sid} has {len(chunk)} bytes, expected {length}")
        out.append(sid)
        out += chunk
    return bytes(out)


def parse_address_length(params: bytes) -> Tuple[int, int]:
    """(address, length) from the first four parameter bytes of READ / SYNC READ / SYNC WRITE."""
    if len(params) < 4:
        raise ValueError(f"expected at least 4 parameter bytes, got {len(params)}")
    return le_int(params[0:2]), le_int(params[2:4])


def parse_sync_read(params: bytes) -> Tuple[int, int, Sequence[int]]:
    """(address, length, IDs) of SYNC READ parameters."""
    address, length = parse_address_length(params)
    return address, length, list(params[4:])


def parse_sync_write(params: bytes) -> Tuple[int, int, Dict[int, bytes]]:
    """(address, length, {ID: data}) of SYNC WRITE parameters; ValueError if the blocks do not fit."""
    address, length = parse_address_length(params)
    blocks = params[4:]
    step = length + 1
    if length == 0 or len(blocks) % step:
        raise ValueError(f"sync write blocks of {len(blocks)} bytes do not split into ID + {length} data bytes")
    return address, length, {blocks[i]: bytes(blocks[i + 1:i + step]) for i in range(0, len(blocks), step)}
