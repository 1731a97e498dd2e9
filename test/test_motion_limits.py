"""Speed caps of the driver's setpoints and of the emulated servos' profile, in simulated time."""
from __future__ import annotations

import math
import random

import pytest

from humimic_core.robot_config import MotionCaps
from humimic_driver.motion_limits import MAX_GAP_S, STEP_S, SetpointLimiter
from humimic_driver.servo_emulator import TICKS_S2_PER_ACCELERATION_UNIT, TICKS_S_PER_VELOCITY_UNIT, EmulatedServo

CAPS = {"neck": MotionCaps(1.5, 8.0), "lid": MotionCaps(10.0, 40.0), "brow": MotionCaps(3.0, 40.0)}
LIMITS = {j: (-1.0, 1.0) for j in CAPS}


def hostile_goals(rng: random.Random):
    return {j: rng.choice([-1.0, 1.0]) for j in CAPS}


def test_hostile_jumps_keep_every_cap_on_the_setpoint_path():
    """Full-range jumps at random steps: the setpoint path, seen at every step (STEP_S), never exceeds a
    joint's velocity or acceleration cap, and does move at the velocity cap where there is room."""
    rng = random.Random(3)
    limiter = SetpointLimiter(CAPS, LIMITS, {j: 0.0 for j in CAPS}, now=0.0)
    goals, paths = hostile_goals(rng), {j: [0.0] for j in CAPS}
    for k in range(1, 5000):
        if rng.random() < 0.005:
            goals = hostile_goals(rng)
        for j, position in limiter.advance(goals, k * STEP_S).items():
            paths[j].append(position)
    for j, cap in CAPS.items():
        v = [(b - a) / STEP_S for a, b in zip(paths[j], paths[j][1:])]
        a = [(y - x) / STEP_S for x, y in zip(v, v[1:])]
        assert max(map(abs, v)) <= cap.velocity * (1 + 1e-9), j
        assert max(map(abs, a)) <= cap.acceleration * (1 + 1e-6), j
        assert max(map(abs, v)) >= 0.99 * min(cap.velocity, math.sqrt(2.0 * cap.acceleration)), j


def test_commands_at_jittered_times_move_no_faster():
    """Asked at random times 1..60 ms apart (commands and the state timer): between two writes a
    setpoint moves at most cap x (the time between them + one step)."""
    rng = random.Random(4)
    limiter = SetpointLimiter(CAPS, LIMITS, {j: 0.0 for j in CAPS}, now=0.0)
    t, last, goals = 0.0, {j: 0.0 for j in CAPS}, hostile_goals(rng)
    for _ in range(3000):
        if rng.random() < 0.1:
            goals = hostile_goals(rng)
        dt = rng.uniform(0.001, 0.06)
        t += dt
        now = limiter.advance(goals, t)
        for j, cap in CAPS.items():
            assert abs(now[j] - last[j]) <= cap.velocity * (min(dt, MAX_GAP_S) + STEP_S) + 1e-12, j
        last = now


def test_hostile_trends_keep_every_cap():
    """A stream whose commands jump (so its trend is fast, up to the cap) at jittered times: the
    setpoint path still keeps each joint's caps and its limits."""
    rng = random.Random(5)
    limiter = SetpointLimiter(CAPS, LIMITS, {j: 0.0 for j in CAPS}, now=0.0)
    paths, before, goals = {j: [0.0] for j in CAPS}, {j: 0.0 for j in CAPS}, {j: 0.0 for j in CAPS}
    for k in range(1, 6000):
        if k % 20 == 0:  # a command every 40 ms by its stamp
            before, goals = goals, hostile_goals(rng)
            limiter.expect({j: (goals[j] - before[j]) / 0.04 for j in CAPS}, k * STEP_S, k * STEP_S + 0.04)
        for j, position in limiter.advance(goals, k * STEP_S).items():
            paths[j].append(position)
    for j, cap in CAPS.items():
        v = [(b - a) / STEP_S for a, b in zip(paths[j], paths[j][1:])]
        a = [(y - x) / STEP_S for x, y in zip(v, v[1:])]
        assert max(map(abs, v)) <= cap.velocity * (1 + 1e-9) and max(map(abs, a)) <= cap.acceleration * (1 + 1e-6), j
        assert all(-1.0 <= p <= 1.0 for p in paths[j])


def test_a_stream_within_the_caps_is_followed_without_lag():
    """A joint moving as a sine within its caps (0.25 rad at 1 Hz: 1.6 rad/s, 9.9 rad/s^2), sampled at
    24 Hz and delivered with jitter (a quarter of the commands up to 30 ms late, then the next close
    behind): the setpoints follow the motion itself (after the 10 ms transport latency) 7 ms behind,
    ahead of each command written as it arrives (24 ms behind: a sample is on average half a frame
    old), where a setpoint that stops at each command (no trend) is 53 ms behind."""
    caps, limits = {"j": MotionCaps(3.0, 40.0)}, {"j": (-1.0, 1.0)}
    rng = random.Random(6)
    period, latency = 1 / 24, 0.010
    stream, arrival = [], -1.0
    for k in range(24 * 6):
        arrival = max(arrival, k * period + latency + (rng.uniform(0, 0.03) if rng.random() < 0.25 else 0.0))
        stream.append((arrival, k * period, 0.25 * math.sin(2 * math.pi * k * period)))

    def follow(trend: bool):
        limiter = SetpointLimiter(caps, limits, {"j": 0.0}, now=0.0)
        goal, last_stamp, i, path, held = 0.0, None, 0, [], []
        for step in range(1, round(6.0 / STEP_S)):
            t = step * STEP_S
            while i < len(stream) and stream[i][0] <= t:
                _, stamp, value = stream[i]
                if trend and last_stamp is not None:
                    limiter.expect({"j": (value - goal) / (stamp - last_stamp)}, t, t + stamp - last_stamp)
                goal, last_stamp, i = value, stamp, i + 1
            path.append(limiter.advance({"j": goal}, t)["j"])
            held.append(goal)
        return path, held

    def behind_ms(path) -> float:  # the delay that best aligns a path with the motion (latency included)
        times = [step * STEP_S for step in range(1, round(6.0 / STEP_S))]
        return min(range(-10, 60), key=lambda d: sum(
            (p - 0.25 * math.sin(2 * math.pi * (t - latency - d * 1e-3))) ** 2 for t, p in zip(times, path)))

    path, held = follow(trend=True)
    assert -5 <= behind_ms(path) <= 10  # 7 ms
    assert behind_ms(held) >= behind_ms(path) + 12  # 24 ms
    assert behind_ms(follow(trend=False)[0]) >= 40  # 53 ms


def test_a_joint_held_slower_glides_at_that_speed():
    limiter = SetpointLimiter(CAPS, LIMITS, {j: 1.0 for j in CAPS}, now=0.0)
    limiter.slower = {j: 0.8 for j in CAPS}  # the watchdog's glide to neutral
    path = [limiter.advance({j: -1.0 for j in CAPS}, k * STEP_S) for k in range(1, 1000)]
    for j in CAPS:
        speeds = [abs(b[j] - a[j]) / STEP_S for a, b in zip(path, path[1:])]
        assert max(speeds) == pytest.approx(0.8) and path[-1][j] == -1.0


def test_a_long_stall_does_not_make_the_setpoint_jump():
    limiter = SetpointLimiter(CAPS, LIMITS, {j: 0.0 for j in CAPS}, now=0.0)
    moved = limiter.advance({j: 1.0 for j in CAPS}, now=5.0)  # 5 s since the last call
    assert all(0.0 < moved[j] <= 0.5 * CAPS[j].acceleration * MAX_GAP_S * (MAX_GAP_S + STEP_S) + 1e-12 for j in CAPS)


def test_emulated_servo_keeps_its_profile_velocity_and_acceleration():
    """The firmware's trapezoid: accelerates at Profile Acceleration, cruises at Profile Velocity,
    brakes to stop at the goal without passing it."""
    servo = EmulatedServo(1, "XM430-W350", 1000)
    servo.set("profile_velocity", 50)
    servo.set("profile_acceleration", 20)
    servo.set("goal_position", 3000)
    servo.set("torque_enable", 1)
    vmax, amax = 50 * TICKS_S_PER_VELOCITY_UNIT, 20 * TICKS_S2_PER_ACCELERATION_UNIT
    servo.update(0.0)
    period = 3 * STEP_S  # looked at every third step of its profile
    positions = []
    for k in range(1, round(20.0 / period)):
        servo.update(k * period)
        positions.append(servo._position)
    v = [(b - a) / period for a, b in zip(positions, positions[1:])]
    a = [(y - x) / period for x, y in zip(v, v[1:])]
    assert max(v) == pytest.approx(vmax, rel=1e-6) and min(v) >= 0.0  # never back: no overshoot
    assert max(map(abs, a)) <= amax * 1.001
    assert positions[9] == pytest.approx(1000 + 0.5 * amax * (10 * period) ** 2, rel=0.1)  # the ramp up
    assert servo.get("present_position") == 3000 and servo.get("moving") == 0
