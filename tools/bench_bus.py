#!/usr/bin/env python3
"""Benchmark the driver's control loop: one sync write of every goal + one sync read of every state.

By default runs against the emulated bus (started here, replies timed as on a real wire at the baud
rate, return delay 0) for 12, 24 and 32 XL330 servos at 1 Mbps and 4 Mbps, and prints the achieved
loop rate next to the bus limit computed from the packet sizes and the baud rate, as a ratio, and
the CPU time the driver's process spends per cycle (dynamixel-sdk's packet work plus the driver's).
``--port`` benchmarks a real bus with the servos of ``--robot-config`` instead (they will move!).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from humimic_core import paths  # noqa: E402
from humimic_core.robot_config import RobotConfig, Servo, load_robot_config, parse_robot_config  # noqa: E402
from humimic_driver import protocol as p  # noqa: E402
from humimic_driver.bus import STATE, ServoBus  # noqa: E402
from humimic_driver.sim.emulated_bus import emulator_process  # noqa: E402
from humimic_driver.driver_settings import DriverSettings  # noqa: E402
from humimic_driver.servo_driver import ServoDriver, percentile  # noqa: E402


def wire_bytes(servos: Sequence[Servo]) -> int:
    """Bytes on the bus per cycle as the driver sends them: one sync write of the goals and one sync read
    of the state block per register layout among the servos' models, one status packet per servo."""
    goals: Dict[Tuple[int, int], List[int]] = {}
    states: Dict[Tuple[int, int], List[int]] = {}
    for servo in servos:
        goal = servo.spec.register("goal_position")
        goals.setdefault((goal.address, goal.size), []).append(servo.id)
        states.setdefault((STATE.address(servo.spec), STATE.length(servo.spec)), []).append(servo.id)
    total = 0
    for (address, size), ids in goals.items():
        total += len(p.encode_instruction(p.BROADCAST_ID, p.INST_SYNC_WRITE,
                                          p.sync_write_params(address, size, {i: bytes(size) for i in ids})))
    for (address, length), ids in states.items():
        total += len(p.encode_instruction(p.BROADCAST_ID, p.INST_SYNC_READ, p.sync_read_params(address, length, ids)))
        total += sum(len(p.encode_status(i, 0, bytes(length))) for i in ids)
    return total


def bus_limit_hz(servos: Sequence[Servo], baud: int) -> float:
    """Cycles per second the wire allows: bytes at 10 bits each, plus each servo's return delay."""
    seconds = p.transmission_time(wire_bytes(servos), baud)
    return 1.0 / (seconds + sum(s.return_delay_us for s in servos) * 1e-6)


def synthetic_config(n_servos: int, port: str, baud: int) -> Dict:
    """A robot config document with ``n_servos`` XL330-M288 on one bus."""
    servos = [{"joint": f"joint_{i:02d}", "id": i, "model": "XL330-M288", "min": -0.5, "max": 0.5, "neutral": 0.0}
              for i in range(1, n_servos + 1)]
    return {"robot": {"name": f"bench_{n_servos}"}, "bus": {"port": port, "baud_rate": baud}, "servos": servos}


#: (cycles, elapsed s, cycle times, failed replies, CPU s of this process)
Result = Tuple[int, float, List[float], int, float]


def measure(config: RobotConfig, seconds: float) -> Result:
    """(cycles, elapsed s, cycle times, failed replies, CPU s of this process) of command + state read
    on the bus of ``config``."""
    driver = ServoDriver(ServoBus(config.servos, config.bus), DriverSettings(), now_ns=0)
    driver.start()
    servos, cycles = config.servos, []
    try:
        start, cpu = time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:
            t = time.perf_counter()
            phase = math.sin(2.0 * math.pi * 0.5 * (t - start))  # slow sweep over each joint's range
            driver.command([s.joint for s in servos], [s.neutral + 0.4 * phase * (s.max - s.min) for s in servos],
                           0, 0)
            driver.read_state()
            cycles.append(time.perf_counter() - t)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        failed = sum(h.failures for h in driver.health.values())
    finally:
        driver.shutdown()
    return len(cycles), elapsed, cycles, failed, cpu


HEADER = ("| bus | servos | baud | bus limit | loop rate (ratio) | typical cycle: 1/p50 (ratio) | cycle p99 "
          "| driver CPU per cycle | failed replies |\n|---|---|---|---|---|---|---|---|---|")


def row(label: str, n: int, baud: int, limit_hz: float, result: Result) -> str:
    """One table row: the achieved mean rate, and the rate of a typical (median) cycle, next to the bus limit."""
    count, elapsed, cycles, failed, cpu = result
    rate, p50 = count / elapsed, percentile(sorted(cycles), 50)
    return (f"| {label} | {n} | {baud / 1e6:g} Mbps | {limit_hz:.0f} Hz | {rate:.0f} Hz ({rate / limit_hz:.2f}) "
            f"| {1 / p50:.0f} Hz ({1 / p50 / limit_hz:.2f}) | {percentile(sorted(cycles), 99) * 1e3:.2f} ms "
            f"| {cpu / count * 1e3:.2f} ms | {failed} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per case (default 3)")
    parser.add_argument("--servos", type=int, nargs="+", default=[12, 24, 32], help="servo counts (emulator)")
    parser.add_argument("--bauds", type=int, nargs="+", default=[1000000, 4000000], help="baud rates (emulator)")
    parser.add_argument("--port", default="", help="a real bus instead of the emulator (servos will move!)")
    parser.add_argument("--robot-config", default=str(paths.config_file("robot_face.yaml")),
                        help="with --port: the robot on that bus")
    args = parser.parse_args()
    print(HEADER)
    if args.port:
        config = load_robot_config(args.robot_config)
        config = dataclasses.replace(config, bus=dataclasses.replace(config.bus, port=args.port))
        baud = config.bus.baud_rate
        result = measure(config, args.seconds)
        print(row(args.port, len(config.servos), baud, bus_limit_hz(config.servos, baud), result), flush=True)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        for baud in args.bauds:
            for n in args.servos:
                port = str(Path(folder) / "servo_bus")
                document = synthetic_config(n, port, baud)
                config_file = Path(folder) / f"bench_{n}.yaml"
                config_file.write_text(yaml.safe_dump(document))
                config = parse_robot_config(document, str(config_file))
                with emulator_process(port, config_file):
                    result = measure(config, args.seconds)
                print(row("emulated", n, baud, bus_limit_hz(config.servos, baud), result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
