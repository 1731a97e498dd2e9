"""Speed limits kept on every goal the driver writes, and the servos' own trapezoidal profile.

``trapezoid_step`` moves a position with a velocity one time step ``STEP_S`` toward a target:
``|v| <= vmax``, ``|v' - v| <= amax STEP_S``, braking at ``amax`` so as to meet the target (at rest,
or at the target's own velocity when it moves). Fixed steps keep the velocity and acceleration of
the path exact whatever the times it is asked at. The emulated servos run it toward their goal for
their Profile Velocity / Profile Acceleration registers, as the firmware does.

The driver's ``SetpointLimiter`` runs it for every joint on each command and on the state timer,
so each goal written to the bus moves within the joint's caps whoever commanded it. A command
stream is a joint's motion sampled at the camera's rate: between two commands the setpoint's target
moves on at the stream's velocity (the last step over the time between the two commands' stamps,
at most the cap) until the next command is due, so a stream that keeps the caps is followed
without the lag of stopping at every sample (or, with an acceleration cap, of braking toward it),
and a command that arrives late or early (transport jitter) changes nothing: the target waits at
the predicted position, and the setpoint only ever moves within the caps.
"""
from __future__ import annotations

import math
from typing import Dict, Mapping, Tuple

from humimic_core.robot_config import MotionCaps

#: Time step of the trajectories (s); a setpoint is at most this much behind the time asked for.
STEP_S = 0.004
#: A longer time between two calls (a stalled loop) counts as this long: a setpoint never jumps
#: ahead by more than this much of its motion.
MAX_GAP_S = 0.05
#: Commands further apart than this (by their stamps) are not one stream: no motion is predicted.
MAX_PREDICTION_S = 0.1


def stop_speed(gap: float, amax: float) -> float:
    """Fastest speed from which braking at ``amax`` still stops within ``gap`` after one more STEP_S
    (as humimic_retarget.constraints.stop_speed, scalar: this runs every step per moving joint)."""
    if gap <= 0.0:
        return 0.0
    if amax == math.inf:
        return math.inf
    dv = amax * STEP_S
    return math.sqrt(dv * dv + 2.0 * amax * gap) - dv


def trapezoid_step(position: float, velocity: float, target: float, vmax: float, amax: float,
                   target_velocity: float = 0.0, low: float = -math.inf, high: float = math.inf) -> Tuple[float, float]:
    """(position, velocity) one STEP_S later, moving toward ``target`` (where the target is at the end
    of the step; it moves on at ``target_velocity``) within ``vmax``, ``amax`` (inf: no acceleration
    limit) and the bounds ``low``..``high``, which it never runs into faster than it can stop. Lands on
    the target when it can move with it (stop, for a still one) after."""
    distance = target - position
    if distance == 0.0 and velocity == target_velocity:
        return position, velocity
    h = STEP_S
    dv = amax * h
    exact = distance / h  # the velocity that lands on the target in this step
    if (abs(exact - velocity) <= dv and abs(exact - target_velocity) <= dv and abs(exact) <= vmax
            and abs(exact) <= stop_speed(high - target if exact > 0 else target - low, amax) + dv):
        return target, exact
    want = target_velocity + (stop_speed(distance, amax) if distance > 0 else -stop_speed(-distance, amax))
    v = max(velocity - dv, min(velocity + dv, max(-vmax, min(vmax, want))))
    if v > 0.0:  # braking for the bound ahead wins over everything but the acceleration cap
        v = min(v, max(velocity - dv, stop_speed(high - position, amax)))
    elif v < 0.0:
        v = max(v, min(velocity + dv, -stop_speed(position - low, amax)))
    return min(high, max(low, position + v * h)), v


def steps_until(since: float, now: float, longest: float = MAX_GAP_S) -> int:
    """Whole STEP_S steps from ``since`` to ``now`` (none backwards, at most ``longest`` s worth)."""
    steps = math.floor((now - since) / STEP_S + 1e-9)
    return max(0, steps if math.isinf(longest) else min(round(longest / STEP_S), steps))


class SetpointLimiter:
    """One setpoint per joint that follows the joint's goal within its caps and ``limits`` (rad;
    time in seconds)."""

    def __init__(self, caps: Mapping[str, MotionCaps], limits: Mapping[str, Tuple[float, float]],
                 positions: Mapping[str, float], now: float) -> None:
        self.caps = dict(caps)
        self.limits = dict(limits)
        self.position: Dict[str, float] = dict(positions)
        self.velocity: Dict[str, float] = {j: 0.0 for j in positions}
        self.slower: Dict[str, float] = {}  # joints held below their velocity cap (rad/s): neutral glides
        self._trend: Dict[str, float] = {}  # joint -> velocity its goal is expected to move at (rad/s)
        self._trend_since = self._trend_until = now
        self._time = now

    def reset(self, joint: str, position: float) -> None:
        """The joint's setpoint is at ``position``, at rest (the servo was sent there on its own)."""
        self.position[joint], self.velocity[joint] = position, 0.0

    def expect(self, trend: Mapping[str, float], now: float, until: float) -> None:
        """The goals given from now on move on at ``trend`` (rad/s, by joint; others stand still) until
        ``until``, where they are expected to be next, and wait there as long again (a late command);
        then they are the goals themselves again. Trends are kept within the caps."""
        self._trend = {j: max(-self.caps[j].velocity, min(self.caps[j].velocity, v)) for j, v in trend.items() if v}
        self._trend_since, self._trend_until = now, until

    def lead(self, joint: str, goal: float, t: float) -> Tuple[float, float]:
        """(position, velocity) at time ``t`` of where the setpoint is led: the goal, moved on by its trend."""
        trend, low, high = self._trend.get(joint, 0.0), *self.limits[joint]
        since, until = self._trend_since, self._trend_until
        if not trend or t >= until + (until - since):
            return min(high, max(low, goal)), 0.0
        target = min(high, max(low, goal + trend * (min(t, until) - since)))
        return target, (trend if t < until and low < target < high else 0.0)

    def advance(self, goals: Mapping[str, float], now: float) -> Dict[str, float]:
        """The setpoints of ``goals``' joints, moved toward where they lead in the whole steps since the
        last call."""
        n = steps_until(self._time, now)
        end = self._time = max(self._time + n * STEP_S, now - STEP_S)  # after a long gap: from now on
        for joint, goal in goals.items():
            position, velocity = self.position[joint], self.velocity[joint]
            if joint not in self._trend and velocity == 0.0 and position == self.lead(joint, goal, end)[0]:
                continue  # at rest where it should be
            cap, (low, high) = self.caps[joint], self.limits[joint]
            vmax = min(cap.velocity, self.slower.get(joint, math.inf))
            for k in range(n - 1, -1, -1):
                target, target_velocity = self.lead(joint, goal, end - k * STEP_S)
                position, velocity = trapezoid_step(position, velocity, target, vmax, cap.acceleration,
                                                    target_velocity, low, high)
            self.position[joint], self.velocity[joint] = position, velocity
        return {j: self.position[j] for j in goals}

    def arrived(self, goals: Mapping[str, float]) -> bool:
        """Every setpoint of ``goals`` is at rest where its goal leads now."""
        for joint, goal in goals.items():
            target, target_velocity = self.lead(joint, goal, self._time)
            if (self.position[joint], self.velocity[joint], target_velocity) != (target, 0.0, 0.0):
                return False
        return True
