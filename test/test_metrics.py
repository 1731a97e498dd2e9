"""Imitation metrics on synthetic curves with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from humimic_experiments.metrics import drop_rate, fidelity, fidelity_table, latency_stats, stage_latencies


def test_latency_and_drops():
    frames = [(i * 33_000_000 + 1_000, i * 33_000_000) for i in range(100)]
    aus = [(s + 12_000_000, s) for _, s in frames[:90]] + [(5, 123)]  # foreign stamp left out
    stats = stage_latencies({"/camera/image_raw": frames, "/face/action_units": aus})
    assert stats["/face/action_units"]["n"] == 90
    assert stats["/face/action_units"]["p50_ms"] == pytest.approx(12.0)
    assert drop_rate([s for _, s in frames], [s for _, s in aus]) == pytest.approx(0.1)
    assert latency_stats([]) == {"n": 0}


def test_fidelity_recovers_a_known_lag():
    t = np.arange(0, 20, 1 / 30)
    human = np.sin(t * 1.3) + 0.5 * np.sin(t * 0.4)
    robot_t = t + 0.2  # the robot shows the same curve 0.2 s later, on another clock grid
    f = fidelity("AU12", (t, human), (robot_t + 0.013, 0.1 * human + 2), max_lag_s=1.0)
    assert f.best_pearson > 0.99
    assert f.lag_s == pytest.approx(0.2 + 0.013, abs=1 / 30)
    assert f.pearson < f.best_pearson


def test_fidelity_flat_and_unrelated_curves():
    t = np.arange(0, 10, 1 / 30)
    rng = np.random.default_rng(1)
    flat = fidelity("AU04", (t, np.zeros_like(t)), (t, rng.normal(size=t.size)))
    assert math.isnan(flat.pearson)
    noise = fidelity("AU01", (t, rng.normal(size=t.size)), (t, rng.normal(size=t.size)), max_lag_s=0.0)
    assert abs(noise.pearson) < 0.2


def test_fidelity_table_segments():
    t = np.arange(0, 10, 1 / 30)
    x = np.sin(t)
    rows = fidelity_table({"AU12": (t, x), "AU25": (t, x)}, {"AU12": (t, x)}, segments=[("first", 0, 5)])
    assert [(r["segment"], r["channel"]) for r in rows] == [("all", "AU12"), ("first", "AU12")]
    assert rows[1]["n"] == pytest.approx(5 * 30, abs=2)


def test_fidelity_never_credits_a_robot_that_leads():
    t = np.arange(0, 20, 1 / 30)
    human = np.sin(t * 1.3) + 0.5 * np.sin(t * 0.4)
    f = fidelity("AU12", (t, human), (t - 0.2, human), max_lag_s=1.0)  # the robot 0.2 s ahead
    assert f.lag_s == 0.0 and f.best_pearson == f.pearson < 0.99
