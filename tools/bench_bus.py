#!/usr/bin/env python3
"""Benchmark the servo bus loop: one sync write of all goals + one sync read of all states per cycle.

By default runs against the emulated bus (started here) with the servos of the robot config;
``--port`` benchmarks a real bus instead. Prints the achieved loop rate, the cycle time
percentiles and, for comparison, the bound set by the bytes on the wire at the baud rate.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from humimic_core import paths  # noqa: E402
from humimic_core.robot_config import load_robot_config  # noqa: E402
from humimic_driver import protocol as p  # noqa: E402
from humimic_driver.bus import ServoBus  # noqa: E402
from humimic_driver.control_tables import X_SERIES_REGISTERS as REG  # noqa: E402
from humimic_driver.emulated_bus import emulator_process  # noqa: E402
from humimic_driver.servo_driver import percentile  # noqa: E402


def wire_bytes(n_servos: int) -> int:
    """Bytes on the bus per cycle: sync write of 4-byte goals, sync read of 8 bytes, n status packets."""
    ids = range(1, n_servos + 1)
    goal, velocity = REG["goal_position"], REG["present_velocity"]
    write = p.encode_instruction(p.BROADCAST_ID, p.INST_SYNC_WRITE,
                                 p.sync_write_params(goal.address, 4, {i: bytes(4) for i in ids}))
    read = p.encode_instruction(p.BROADCAST_ID, p.INST_SYNC_READ, p.sync_read_params(velocity.address, 8, ids))
    return len(write) + len(read) + sum(len(p.encode_status(i, 0, bytes(8))) for i in ids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time (default 5)")
    parser.add_argument("--baud", type=int, default=1000000, help="baud rate (default 1000000)")
    parser.add_argument("--robot-config", default=str(paths.config_file("robot_face.yaml")))
    parser.add_argument("--port", default="", help="a real bus instead of the emulator (servos will move!)")
    args = parser.parse_args()
    config = load_robot_config(args.robot_config)
    servos = config.servos
    with contextlib.ExitStack() as stack:
        port = args.port
        if not port:
            port = str(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "servo_bus")
            stack.enter_context(emulator_process(port, args.robot_config))
        bus = stack.enter_context(ServoBus(servos))
        bus.open(port, args.baud)
        bus.start()
        cycles = []
        start = time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            t = time.perf_counter()
            phase = math.sin(2.0 * math.pi * 0.5 * (t - start))  # slow sweep over each joint's range
            bus.write_goals({s.joint: s.neutral + 0.5 * phase * (s.max - s.min) for s in servos})
            bus.read_state()
            cycles.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - start
        bus.move_to_neutral(timeout=2.0)
        bus.torque_off()
    ordered = sorted(cycles)
    wire_s = wire_bytes(len(servos)) * 10.0 / args.baud  # 8N1: 10 bits per byte
    target = "emulator" if not args.port else args.port
    print(f"bus loop ({len(servos)} servos, sync write + sync read, {args.baud} baud, {target}):")
    print(f"  {len(cycles)} cycles in {elapsed:.2f} s -> {len(cycles) / elapsed:.0f} Hz")
    print(f"  cycle time p50 {percentile(ordered, 50) * 1e3:.3f} ms, p99 {percentile(ordered, 99) * 1e3:.3f} ms, "
          f"max {ordered[-1] * 1e3:.3f} ms")
    print(f"  wire-time bound: {wire_bytes(len(servos))} bytes/cycle = {wire_s * 1e3:.3f} ms -> "
          f"{1.0 / wire_s:.0f} Hz (real servos add their return delay time and the adapter's latency)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
