"""Speed caps of the driver's setpoints and of the emulated servos' profile, in simulated time."""
from __future__ import annotations

import math
import random

import pytest

from humimic_core.robot_config import MotionCaps
from humimic_driver.motion_limits import MAX_GAP_S, STEP_S, SetpointLimiter
from humimic_driver.sim.servo_emulator import EmulatedServo

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


def test_lag_of_a_stream_within_the_caps_and_what_jitter_adds():
    """A joint moving as a sine within its caps (0.25 rad at 1 Hz: 1.6 rad/s, 9.9 rad/s^2), sampled at
    24 Hz, delivered on time or with jitter (a quarter of the commands up to 30 ms late, then the next
    close behind), the state timer at 50 Hz. Each command written as it arrives is 30 ms behind the
    motion (10 ms latency and half a frame); the setpoints 54 ms (braking toward each command at the
    acceleration cap), and jitter adds 6 ms: what a late command leaves unreached goes on on the timer."""
    caps, limits = {"j": MotionCaps(3.0, 40.0)}, {"j": (-1.0, 1.0)}
    period, latency, end = 1 / 24, 0.010, 6.0

    def motion(t: float) -> float:
        return 0.25 * math.sin(2 * math.pi * t)

    def arrivals(jitter: float):
        rng, out, last = random.Random(6), [], -1.0
        for k in range(round(end / period)):
            last = max(last, k * period + latency + (rng.uniform(0, jitter) if rng.random() < 0.25 else 0.0))
            out.append((last, motion(k * period)))
        return out

    def written(stream, naive: bool):
        """The goal written at each step: on each command and each 20 ms tick."""
        limiter = SetpointLimiter(caps, limits, {"j": 0.0}, now=0.0)
        goal, setpoint, last, i, path = 0.0, 0.0, 0.0, 0, []
        for step in range(1, round(end / STEP_S)):
            t = step * STEP_S
            while i < len(stream) and stream[i][0] <= t:
                goal, i = stream[i][1], i + 1
                if naive:
                    setpoint += max(-3.0 * (t - last), min(3.0 * (t - last), goal - setpoint))
                    last = t
                else:
                    setpoint = limiter.advance({"j": goal}, t)["j"]
            if not naive and step % 5 == 0:
                setpoint = limiter.advance({"j": goal}, t)["j"]
            path.append(setpoint)
        return path

    def behind_ms(path) -> int:  # the delay that best aligns a path with the motion
        times = [step * STEP_S for step in range(1, round(end / STEP_S))]
        return min(range(0, 150, 2), key=lambda d: sum((p - motion(t - d * 1e-3)) ** 2 for t, p in zip(times, path)))

    raw = behind_ms(written(arrivals(0.0), naive=True))  # goals written as they come (vmax never binds)
    on_time, jittered = behind_ms(written(arrivals(0.0), False)), behind_ms(written(arrivals(0.03), False))
    assert 26 <= raw <= 34 and raw < on_time <= raw + 30 and on_time <= jittered <= on_time + 8, (raw, on_time, jittered)


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
    vmax, amax = 50 * servo.ticks_s_per_velocity_unit, 20 * servo.ticks_s2_per_acceleration_unit
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


def test_the_goal_written_is_a_point_the_setpoint_path_passes():
    """The lead (the goal written for a servo whose profile has the same caps) after hostile jumps and
    random goals: always between the extremes of the setpoint's own path toward the goal from now
    on, so never where the setpoint does not go; ahead of the setpoint while it moves."""
    rng = random.Random(5)
    limiter = SetpointLimiter(CAPS, LIMITS, {j: 0.0 for j in CAPS}, now=0.0)
    goals, ahead = hostile_goals(rng), 0
    for k in range(1, 1500):
        if rng.random() < 0.02:
            goals = {j: rng.uniform(-1.0, 1.0) for j in CAPS}
        limiter.advance(goals, k * STEP_S)
        lead = limiter.lead(goals, 0.02)
        future = SetpointLimiter(CAPS, LIMITS, limiter.position, now=0.0)
        future.velocity = dict(limiter.velocity)
        path = {j: [limiter.position[j]] for j in CAPS}
        for n in range(1, 200):
            for j, position in future.advance(goals, n * STEP_S).items():
                path[j].append(position)
        for j in CAPS:
            assert min(path[j]) - 1e-9 <= lead[j] <= max(path[j]) + 1e-9, (k, j)
            ahead += abs(lead[j] - limiter.position[j]) > 1e-3
    assert ahead > 1000  # it does lead
