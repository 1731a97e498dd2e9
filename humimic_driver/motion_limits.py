"""Speed limits kept on every goal the driver writes, and the servos' own trapezoidal profile.

``trapezoid_step`` moves a position with a velocity one time step ``STEP_S`` toward a goal:
``|v| <= vmax``, ``|v' - v| <= amax STEP_S``, braking at ``amax`` so as to stop at the goal (it
passes the goal only when the goal moved closer than the braking distance of the present velocity,
and comes back), never running into a bound faster than it can stop. Fixed steps keep the velocity
and acceleration of the path exact whatever the times it is asked at. The driver's
``SetpointLimiter`` runs it for every joint on each command and on the state timer, so each setpoint
moves within the joint's caps whoever commanded it (the goal written is a point of the setpoint's
path a little ahead, ``SetpointLimiter.lead``), and a command that arrives
late, then the next close behind it (transport jitter), costs little time: what the setpoint could
not reach yet it goes on reaching on the timer (a clip of each write to vmax x the time since the
previous command would hold it back until the next one). The emulated servos run it for their
Profile Velocity / Profile Acceleration registers, as the firmware does.

A setpoint stops at each goal rather than moving on at a command stream's trend: a prediction
passes the goal whenever the stream slows down or turns (following the last step's velocity for
one more command period: by up to 0.35 rad on the lids of a real clip, where no command ever
pointed; the robot config's couplings hold only for the commanded poses). The price is lag where a
stream uses its whole acceleration cap (docs/driver.md).
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


def stop_speed(gap: float, amax: float) -> float:
    """Fastest speed from which braking at ``amax`` still stops within ``gap`` after one more STEP_S
    (as humimic_retarget.constraints.stop_speed, scalar: this runs every step per moving joint)."""
    if gap <= 0.0:
        return 0.0
    if amax == math.inf:
        return math.inf
    dv = amax * STEP_S
    return math.sqrt(dv * dv + 2.0 * amax * gap) - dv


def trapezoid_step(position: float, velocity: float, goal: float, vmax: float, amax: float,
                   low: float = -math.inf, high: float = math.inf) -> Tuple[float, float]:
    """(position, velocity) one STEP_S later, moving toward ``goal`` within ``vmax``, ``amax`` (inf: no
    acceleration limit) and the bounds ``low``..``high``, which it never runs into faster than it can
    stop. Lands on the goal when it can stop there."""
    distance = goal - position
    if distance == 0.0 and velocity == 0.0:
        return position, velocity
    h = STEP_S
    dv = amax * h
    exact = distance / h  # the velocity that lands on the goal in this step
    if abs(exact) <= min(vmax, dv) and abs(exact - velocity) <= dv:
        return goal, exact  # and at rest after it (|exact| <= dv)
    want = stop_speed(distance, amax) if distance > 0 else -stop_speed(-distance, amax)
    v = max(velocity - dv, min(velocity + dv, max(-vmax, min(vmax, want))))
    if v > 0.0:  # braking for the bound ahead wins over everything but the acceleration cap
        v = min(v, max(velocity - dv, stop_speed(high - position, amax)))
    elif v < 0.0:
        v = max(v, min(velocity + dv, -stop_speed(position - low, amax)))
    return min(high, max(low, position + v * h)), v


def braking_distance(speed: float, amax: float) -> float:
    """How far a path at ``speed`` goes while braking at ``amax`` in STEP_S steps (as trapezoid_step
    does: the speed drops by amax STEP_S, then the step is taken) until it rests."""
    if amax == math.inf:
        return 0.0
    dv = amax * STEP_S
    steps = math.floor(speed / dv + 1e-9)
    return STEP_S * (steps * speed - dv * steps * (steps + 1) / 2.0)


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
        self._time = now

    def reset(self, joint: str, position: float) -> None:
        """The joint's setpoint is at ``position``, at rest (the servo was sent there on its own)."""
        self.position[joint], self.velocity[joint] = position, 0.0

    def advance(self, goals: Mapping[str, float], now: float) -> Dict[str, float]:
        """The setpoints of ``goals``' joints, moved toward them in the whole steps since the last call."""
        n = steps_until(self._time, now)
        self._time = max(self._time + n * STEP_S, now - STEP_S)  # after a long gap: from now on
        for joint, goal in goals.items():
            self.position[joint], self.velocity[joint] = self._run(joint, goal, n)
        return {j: self.position[j] for j in goals}

    def _run(self, joint: str, goal: float, steps: int) -> Tuple[float, float]:
        """(position, velocity) of the joint's setpoint ``steps`` STEP_S on toward ``goal`` (not kept)."""
        position, velocity = self.position[joint], self.velocity[joint]
        cap, (low, high) = self.caps[joint], self.limits[joint]
        vmax = min(cap.velocity, self.slower.get(joint, math.inf))
        for _ in range(steps):
            if position == goal and velocity == 0.0:
                break
            position, velocity = trapezoid_step(position, velocity, goal, vmax, cap.acceleration, low, high)
        return position, velocity

    def lead(self, goals: Mapping[str, float], seconds: float) -> Dict[str, float]:
        """The goal to write for a servo whose own profile keeps the same caps and is next written
        ``seconds`` from now: where each setpoint will be by then (toward ``goals``), plus the distance
        it would need to brake to rest from there, inside the joint's limits: a point the setpoint's
        own path toward ``goals`` passes through, never beyond it. The servo's profile
        brakes to stop at each goal written; aimed there, it need not brake before the next write,
        so it runs along the setpoint path instead of trailing it by a stop per write. A joint held
        slower (a glide) gets its setpoint: slow, it is followed closely without a lead."""
        n = steps_until(0.0, seconds, math.inf)
        out = {}
        for joint, goal in goals.items():
            if joint in self.slower:
                out[joint] = self.position[joint]
                continue
            position, velocity = self._run(joint, goal, n)
            low, high = self.limits[joint]
            stop = position + math.copysign(braking_distance(abs(velocity), self.caps[joint].acceleration), velocity)
            if (goal - position) * velocity > 0.0:  # braking toward the goal: not past it
                stop = min(stop, goal) if velocity > 0.0 else max(stop, goal)
            out[joint] = min(high, max(low, stop))
        return out

    def arrived(self, goals: Mapping[str, float]) -> bool:
        """Every setpoint of ``goals`` is at its goal, at rest."""
        return all(self.position[j] == g and self.velocity[j] == 0.0 for j, g in goals.items())
