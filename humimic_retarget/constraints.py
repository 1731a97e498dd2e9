"""Joint limits kept on every command: position, velocity, acceleration and couplings.

A step moves the joints from positions ``p`` with velocities ``v`` toward desired positions over
``h`` seconds. The new command ``p' = p + v' h`` keeps

* ``lo <= p' <= hi`` and every coupling ``min <= c . p' <= max``,
* ``|v'| <= vmax`` and ``|v' - v| <= amax h``,
* room to stop before every bound, whatever the later step lengths:
  - a joint in no coupling brakes on its own at ``amax``: the distance to each of its limits
    must be at least ``v'^2 / 2 amax``;
  - the joints tied by couplings brake together, all stopping at the same time
    ``T = max |v'_j| / amax_j``, which keeps them on a straight line: each of their bounds (the
    couplings and their own limits) must keep a slack of at least ``-(c . v') T / 2``.

Braking that way from a state with room to stop leaves room to stop after any step (a discrete
braking run covers no more than the continuous one), so a step can always be taken and no bound
is ever crossed. Toward its target a joint decelerates the same way, so it does not overshoot.
The one exception: right after a limit was tightened at run time the old velocity may be more
than the new limits allow; joints then slow down at ``amax`` (velocity) or, if a position bound
is at stake, harder than ``amax`` - positions stay inside their bounds in every case.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from humimic_core.mapping_config import Constraints, Coupling
from humimic_core.robot_config import motion_caps

#: Bisection steps for the fraction of a coupled step that keeps the couplings.
BISECTIONS = 16
#: Iterations of Dykstra's projection of a target onto the bounds and couplings.
PROJECTION_ITERATIONS = 40
_TOL = 1e-12
#: Margin below which a group has really lost its room to stop: a step accepted at -_TOL can
#: compute a hair lower one step later from rounding alone, which is no reason for a hard stop.
_ROOM_TOL = 1e-9


def stop_speed(distance: np.ndarray, accel: np.ndarray, h: float) -> np.ndarray:
    """Largest speed toward a bound ``distance`` away that can still brake at ``accel`` before it,
    after a step of ``h``: the v with v h + v^2 / (2 accel) = distance."""
    ah = accel * h
    return np.sqrt(ah * ah + 2.0 * accel * np.maximum(distance, 0.0)) - ah


@dataclass
class _Group:
    """Joints tied by couplings (indices) and their bounds ``matrix @ p[joints] >= bound``: the
    couplings first (``couplings`` rows), then each joint's own limits."""

    joints: np.ndarray
    couplings: int
    matrix: np.ndarray
    bound: np.ndarray
    rows: np.ndarray  # the rows' indices among all groups' rows


def _groups(joints: Sequence[str], couplings: Sequence[Coupling], lo: np.ndarray, hi: np.ndarray) -> List[_Group]:
    index = {j: i for i, j in enumerate(joints)}
    parent = list(range(len(joints)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    rows: List[Tuple[Dict[int, float], float]] = []
    for c in couplings:
        ids = [index[j] for j in c.terms]
        for i in ids[1:]:
            parent[root(i)] = root(ids[0])
        coeffs = {index[j]: v for j, v in c.terms.items()}
        if math.isfinite(c.min):
            rows.append((coeffs, c.min))
        if math.isfinite(c.max):
            rows.append(({i: -v for i, v in coeffs.items()}, -c.max))
    members: Dict[int, List[Tuple[Dict[int, float], float]]] = {}
    for coeffs, bound in rows:
        members.setdefault(root(next(iter(coeffs))), []).append((coeffs, bound))
    out, first = [], 0
    for group in members.values():
        ids = np.array(sorted({i for coeffs, _ in group for i in coeffs}))
        eye = np.eye(len(ids))
        matrix = np.vstack([[[coeffs.get(i, 0.0) for i in ids] for coeffs, _ in group], eye, -eye])
        bound = np.concatenate([[b for _, b in group], lo[ids], -hi[ids]])
        out.append(_Group(ids, len(group), matrix, bound, np.arange(first, first + len(bound))))
        first += len(bound)
    return out


class JointLimits:
    """The limits of every joint (arrays in ``joints`` order) and the couplings between them."""

    def __init__(self, joints: Sequence[str], lo: np.ndarray, hi: np.ndarray, vmax: np.ndarray,
                 amax: np.ndarray, couplings: Sequence[Coupling] = ()) -> None:
        self.joints = list(joints)
        self.lo, self.hi = np.asarray(lo, float), np.asarray(hi, float)
        self.vmax, self.amax = np.asarray(vmax, float), np.asarray(amax, float)
        if not (np.all(self.vmax > 0) and np.all(self.amax > 0)):
            raise ValueError("velocity and acceleration limits must be > 0")
        self.couplings = tuple(couplings)
        self.groups = _groups(self.joints, self.couplings, self.lo, self.hi)
        # every group's rows stacked, to check all groups at once
        n_rows = sum(len(g.bound) for g in self.groups)
        self._matrix, self._bound = np.zeros((n_rows, len(self.joints))), np.zeros(n_rows)
        self._row_group = np.zeros(n_rows, dtype=int)
        self._members = np.zeros((len(self.groups), len(self.joints)))
        for k, g in enumerate(self.groups):
            self._matrix[np.ix_(g.rows, g.joints)] = g.matrix
            self._bound[g.rows] = g.bound
            self._row_group[g.rows] = k
            self._members[k, g.joints] = 1.0

    @classmethod
    def from_caps(cls, servos: Sequence, couplings: Sequence[Coupling], max_velocity: float,
                  max_acceleration: float, velocity: Mapping[str, float] = {},
                  acceleration: Mapping[str, float] = {}) -> "JointLimits":
        """Limits of servos (robot_config.Servo): each joint's caps by the driver's rule
        (``robot_config.motion_caps``: its entry in ``velocity`` / ``acceleration``, else the global
        ``max_velocity`` / ``max_acceleration``, never above what the servo model can do)."""
        caps = motion_caps(servos, max_velocity, max_acceleration,
                           Constraints(velocity=dict(velocity), acceleration=dict(acceleration)))
        return cls([s.joint for s in servos], np.array([s.min for s in servos]), np.array([s.max for s in servos]),
                   np.array([caps[s.joint].velocity for s in servos]),
                   np.array([caps[s.joint].acceleration for s in servos]), couplings)

    def _violated(self, slack: np.ndarray) -> List[_Group]:
        """The groups with a row whose slack is below zero."""
        if not self.groups or np.all(slack >= -_TOL):
            return []
        return [g for g in self.groups if np.any(slack[g.rows] < -_TOL)]

    def feasible_target(self, q: np.ndarray) -> np.ndarray:
        """``q`` moved (nearest point, Dykstra) inside the joint limits and couplings."""
        q = np.clip(q, self.lo, self.hi)
        for g in self._violated(self._matrix @ q - self._bound):
            x = q[g.joints]
            lo, hi = self.lo[g.joints], self.hi[g.joints]
            rows, bounds = g.matrix[:g.couplings], g.bound[:g.couplings]
            norms = np.einsum("ij,ij->i", rows, rows)
            fixes = np.zeros((len(bounds) + 1, len(x)))
            for _ in range(PROJECTION_ITERATIONS):
                before = x
                for r, (row, bound) in enumerate(zip(rows, bounds)):
                    y = x + fixes[r]
                    x = y + max(0.0, bound - row @ y) / norms[r] * row
                    fixes[r] = y - x
                y = x + fixes[-1]
                x = np.clip(y, lo, hi)
                fixes[-1] = y - x
                if np.max(np.abs(x - before)) < 1e-9:
                    break
            q[g.joints] = x
        return q

    def step(self, p: np.ndarray, v: np.ndarray, target: np.ndarray, h: float,
             soft_velocity: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(p', v') after ``h`` > 0 s toward ``target``; ``soft_velocity`` is a per-joint speed to
        slow down to (at ``amax``) on top of ``vmax``, e.g. for the glide to neutral."""
        a = self.amax
        ah = a * h
        vcap = np.maximum(np.minimum(self.vmax, soft_velocity), np.abs(v) - ah)
        up, down = stop_speed(self.hi - p, a, h), stop_speed(p - self.lo, a, h)
        error = target - p
        want = np.sign(error) * np.minimum(np.abs(error) / h, stop_speed(np.abs(error), a, h))
        low = np.maximum(np.maximum(v - ah, -vcap), -down)
        high = np.minimum(np.minimum(v + ah, vcap), up)
        new = np.minimum(np.maximum(want, low), high)
        stuck = low > high
        if stuck.any():
            new[stuck] = np.clip(np.clip(want, v - ah, v + ah), -down, up)[stuck]
        if self.groups:
            stop_time = np.max(self._members * (np.abs(new) / a), axis=1)[self._row_group]
            slack = (self._matrix @ (p + new * h) - self._bound
                     + np.minimum(0.0, self._matrix @ new) * stop_time / 2.0)
            for g in self._violated(slack):
                new[g.joints] = self._coupled(g, p, v, new, h, target, low, high)
        p_new = np.clip(p + new * h, self.lo, self.hi)
        return p_new, (p_new - p) / h

    def _coupled(self, g: _Group, p: np.ndarray, v: np.ndarray, new: np.ndarray, h: float, target: np.ndarray,
                 low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Velocities of a coupled group that keep its bounds with room for a joint stop.

        From the joint braking step toward (a) the joints' own choice and (b) the straight line to
        the target (which stays inside the bounds when the target does, so the group cannot get
        stuck on a bound), as far as the bounds allow; the one that ends nearer the target wins.
        """
        idx = g.joints
        pj, vj, aj = p[idx], v[idx], self.amax[idx]

        def margin(vel: np.ndarray) -> np.ndarray:
            stop_time = float(np.max(np.abs(vel) / aj))
            return g.matrix @ (pj + vel * h) - g.bound + np.minimum(0.0, g.matrix @ vel) * stop_time / 2.0

        stop_time = float(np.max(np.abs(vj) / aj))
        brake = vj * max(0.0, 1.0 - h / stop_time) if stop_time > 0 else vj
        if not np.all(margin(brake) >= -_ROOM_TOL):
            # no room to stop (limits tightened at run time): keep the bounds themselves
            nj = new[idx]
            slack, rate = g.matrix @ pj - g.bound, g.matrix @ (nj * h)
            closing = rate < 0
            scale = min(1.0, float(np.min(np.maximum(slack[closing], 0.0) / -rate[closing]))) if closing.any() else 1.0
            return scale * nj
        candidates = [new[idx]]
        line = _along(target[idx] - pj, low[idx], high[idx], new[idx])
        if line is not None:
            candidates.append(line)
        best, best_distance = brake, math.inf
        for goal in candidates:
            ok, bad = 0.0, 1.0
            if not np.all(margin(goal) >= -_TOL):
                for _ in range(BISECTIONS):
                    mid = 0.5 * (ok + bad)
                    if np.all(margin(brake + mid * (goal - brake)) >= -_TOL):
                        ok = mid
                    else:
                        bad = mid
            else:
                ok = 1.0
            vel = brake + ok * (goal - brake)
            distance = float(np.linalg.norm(pj + vel * h - target[idx]))
            if distance < best_distance:
                best, best_distance = vel, distance
        return best


def _along(direction: np.ndarray, low: np.ndarray, high: np.ndarray, wanted: np.ndarray):
    """The fastest velocity along ``direction`` within [low, high] and no faster per joint than
    ``wanted``; None if there is none other than standing still."""
    moving = np.abs(direction) > 1e-12
    if not moving.any():
        return None
    d = direction[moving]
    a, b = low[moving] / d, high[moving] / d
    top = min(float(np.min(np.maximum(a, b))), float(np.min(np.abs(wanted[moving]) / np.abs(d))))
    bottom = max(0.0, float(np.max(np.minimum(a, b))))
    if top <= 0.0 or top < bottom or np.any((low[~moving] > 0) | (high[~moving] < 0)):
        return None
    return top * direction
