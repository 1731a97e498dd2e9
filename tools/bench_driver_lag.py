#!/usr/bin/env python3
"""How much lag the driver's speed limiter adds to a real command stream.

Replays the /joint_commands of a recording (e.g. a humimic-rerun of a clip) in simulated time: each
command arrives at its stamp + a base latency + jitter (bursts: a late command followed closely by
an on-time one; order kept), and goes through the driver's SetpointLimiter (on every arrival and
on the 50 Hz state timer) under the robot config's caps. Compared with writing each command as it
arrives (no limiter): per joint the time shift that best aligns the two paths (the added lag), the
largest position difference, and how far the limited path goes beyond every goal of the last
0.25 s (where no command pointed). The naive alternative, a per-write clip of vmax x (time since the
last arrival), is shown for reference. Then the goals written (each setpoint's lead, as the driver
writes them: where it will be at the next write plus its braking distance) and the raw commands
drive an emulated servo's profile (Profile Velocity / Acceleration = the caps, as the driver sets
them, against the model's limits without a profile) to show the lag at the servo.

    python tools/bench_driver_lag.py out/rerun [--robot-config R] [--jitter-ms 30] [--seed 0]
"""
from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from humimic_core import paths  # noqa: E402
from humimic_core.robot_config import load_robot_config  # noqa: E402
from humimic_driver.motion_limits import STEP_S, SetpointLimiter, trapezoid_step  # noqa: E402
from humimic_experiments.bag_io import deserialize, read_messages  # noqa: E402

STATE_PERIOD_S = 0.02
BASE_LATENCY_S = 0.010


def commands(recording: str) -> List[Tuple[float, Dict[str, float]]]:
    out = []
    for message in read_messages(recording, ["/joint_commands"]):
        msg = deserialize(message)
        out.append((msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, dict(zip(msg.name, msg.position))))
    t0 = out[0][0]
    return [(t - t0, c) for t, c in out]


def arrivals(stream, jitter_s: float, rng: random.Random):
    """(arrival time, command): base latency, a late message now and then (bursts), order kept."""
    out, last = [], -math.inf
    for stamp, command in stream:
        late = rng.uniform(0.0, jitter_s) if rng.random() < 0.25 else rng.uniform(0.0, 0.003)
        last = max(last, stamp + BASE_LATENCY_S + late)
        out.append((last, command))
    return out


def written_paths(events, joints, caps, limits, grid):
    """At each grid time: the command (unlimited), the setpoint (SetpointLimiter), the goal written
    (the setpoint's lead), a naive clip."""
    limiter = SetpointLimiter(caps, limits, {j: 0.0 for j in joints}, now=0.0)
    goals = {j: 0.0 for j in joints}
    naive, last_arrival = {j: 0.0 for j in joints}, 0.0
    raw_path, lim_path, lead_path, naive_path = [], [], [], []
    ticks = [(k * STATE_PERIOD_S, None) for k in range(int(grid[-1] / STATE_PERIOD_S) + 1)]
    timeline = sorted(events + ticks, key=lambda e: e[0])
    i = 0
    setpoints, leads = dict(goals), dict(goals)
    for t in grid:
        while i < len(timeline) and timeline[i][0] <= t:
            when, command = timeline[i]
            if command is not None:
                goals.update({j: v for j, v in command.items() if j in goals})
                dt = when - last_arrival
                naive = {j: naive[j] + max(-caps[j].velocity * dt, min(caps[j].velocity * dt, goals[j] - naive[j]))
                         for j in joints}
                last_arrival = when
            setpoints = limiter.advance(goals, when)
            leads = limiter.lead(goals, STATE_PERIOD_S)
            i += 1
        raw_path.append([goals[j] for j in joints])
        lim_path.append([setpoints[j] for j in joints])
        lead_path.append([leads[j] for j in joints])
        naive_path.append([naive[j] for j in joints])
    return np.array(raw_path), np.array(lim_path), np.array(lead_path), np.array(naive_path)


def servo_path(written: np.ndarray, vmax: float, amax: float) -> np.ndarray:
    """An emulated servo's profile (trapezoid_step in STEP_S steps) following the written goals."""
    position, velocity, out = written[0], 0.0, []
    for goal in written:
        position, velocity = trapezoid_step(position, velocity, goal, vmax, amax)
        out.append(position)
    return np.array(out)


def lag(reference: np.ndarray, path: np.ndarray) -> Tuple[float, float]:
    """(shift in ms that best aligns path with reference: > 0 behind it, largest |difference| in rad)."""
    def error(k: int) -> float:  # path k steps behind (k < 0: ahead of) the reference
        a, b = (path[k:], reference[:len(reference) - k]) if k >= 0 else (path[:k], reference[-k:])
        return float(np.mean((a - b) ** 2))

    best = min(range(-25, 101), key=error)
    return best * STEP_S * 1e3, float(np.max(np.abs(path - reference)))


def beyond(reference: np.ndarray, path: np.ndarray, window_s: float = 0.25) -> float:
    """How far (rad) the path goes outside the range of the goals of the last ``window_s``: where no
    command pointed (lagging behind stays inside)."""
    n = int(window_s / STEP_S)
    padded = np.concatenate([np.full(n - 1, reference[0]), reference])
    windows = np.lib.stride_tricks.sliding_window_view(padded, n)
    return float(np.max(np.maximum(0.0, np.maximum(path - windows.max(axis=1), windows.min(axis=1) - path))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording")
    parser.add_argument("--robot-config", default=str(paths.config_file("robot_face.yaml")))
    parser.add_argument("--max-velocity", type=float, default=3.0)
    parser.add_argument("--max-acceleration", type=float, default=40.0)
    parser.add_argument("--jitter-ms", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = load_robot_config(args.robot_config)
    caps = config.motion_caps(args.max_velocity, args.max_acceleration)
    stream = commands(args.recording)
    joints = [s.joint for s in config.servos]
    grid = np.arange(0.0, stream[-1][0] + 1.0, STEP_S)
    print(f"{len(stream)} commands over {stream[-1][0]:.1f} s; jitter up to {args.jitter_ms:g} ms on a quarter")
    print(f"{'joint':18} {'cap v/a':>11} {'moved':>6} | {'limiter lag':>12} {'max diff':>9} {'beyond':>7} | "
          f"{'naive lag':>10} {'max diff':>9} | servo lag (profile=caps): written / raw goals")
    for jitter in (0.0, args.jitter_ms * 1e-3):
        events = arrivals(stream, jitter, random.Random(args.seed))
        raw, limited, leads, naive = written_paths(events, joints, caps, {s.joint: (s.min, s.max) for s in config.servos},
                                           grid)
        print(f"-- jitter {jitter * 1e3:g} ms")
        for k, joint in enumerate(joints):
            moved = float(np.ptp(raw[:, k]))
            if moved < 0.02:
                continue
            servo, cap = config.servo(joint), caps[joint]
            ms, diff = lag(raw[:, k], limited[:, k])
            naive_ms, naive_diff = lag(raw[:, k], naive[:, k])
            free = servo_path(raw[:, k], servo.spec.max_velocity, math.inf)
            capped = servo_path(leads[:, k], cap.velocity, cap.acceleration)
            servo_ms, _ = lag(free, capped)
            raw_ms, _ = lag(free, servo_path(raw[:, k], cap.velocity, cap.acceleration))
            print(f"{joint:18} {cap.velocity:4.1f}/{cap.acceleration:<5g} {moved:6.2f} | {ms:9.0f} ms {diff:9.3f} "
                  f"{beyond(raw[:, k], limited[:, k]):7.3f} | "
                  f"{naive_ms:7.0f} ms {naive_diff:9.3f} | {servo_ms:7.0f} ms {raw_ms:7.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
