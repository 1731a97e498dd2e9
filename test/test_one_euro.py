"""One-Euro filter: less jitter on a still signal, bounded lag on a step, restarts, bad settings."""
from __future__ import annotations

import numpy as np
import pytest

from humimic_perception.one_euro import OneEuroFilter, OneEuroParams

RATE = 30.0


def _run(params: OneEuroParams, signal: np.ndarray, rate: float = RATE) -> np.ndarray:
    one_euro = OneEuroFilter(params)
    return np.array([one_euro(1_700_000_000.0 + i / rate, x) for i, x in enumerate(signal)])


def test_jitter_of_a_noisy_constant_is_reduced():
    noise = np.random.default_rng(0).normal(0.0, 0.1, size=(300, 3))
    out = _run(OneEuroParams(1.0, 0.5, 1.0), 2.0 + noise)
    assert np.std(np.diff(out[30:], axis=0)) < 0.2 * np.std(np.diff(noise, axis=0))  # frame-to-frame jitter
    assert np.std(out[30:] - 2.0) < 0.5 * np.std(noise)
    assert abs(np.mean(out[30:]) - 2.0) < 0.03  # no bias


def test_a_step_is_followed_with_bounded_lag():
    step = np.r_[np.zeros(30), np.full(60, 5.0)]
    fast = _run(OneEuroParams(1.0, 0.5, 1.0), step[:, None])[:, 0]
    slow = _run(OneEuroParams(1.0, 0.0, 1.0), step[:, None])[:, 0]
    assert (fast[:30] == 0.0).all() and (np.diff(fast) >= -1e-12).all() and fast.max() <= 5.0
    assert 30 + np.argmax(fast[30:] > 4.5) <= 33  # beta: within 0.1 s of the step
    assert fast[-1] == pytest.approx(5.0, abs=1e-3)
    assert np.argmax(fast[30:] > 4.5) < np.argmax(slow[30:] > 4.5)  # speed raises the cutoff


def test_elements_are_filtered_independently():
    rng = np.random.default_rng(1)
    signal = np.column_stack([np.zeros(100), np.r_[np.zeros(50), np.ones(50)], rng.normal(size=100)])
    together = _run(OneEuroParams(1.5, 0.3, 1.0), signal)
    for column in range(3):
        alone = _run(OneEuroParams(1.5, 0.3, 1.0), signal[:, column:column + 1])[:, 0]
        assert np.allclose(together[:, column], alone)


def test_first_sample_and_time_going_back_restart_the_filter():
    one_euro = OneEuroFilter(OneEuroParams(1.0, 0.0, 1.0))
    assert one_euro(10.0, np.array([1.0]))[0] == 1.0
    assert 1.0 < one_euro(10.1, np.array([3.0]))[0] < 3.0
    assert one_euro(10.1, np.array([7.0]))[0] == 7.0  # same time again: starts over
    assert one_euro(5.0, np.array([-2.0]))[0] == -2.0  # a replay from an earlier time
    one_euro.reset()
    assert one_euro(5.1, np.array([4.0]))[0] == 4.0


def test_same_stamps_give_the_same_output():
    signal = np.random.default_rng(2).normal(size=(50, 2))
    assert np.array_equal(_run(OneEuroParams(1.0, 1.0, 1.0), signal), _run(OneEuroParams(1.0, 1.0, 1.0), signal))


def test_bad_settings_and_input_are_refused():
    for kwargs in ({"min_cutoff": 0.0}, {"min_cutoff": -1.0}, {"beta": -0.1}, {"d_cutoff": 0.0},
                   {"min_cutoff": float("nan")}):
        values = {"min_cutoff": 1.0, "beta": 0.0, "d_cutoff": 1.0, **kwargs}
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            OneEuroParams(**values)
    with pytest.raises(ValueError, match="finite"):
        OneEuroFilter(OneEuroParams(1.0, 0.0, 1.0))(0.0, np.array([np.nan]))
