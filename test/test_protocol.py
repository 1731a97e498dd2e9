"""Protocol 2.0 packet layer: CRC, stuffing, encoding, incremental parsing."""
from __future__ import annotations

import pytest
from dynamixel_sdk import PacketHandler
from hypothesis import given, settings
from hypothesis import strategies as st

from humimic_driver import protocol as p

# Example packets of the ROBOTIS e-Manual (Protocol 2.0 page): instruction and status packets.
EMANUAL_PACKETS = {
    "ping": "FF FF FD 00 01 03 00 01 19 4E",
    "ping status (model 1030, firmware 38)": "FF FF FD 00 01 07 00 55 00 06 04 26 65 5D",
    "read present position": "FF FF FD 00 01 07 00 02 84 00 04 00 1D 15",
    "read status (166)": "FF FF FD 00 01 08 00 55 00 A6 00 00 00 8C C0",
    "write goal position 512": "FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89",
    "write status": "FF FF FD 00 01 04 00 55 00 A1 0C",
    "reboot": "FF FF FD 00 01 03 00 08 2F 4E",
    "sync read IDs 1, 2": "FF FF FD 00 FE 09 00 82 84 00 04 00 01 02 CE FA",
    "sync write IDs 1, 2": "FF FF FD 00 FE 11 00 83 74 00 04 00 01 96 00 00 00 02 AA 00 00 00 82 87",
}


@pytest.mark.parametrize("name", sorted(EMANUAL_PACKETS))
def test_crc_matches_emanual_examples(name):
    packet = bytes.fromhex(EMANUAL_PACKETS[name])
    assert p.crc16(packet[:-2]) == packet[-2] | (packet[-1] << 8)


def test_encoding_reproduces_emanual_examples():
    hexes = {k: bytes.fromhex(v) for k, v in EMANUAL_PACKETS.items()}
    assert p.encode_instruction(1, p.INST_PING) == hexes["ping"]
    assert p.encode_status(1, 0, bytes((0x06, 0x04, 0x26))) == hexes["ping status (model 1030, firmware 38)"]
    assert p.encode_instruction(1, p.INST_READ, p.read_params(132, 4)) == hexes["read present position"]
    assert p.encode_status(1, 0, p.le_bytes(166, 4)) == hexes["read status (166)"]
    assert p.encode_instruction(1, p.INST_WRITE, p.write_params(116, p.le_bytes(512, 4))) == \
        hexes["write goal position 512"]
    assert p.encode_status(1) == hexes["write status"]
    assert p.encode_instruction(1, p.INST_REBOOT) == hexes["reboot"]
    assert p.encode_instruction(p.BROADCAST_ID, p.INST_SYNC_READ, p.sync_read_params(132, 4, [1, 2])) == \
        hexes["sync read IDs 1, 2"]
    sync_write = p.sync_write_params(116, 4, {1: p.le_bytes(150, 4), 2: p.le_bytes(170, 4)})
    assert p.encode_instruction(p.BROADCAST_ID, p.INST_SYNC_WRITE, sync_write) == hexes["sync write IDs 1, 2"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_crc_agrees_with_dynamixel_sdk(data):
    assert p.crc16(data) == PacketHandler(2.0).updateCRC(0, list(data), len(data))


def test_stuffing_inserts_fd_after_header_pattern():
    assert p.stuff(bytes.fromhex("03 FF FF FD 01")) == bytes.fromhex("03 FF FF FD FD 01")
    assert p.stuff(bytes.fromhex("FF FF FD FF FF FD")) == bytes.fromhex("FF FF FD FD FF FF FD FD")
    assert p.unstuff(bytes.fromhex("03 FF FF FD FD 01")) == bytes.fromhex("03 FF FF FD 01")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0x00, 0xFD, 0xFF, 0x55]), max_size=40).map(bytes))
def test_stuffing_round_trip(body):
    stuffed = p.stuff(body)
    assert p.unstuff(stuffed) == body
    assert b"\xff\xff\xfd\x00" not in stuffed  # no false header inside a packet


def test_stuffed_packet_length_counts_stuffing_and_parses_back():
    params = p.write_params(116, bytes.fromhex("FF FF FD 00"))
    packet = p.encode_instruction(3, p.INST_WRITE, params)
    assert packet[5] | packet[6] << 8 == 1 + len(params) + 1 + 2  # INST + params + stuffed FD + CRC
    (parsed,) = p.PacketParser().feed(packet)
    assert parsed == p.Packet(3, p.INST_WRITE, params)


def test_dynamixel_sdk_unstuffs_our_status_packets():
    handler = PacketHandler(2.0)
    status = list(p.encode_status(7, 0, bytes.fromhex("FF FF FD 12")))
    assert handler.removeStuffing(status)[9:13] == list(bytes.fromhex("FF FF FD 12"))


def test_parser_handles_byte_by_byte_feeding():
    stream = p.encode_instruction(1, p.INST_PING) + p.encode_status(2, p.ERR_ACCESS, b"\x01")
    parser = p.PacketParser()
    packets = [pkt for byte in stream for pkt in parser.feed(bytes((byte,)))]
    assert packets == [p.Packet(1, p.INST_PING, b""), p.Packet(2, p.INST_STATUS, bytes((p.ERR_ACCESS, 1)))]
    assert packets[1].is_status and packets[1].error == p.ERR_ACCESS and packets[1].data == b"\x01"
    assert parser.pending == 0


def test_parser_resyncs_after_garbage():
    ping = p.encode_instruction(5, p.INST_PING)
    garbage = bytes.fromhex("00 FF 13 FF FF FD FF FF FF")  # includes a header prefix that goes nowhere
    packets = p.PacketParser().feed(garbage + ping + garbage + ping)
    assert packets == [p.Packet(5, p.INST_PING, b"")] * 2


def test_parser_reports_corrupt_crc_and_keeps_going():
    bad = bytearray(p.encode_instruction(4, p.INST_READ, p.read_params(132, 4)))
    bad[-1] ^= 0x01
    good = p.encode_instruction(4, p.INST_PING)
    packets = p.PacketParser().feed(bytes(bad) + good)
    assert len(packets) == 2
    assert isinstance(packets[0], p.CorruptPacket) and packets[0].id == 4 and packets[0].raw == bytes(bad)
    assert packets[1] == p.Packet(4, p.INST_PING, b"")


def test_parser_skips_header_with_impossible_length():
    fake = p.HEADER + bytes((1, 0xFF, 0xFF))  # LEN 65535 > MAX_LENGTH
    good = p.encode_instruction(9, p.INST_PING)
    assert p.PacketParser().feed(fake + good) == [p.Packet(9, p.INST_PING, b"")]


def test_parser_clear_drops_partial_packet():
    parser = p.PacketParser()
    ping = p.encode_instruction(1, p.INST_PING)
    assert parser.feed(ping[:6]) == [] and parser.pending == 6
    parser.clear()
    assert parser.feed(ping) == [p.Packet(1, p.INST_PING, b"")]


def test_sync_parameter_blocks_round_trip():
    assert p.parse_sync_read(p.sync_read_params(128, 8, [3, 1, 2])) == (128, 8, [3, 1, 2])
    blocks = {1: p.le_bytes(-5, 4), 16: p.le_bytes(4095, 4)}
    assert p.parse_sync_write(p.sync_write_params(116, 4, blocks)) == (116, 4, blocks)
    assert p.le_int(blocks[1], signed=True) == -5


def test_malformed_sync_write_is_rejected():
    with pytest.raises(ValueError, match="do not split"):
        p.parse_sync_write(p.read_params(116, 4) + bytes(7))
    with pytest.raises(ValueError, match="expected 4"):
        p.sync_write_params(116, 4, {1: b"\x00\x00"})
    with pytest.raises(ValueError, match="status instruction"):
        p.encode_instruction(1, p.INST_STATUS)
