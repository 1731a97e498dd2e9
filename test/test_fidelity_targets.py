"""Issue 10's targets on real video, through the offline re-run and the kinematic measure (humimic-eval:
the person's landmark geometry against the positions the robot's emulated servos reach): each robot
lip corner follows the height of the person's corner it imitates; a one-eye closure moves one robot
lid, also in a clip that opens mid-wink, before any open frame of that eye; the eyes follow the gaze
within a frame and blinks shut the lids within two frames of the person's."""
from __future__ import annotations

from typing import Dict

import pytest

from humimic_experiments.evaluate import evaluate

#: blink_frown_surprise from frame 6: it opens with the left eye already shut (a wink, to frame 21),
#: then a frown (117-260) and surprise (305-353)
MID_WINK = "blink_frown_surprise.mp4@6"
WINKS = "synthetic_winks_woman.mp4"      # the right eye alone shut 36-39, the left alone 86-91
BLINKS = "laugh_smiles_blinks_browraise_headtilt_woman.mp4"  # 28 blinks, glances, a head tilt


@pytest.fixture(scope="module")
def clips(shared_media, tmp_path_factory) -> Dict[str, dict]:
    report = evaluate([MID_WINK, WINKS, BLINKS], tmp_path_factory.mktemp("eval"), log=lambda line: None)
    return {"pooled": report["pooled"], **{clip["clip"]: clip for clip in report["clips"]}}


def test_each_lip_corner_follows_the_height_of_its_corner_through_a_frown(clips):
    """The corners move 0.03-0.05 IOD here (a twist, a downturn): small moves a dead zone, a
    fivefold steeper downturn scale or a neutral taken from a twisted mouth hid (r 0.32 before)."""
    clip = clips[MID_WINK]
    assert clip["groups"]["lip_corners"]["r"] > 0.8, clip["groups"]["lip_corners"]
    for pair in clip["pairs"]:
        if pair["group"] == "lip_corners":
            assert pair["r"] > 0.8, pair


def test_a_one_eye_closure_moves_one_lid(clips):
    """Each wink closes the lid imitating the shut eye (at least half its range) while the other lid
    moves less than 0.25 of its range or than the open eye itself narrowed (synthetic_winks_woman
    38: 0.41, its lid 0.25)."""
    events = [event for name in (MID_WINK, WINKS) for event in clips[name]["winks"]["events"]]
    assert len(events) == 3, events
    for event in events:
        assert event["one_lid"], event
    mid_wink = clips[MID_WINK]["winks"]["events"][0]
    assert mid_wink["frame"] < 10 and mid_wink["closed_lid"] > 0.8, mid_wink  # shut before it was seen open


def test_the_eyes_follow_the_gaze_within_a_frame(clips):
    """A saccade is over from one frame to the next and its command reaches the servo a loop latency
    after the frame: the eyes' XL330-M077 servos (36 rad/s, 1800 rad/s^2) finish a glance within the
    ~20 ms left before the next frame, so the robot's eye yaw follows the person's irises with r >= 0.85
    at lag 0 (0.866; the person against themselves a frame later: 0.882) and trails them by at most a
    frame in each clip (XL330-M288 eyes at 10.5 rad/s, 500 rad/s^2: r 0.843; with the loop latency of
    before issue 15, 13.3 ms, 0.836 and 2 frames behind in the laughing clip)."""
    assert clips["pooled"]["groups"]["eye_yaw"]["r"] >= 0.85, clips["pooled"]["groups"]["eye_yaw"]
    for name in (MID_WINK, WINKS, BLINKS):
        assert clips[name]["groups"]["eye_yaw"]["lag_frames"] <= 1, (name, clips[name]["groups"]["eye_yaw"])


def test_blinks_shut_the_lids_within_two_frames(clips):
    """A blink shuts the person's eye from one frame to the next; a lid must close 0.72 rad (80 % of its
    range) within a frame to follow, which the XL330-M077 lids at 36 rad/s do: at least 90 % of the 34
    blinks reach 80 % of the lid range within 2 frames of the person's peak, with a median delay of at
    most 2 frames (XL330-M288 lids at 10.5 rad/s: 71 %, 3 frames)."""
    blinks = clips["pooled"]["blinks"]
    assert blinks["count"] >= 30, blinks
    assert blinks["reached"] >= 0.9 and blinks["delay_median"] <= 2, blinks
