"""The running neutral (humimic_perception.neutral): direction-aware statistics with a population
prior, the mode of two-way features, the lag that keeps a held expression out, restart and recapture."""
from __future__ import annotations

import numpy as np
import pytest

from humimic_perception.action_units import FEATURES, NAMES
from humimic_perception.neutral import FELLOW_EYE, MODE, REST, NeutralEstimator, shorth_midpoint, weighted_quantile

LIP_GAP, BROW_GAP, MOUTH_WIDTH = NAMES.index("lip_gap"), NAMES.index("brow_gap"), NAMES.index("mouth_width")
LID_IRIS_R, LID_GAP_R = NAMES.index("lid_iris_R"), NAMES.index("lid_gap_R")
PRIOR = np.array([REST[name][1] for name in NAMES])


def _faces(count: int, **offsets: float) -> np.ndarray:
    """``count`` copies of the prior face with some features moved (IOD) and a little noise."""
    faces = np.tile(PRIOR, (count, 1)) + np.random.default_rng(count).normal(0.0, 0.002, (count, len(NAMES)))
    for name, offset in offsets.items():
        faces[:, NAMES.index(name)] += offset
    return faces


def test_every_feature_has_a_rest_statistic_and_prior():
    assert set(REST) == set(FEATURES)
    for name, (quantile, _, weight) in REST.items():
        assert (quantile is MODE or 0.0 < quantile < 1.0) and weight >= 0, name
    with pytest.raises(ValueError, match="no rest statistic"):
        NeutralEstimator(NAMES + ["nose_length"])
    with pytest.raises(ValueError, match="lag"):
        NeutralEstimator(NAMES, window=100, lag=100)


def test_weighted_quantile_counts_the_anchor_as_frames():
    ordered = np.arange(1.0, 11.0)[None, :]  # 1 .. 10
    quantile, anchor = np.array([0.5]), np.array([0.0])
    assert weighted_quantile(ordered, quantile, anchor, np.array([0])) == 5.0
    assert weighted_quantile(ordered, quantile, anchor, np.array([10])) == 0.0  # half the weight at 0
    assert weighted_quantile(ordered, quantile, anchor, np.array([4])) == 3.0
    assert weighted_quantile(ordered, np.array([0.1]), np.array([100.0]), np.array([5])) == 2.0


def test_the_mode_of_two_clusters_is_the_larger_one_where_the_median_is_pulled():
    rng = np.random.default_rng(0)
    relaxed, frown = rng.normal(0.83, 0.01, 60), rng.normal(0.74, 0.01, 40)  # brow gap, 40 % frowning
    values = np.sort(np.concatenate([relaxed, frown]))
    mode = shorth_midpoint(values, 0.0, 0)
    assert mode == pytest.approx(0.83, abs=0.005) and np.median(values) < mode - 0.005
    assert shorth_midpoint(values[:3], 0.5, 3) == 0.5  # an anchor as heavy as the data holds


def test_lips_that_stay_apart_do_not_become_the_neutral_but_tighter_lips_do():
    open_lips = NeutralEstimator(NAMES)
    for face in _faces(200, lip_gap=0.25):  # a clip that starts mid-grin: lips apart for 200 frames
        neutral = open_lips.update(face)
    assert neutral[LIP_GAP] == pytest.approx(PRIOR[LIP_GAP], abs=1e-9)
    tight = NeutralEstimator(NAMES)
    for face in _faces(30, lip_gap=-0.01):  # lips that rest tighter than the prior's
        neutral = tight.update(face)
    assert neutral[LIP_GAP] == pytest.approx(PRIOR[LIP_GAP] - 0.01, abs=0.005)


def test_brows_are_the_persons_own_from_the_first_frame():
    estimator = NeutralEstimator(NAMES)
    first = _faces(1, brow_gap=0.1)[0]
    assert estimator.update(first)[BROW_GAP] == first[BROW_GAP]


def test_the_upper_lid_rests_at_the_typical_open_eye_however_often_it_closes_or_widens():
    """The eye's lid over its iris rests at the open eye's rest, so that both a closure
    (AU45) and a widening (AU05) register: neither closing frames (a wink from the start, blinks:
    the lid gap under 3/4 of its open level) nor frequent wide eyes (a third of the frames, where
    a 75th percentile would sit) move it."""
    open_eye, wide, shut = _faces(40), _faces(30, lid_iris_R=0.03, lid_gap_R=0.03), \
        _faces(40, lid_iris_R=-0.06, lid_gap_R=-0.09)
    wink_first = NeutralEstimator(NAMES)
    for face in np.vstack([shut[:10], open_eye[:9]]):  # shut 10 of the first 19 frames
        neutral = wink_first.update(face)
    assert neutral[LID_IRIS_R] == pytest.approx(PRIOR[LID_IRIS_R], abs=0.005)
    estimator = NeutralEstimator(NAMES)
    for face in np.random.default_rng(1).permutation(np.vstack([open_eye, wide, shut[:20]])):
        neutral = estimator.update(face)
    assert neutral[LID_IRIS_R] == pytest.approx(PRIOR[LID_IRIS_R], abs=0.005)
    assert neutral[LID_GAP_R] > PRIOR[LID_GAP_R]  # closure: the open-eye level, not under it


def test_an_expression_held_for_seconds_stays_out_of_the_neutral():
    """300 relaxed frames, then a frown (brow gap 0.08 narrower) held for 250 frames (8 s): the
    newest 90 frames are left out, so the frown is under half of what counts and the mode stays."""
    estimator = NeutralEstimator(NAMES)
    for face in _faces(300):
        estimator.update(face)
    for face in _faces(250, brow_gap=-0.08):
        neutral = estimator.update(face)
    assert neutral[BROW_GAP] == pytest.approx(PRIOR[BROW_GAP], abs=0.01)


def test_the_neutral_follows_a_lasting_change():
    estimator = NeutralEstimator(NAMES, window=300)
    for face in np.vstack([_faces(300), _faces(600, mouth_width=0.1)]):
        neutral = estimator.update(face)
    assert neutral[MOUTH_WIDTH] == pytest.approx(PRIOR[MOUTH_WIDTH] + 0.1, abs=0.01)


def test_restart_and_recapture():
    estimator = NeutralEstimator(NAMES, capture_frames=5)
    for face in _faces(50, brow_gap=0.1):
        estimator.update(face)
    estimator.restart()
    assert np.array_equal(estimator.neutral, PRIOR)
    estimator.recapture()
    assert estimator.capturing
    smile = _faces(5, mouth_width=0.3, lip_gap=0.2)
    for count, face in enumerate(smile, 1):
        neutral = estimator.update(face)
        assert np.allclose(neutral, np.median(smile[:count], axis=0))
    assert not estimator.capturing
    for face in _faces(100):  # three seconds later the captured face still holds
        neutral = estimator.update(face)
    assert neutral[MOUTH_WIDTH] == pytest.approx(np.median(smile[:, MOUTH_WIDTH]), abs=0.01)


def test_a_recapture_under_way_moves_to_the_new_person():
    estimator = NeutralEstimator(NAMES, capture_frames=5)
    estimator.recapture()
    estimator.update(_faces(1, brow_gap=0.1)[0])
    estimator.restart()
    newcomer = _faces(1, brow_gap=-0.1)[0]
    assert estimator.capturing and np.array_equal(estimator.update(newcomer), newcomer)


def test_non_finite_faces_are_left_out():
    estimator = NeutralEstimator(NAMES)
    estimator.update(_faces(1)[0])
    before = estimator.neutral.copy()
    hole = _faces(1, brow_gap=0.2)[0]
    hole[LIP_GAP] = np.nan
    assert np.array_equal(estimator.update(hole), before)


def test_an_eye_seen_only_shut_rests_near_the_other_eyes_opening():
    """A person who starts with a wink: the shut eye's rest is not its shut gap but at least
    FELLOW_EYE of the open eye's, so the wink reads as a closure from the first face."""
    estimator = NeutralEstimator(NAMES)
    shut = LID_GAP_R + 1  # lid_gap_L
    assert NAMES[shut] == "lid_gap_L"
    for face in _faces(5, lid_gap_L=-0.11):  # left eye shut (gap about 0.01), right open (0.12)
        neutral = estimator.update(face)
    assert neutral[shut] >= FELLOW_EYE * neutral[LID_GAP_R] > 0.08
    for face in _faces(200):  # both open from then on: each eye's own rest
        neutral = estimator.update(face)
    assert neutral[shut] == pytest.approx(PRIOR[shut], abs=0.005)
