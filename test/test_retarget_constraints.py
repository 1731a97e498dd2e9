"""Property tests: whatever the input, config and timing, no command violates a limit.

Checked on every step of the retargeter: joint limits, couplings, velocity and acceleration limits
(velocity = change / step, acceleration = change of velocity / step, with the documented step:
time clamped to MAX_STEP, a longer gap restarting from rest, steps under MIN_STEP skipped).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from humimic_core.paths import config_file
from humimic_core.robot_config import parse_robot_config
from humimic_retarget.retargeter import MAX_STEP, MIN_STEP, Retargeter, RetargetParams, with_changes

RAW = yaml.safe_load(config_file("robot_face.yaml").read_text())
JOINTS = [s["joint"] for s in RAW["servos"]]
CHANNELS = sorted({c for e in RAW["mapping"].values() if isinstance(e, dict) and "weights" in e
                   for c in e["weights"]}) + ["AU12_L", "AU12_R", "AU99", "gaze_yaw", "not_a_channel"]
TOL = 1e-9

log_uniform = lambda lo, hi: st.floats(math.log10(lo), math.log10(hi)).map(lambda e: 10.0 ** e)  # noqa: E731
values = st.one_of(st.floats(-10.0, 10.0), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0.0, 5.0, 1e300, -1e300, math.nan, math.inf, -math.inf]))
frames = st.one_of(st.none(), st.dictionaries(st.sampled_from(CHANNELS), values, max_size=len(CHANNELS)))
steps = st.lists(st.tuples(st.one_of(st.sampled_from([0.0, 1e-4, 0.01, 1 / 30, MAX_STEP, 5.0]),
                                     st.floats(0.0, 0.5)), frames), min_size=1, max_size=60)


@st.composite
def configs(draw):
    data = copy.deepcopy(RAW)
    data["mapping"]["mirror"] = draw(st.booleans())
    for servo in data["servos"]:
        if draw(st.booleans()):
            servo["min"] = servo["neutral"] - draw(st.floats(1e-3, 1.0))
            servo["max"] = servo["neutral"] + draw(st.floats(1e-3, 1.0))
    for entry in data["mapping"].values():
        if isinstance(entry, dict) and "weights" in entry:
            scale = draw(st.sampled_from([1.0, -1.0, 100.0, 1e-3]))
            entry["weights"] = {c: w * scale for c, w in entry["weights"].items()}
    constraints = data["constraints"]
    constraints["velocity"] = draw(st.dictionaries(st.sampled_from(JOINTS), log_uniform(1e-3, 1e3)))
    constraints["acceleration"] = draw(st.dictionaries(st.sampled_from(JOINTS), log_uniform(1e-2, 1e4)))
    neutral = {s["joint"]: s["neutral"] for s in data["servos"]}
    for _ in range(draw(st.integers(0, 4))):
        terms = draw(st.dictionaries(st.sampled_from(JOINTS), st.sampled_from([-2.0, -1.0, -0.5, 0.5, 1.0, 3.0]),
                                     min_size=1, max_size=3))
        at_rest = sum(c * neutral[j] for j, c in terms.items())
        side = draw(st.sampled_from(["min", "max", "both"]))
        coupling = {"terms": terms}
        if side in ("min", "both"):
            coupling["min"] = at_rest - draw(st.floats(0.0, 0.5))
        if side in ("max", "both"):
            coupling["max"] = at_rest + draw(st.floats(0.0, 0.5))
        constraints["couplings"].append(coupling)
    return parse_robot_config(data)


params = st.builds(RetargetParams, max_velocity=log_uniform(1e-3, 1e3), max_acceleration=log_uniform(1e-2, 1e4),
                   neutral_velocity=log_uniform(1e-3, 1e2), face_lost_timeout=st.floats(0.0, 1.0),
                   smoothing=st.one_of(st.just(0.0), st.floats(0.0, 0.5)))


class Checker:
    """Follows the commands of one retargeter and checks each against its limits."""

    def __init__(self, r: Retargeter) -> None:
        self.r = r
        self.limits = r.limits
        self.position = r.position.copy()
        self.velocity = np.zeros_like(self.position)
        self.time = None

    def step(self, t: float, command: dict, check_rates: bool = True) -> None:
        p = np.array([command[j] for j in self.r.joints])
        lim = self.limits
        assert np.all(np.isfinite(p))
        assert np.all(p >= lim.lo) and np.all(p <= lim.hi), "joint limit"
        for c in lim.couplings:
            value = c.value(dict(zip(self.r.joints, p)))
            assert c.min - TOL <= value <= c.max + TOL, f"coupling {c.name}: {value}"
        if self.time is None:
            self.time = t
        if t - self.time < MIN_STEP:
            assert np.array_equal(p, self.position), "moved without time passing"
            return
        h = t - self.time
        previous = self.velocity
        if h > MAX_STEP:
            h, previous = MAX_STEP, np.zeros_like(previous)
        v = (p - self.position) / h
        if check_rates:
            assert np.all(np.abs(v) <= lim.vmax * (1 + 1e-9) + TOL), "velocity limit"
            assert np.all(np.abs(v - previous) <= lim.amax * h * (1 + 1e-6) + 1e-9), "acceleration limit"
        self.position, self.velocity, self.time = p, v, t


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs(), p=params, sequence=steps)
def test_no_command_ever_violates_a_limit(config, p, sequence):
    r = Retargeter(config, p)
    checker = Checker(r)
    t = 0.0
    for dt, frame in sequence:
        t += dt
        checker.step(t, r.update(t, frame))
        t += dt / 2
        checker.step(t, r.tick(t))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs(), before=params, after=params, sequence=steps, split=st.integers(0, 60))
def test_limits_changed_while_running_keep_positions_and_couplings(config, before, after, sequence, split):
    """Tightened velocity/acceleration limits are reached by slowing down, so the rates are only checked
    before the change; positions and couplings hold throughout."""
    r = Retargeter(config, before)
    checker = Checker(r)
    t = 0.0
    for k, (dt, frame) in enumerate(sequence):
        if k == split:
            r.set_params(with_changes(after, {}))
            checker.limits = r.limits
        t += dt
        checker.step(t, r.update(t, frame), check_rates=k < split)


@settings(max_examples=30, deadline=None)
@given(config=configs(), p=st.builds(RetargetParams, max_velocity=log_uniform(0.05, 1e3),
                                     max_acceleration=log_uniform(1.0, 1e4), neutral_velocity=log_uniform(0.05, 1e2),
                                     face_lost_timeout=st.floats(0.0, 1.0), smoothing=st.floats(0.0, 0.5)))
def test_lost_face_ends_at_neutral(config, p):
    r = Retargeter(config, p)
    t = 0.0
    for _ in range(20):
        t += 0.05
        r.update(t, {c: 5.0 for c in CHANNELS if c != "not_a_channel"})
    neutral = np.array([s.neutral for s in config.servos])
    worst = max(s.max - s.min for s in config.servos)
    slowest = min(float(np.min(r.limits.vmax)), p.neutral_velocity)
    glide = np.minimum(r.limits.vmax, p.neutral_velocity)
    t_end = t + p.face_lost_timeout + 2 * worst / slowest + 4 * float(np.max(glide / r.limits.amax)) + 1.0
    while t < t_end:
        t += MAX_STEP
        r.tick(t)
    np.testing.assert_allclose(r.position, neutral, atol=1e-6)


def test_coupled_joints_keep_room_to_stop_at_tiny_steps():
    """Found by test_no_command_ever_violates_a_limit: two extra couplings tie the neck joints to a
    brow; after a frame, a 0.1 ms step and a 0.05 ms tick made the group stop at once (a margin
    accepted at the rounding tolerance read as 'no room to stop' one step later)."""
    raw = copy.deepcopy(RAW)
    raw["mapping"]["mirror"] = False
    raw["constraints"] = {"couplings": raw["constraints"]["couplings"] + [
        {"terms": {"neck_yaw": -2.0, "neck_pitch": -0.5}, "min": 0.0},
        {"terms": {"neck_yaw": 0.5, "neck_roll": -2.0, "brow_inner_left": 0.5}, "min": 0.0}]}
    r = Retargeter(parse_robot_config(raw), RetargetParams(max_velocity=1.0, max_acceleration=1.0,
                                                           neutral_velocity=1.0, face_lost_timeout=1.0,
                                                           smoothing=0.0))
    checker = Checker(r)
    t = 0.0
    for dt, frame in [(0.2, {"AU01": 0.0, "AU02": 0.0, "AU04": 1.0}), (0.0001, None)]:
        t += dt
        checker.step(t, r.update(t, frame))
        t += dt / 2
        checker.step(t, r.tick(t))


def test_extreme_inputs_do_not_overflow_into_nan():
    """Found by test_limits_changed_while_running_keep_positions_and_couplings: head_roll -1.8e308
    then 1e300 overflowed the smoothing into inf - inf = NaN."""
    raw = copy.deepcopy(RAW)
    raw["mapping"]["mirror"] = False
    r = Retargeter(parse_robot_config(raw), RetargetParams(max_velocity=1.0, max_acceleration=1.0,
                                                           neutral_velocity=1.0, face_lost_timeout=0.0,
                                                           smoothing=0.0))
    r.set_params(with_changes(r.params, {"face_lost_timeout": 1.0}))
    checker = Checker(r)
    t = 0.0
    for dt, frame in [(0.0, None), (1e-4, {"AU04": 0.0, "head_roll": -1.797693124862316e308}),
                      (1e-4, {"head_roll": 1e300}), (1e-4, None)]:
        t += dt
        checker.step(t, r.update(t, frame))

