"""humimic-scan: find the Dynamixel servos on a bus by pinging every ID at every baud rate.

    humimic-scan --port /dev/ttyUSB0 [--baud 57600 1000000 ...] [--ids 1-20,30]

Prints one line per servo found (ID, model, baud rate) and the progress per baud rate on stderr;
exit code 0 when a servo answered, 1 when none did, 2 for bad arguments. Pings go through the
project's bus layer (dynamixel-sdk's PacketHandler on ``SerialLink``), one ID at a time, each
awaited for its bytes on the wire plus the USB latency timer and a margin.
"""
from __future__ import annotations

import argparse
import sys
from typing import Iterator, List, NamedTuple, Optional, Sequence

from dynamixel_sdk import COMM_SUCCESS

from humimic_driver.bus import model_name
from humimic_core.control_tables import BAUD_CODES
from humimic_driver.serial_link import LinkError, SerialLink, usb_latency_timer_ms

#: Slack of a ping's reply besides its bytes and the USB latency timer: the longest return delay
#: (508 us, factory 500 us) and a margin for the host (s).
PING_SLACK_S = 0.0005 + 0.010
ALL_IDS = range(0, 253)


class Found(NamedTuple):
    id: int
    model: str
    baud: int


def id_ranges(ids: Sequence[int]) -> str:
    """[1, 2, 3, 7] -> '1..3, 7'."""
    parts, ordered = [], sorted(set(ids))
    start = prev = None
    for i in ordered + [None]:  # type: ignore[list-item]
        if start is not None and (i is None or i != prev + 1):
            parts.append(str(start) if start == prev else f"{start}..{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(parts)


def parse_ids(text: str) -> List[int]:
    """'1-20,30' -> [1..20, 30]; ValueError naming what is wrong."""
    ids: List[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise ValueError(f"--ids {text!r}: expected IDs or ranges such as 1-20,30") from None
        if not 0 <= first <= last <= 252:
            raise ValueError(f"--ids {text!r}: IDs are 0..252, ranges low-high")
        ids.extend(range(first, last + 1))
    return sorted(set(ids))


def scan(port: str, bauds: Sequence[int], ids: Sequence[int], progress=None) -> Iterator[Found]:
    """Ping ``ids`` at each of ``bauds`` on ``port``; every servo that answers. LinkError if the port
    cannot be opened. ``progress(baud)`` is called before each baud rate."""
    slack = (usb_latency_timer_ms(port) or 1) * 1e-3 + PING_SLACK_S
    for baud in bauds:
        if progress is not None:
            progress(baud)
        link = SerialLink(port, baud)
        link.open()
        try:
            for sid in ids:
                number, result, _ = link.transact(link.packet_handler.ping, sid, slack_s=slack)
                if result == COMM_SUCCESS:
                    yield Found(sid, model_name(number), baud)
        finally:
            link.close()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="humimic-scan", description=__doc__.splitlines()[0])
    parser.add_argument("--port", required=True, help="serial port of the bus, e.g. /dev/ttyUSB0")
    parser.add_argument("--baud", type=int, nargs="+", default=sorted(BAUD_CODES),
                        help="baud rates to try (default: every Dynamixel rate the driver supports)")
    parser.add_argument("--ids", default="0-252", help="IDs to ping: ranges and IDs, e.g. 1-20,30 (default 0-252)")
    args = parser.parse_args(argv)
    try:
        ids = parse_ids(args.ids)
        bad = [b for b in args.baud if b not in BAUD_CODES]
        if bad:
            raise ValueError(f"--baud {bad[0]}: not a Dynamixel baud rate ({', '.join(map(str, sorted(BAUD_CODES)))})")
    except ValueError as exc:
        print(f"humimic-scan: {exc}", file=sys.stderr)
        return 2
    found = 0
    try:
        for servo in scan(args.port, args.baud, ids, lambda baud: print(
                f"humimic-scan: {baud} baud: pinging IDs {id_ranges(ids)} ...", file=sys.stderr, flush=True)):
            found += 1
            print(f"ID {servo.id}: {servo.model} at {servo.baud} baud", flush=True)
    except LinkError as exc:
        print(f"humimic-scan: {exc}", file=sys.stderr)
        return 1
    if not found:
        print(f"humimic-scan: no servo answered on {args.port} (baud rates {', '.join(map(str, args.baud))}; "
              f"IDs {id_ranges(ids)}): check the power, the cable and the adapter", file=sys.stderr)
        return 1
    print(f"humimic-scan: {found} servo(s) found", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
