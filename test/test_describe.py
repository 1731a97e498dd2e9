"""Expression sentences from AU intensities."""
from __future__ import annotations

import math

import pytest

from humimic_experiments.describe import VOCABULARY, describe, level


def test_sentence_with_levels():
    text = describe({"AU01": 3.1, "AU12": 4.2, "AU26": 1.0, "AU04": 0.2})
    assert text == "inner brows raised 3/5, lip corners pulled up 4/5, jaw dropped 1/5"


def test_granularity_and_words():
    assert describe({"AU12": 4.2}, levels=3) == "lip corners pulled up 3/3"
    assert describe({"AU12": 1.2}, levels=3, words=True) == "slightly lip corners pulled up"
    assert describe({"AU12": 0.1, "AU25": math.nan}) == "neutral face"
    assert describe({"AU12": 2.0}, head={"head_yaw": math.radians(20)}) == \
        "lip corners pulled up 2/5, head turned left 20 deg"
    with pytest.raises(ValueError):
        describe({}, levels=0)
    with pytest.raises(ValueError):
        describe({}, levels=7, words=True)


def test_levels_are_monotonic_and_bounded():
    values = [level(x / 10, 5) for x in range(0, 80)]
    assert values == sorted(values) and values[0] == 0 and values[-1] == 5
    assert len(VOCABULARY) == 17


def test_the_vocabulary_has_one_owner():
    """The AU codes and their words live in humimic_core.channels; the describer and perception read them."""
    from humimic_core import channels
    from humimic_experiments import describe as describer
    from humimic_perception import action_units

    assert describer.VOCABULARY is channels.MEANINGS and tuple(describer.ORDER) == channels.CODES
    assert list(action_units.SCALES) == list(channels.CODES) == action_units.CODES
    assert describer.describe({"AU26": 5.0}) == f"{channels.MEANINGS['AU26']} 5/5"
