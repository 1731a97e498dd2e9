"""Kinematic fidelity measure on synthetic signals and faces with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from humimic_core.head_frame import rotation_from_angles
from humimic_experiments import kinematic as k


def smooth_noise(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.convolve(rng.normal(size=n + 20), np.ones(9) / 9, mode="same")[10:-10]


def test_a_follower_at_a_known_lag_scores_one_there_and_a_leader_is_never_credited():
    x = smooth_noise(600, 1)
    follower = np.concatenate([np.zeros(4), 0.3 * x[:-4] + 2.0])  # the robot shows x four frames later
    c = k.follow_correlation([(x, follower)], max_lag=10)
    assert c.lag == 4 and c.best_r > 0.999 and c.r < 0.9
    leader = np.concatenate([x[4:], np.zeros(4)])  # the robot four frames ahead of the person
    c = k.follow_correlation([(x, leader)], max_lag=10)
    assert c.lag >= 0 and c.best_r == pytest.approx(c.r) and c.best_r < 0.9


def test_the_person_one_frame_behind_follows_exactly_one_frame_late():
    """The reference row: the robot's side replaced by the person's own signal a frame later."""
    x = smooth_noise(600, 4)
    reference = k.one_frame_behind([(x, np.zeros_like(x))])  # the robot's side is ignored
    c = k.follow_correlation(reference, max_lag=5)
    assert c.lag == 1 and c.best_r == pytest.approx(1.0) and c.r < 0.99 and c.n == 599
    assert c.r == pytest.approx(np.corrcoef(x[1:], x[:-1])[0, 1])


def test_pooling_centres_each_side_and_a_wrong_sign_is_negative():
    x, y = smooth_noise(300, 2), smooth_noise(300, 3)
    r, n = k.pooled_pearson([(x, x + 5.0), (y, y - 5.0)])  # offsets differ per side: not correlation
    assert r == pytest.approx(1.0) and n == 600
    r, _ = k.pooled_pearson([(x, -x)])
    assert r == pytest.approx(-1.0)
    assert math.isnan(k.pooled_pearson([(x, np.zeros_like(x))])[0])  # a joint that never moves
    gaps = x.copy()
    gaps[::3] = np.nan  # frames without a face are left out, not zero
    assert k.pooled_pearson([(gaps, x)])[0] == pytest.approx(1.0)


def face(seed: int = 0) -> np.ndarray:
    """A face-like mesh in the head frame (x forward, y left, z up; metres) with known landmarks."""
    rng = np.random.default_rng(seed)
    p = rng.normal(scale=0.02, size=(478, 3))
    p[[33, 133]] = [0.0, -0.045, 0.0], [0.0, -0.018, 0.0]   # right eye corners
    p[[263, 362]] = [0.0, 0.045, 0.0], [0.0, 0.018, 0.0]    # left eye corners (IOD 0.063)
    p[[13, 82, 312]] = [0.01, 0.0, -0.055], [0.01, -0.01, -0.055], [0.01, 0.01, -0.055]
    p[[14, 87, 317]] = [0.01, 0.0, -0.057], [0.01, -0.01, -0.057], [0.01, 0.01, -0.057]
    return p


def test_geometry_is_head_pose_and_scale_normalised_and_reads_the_right_points():
    base = face()
    rotation = rotation_from_angles(0.3, -0.2, 0.15)
    # in the camera: rotated into the head pose, twice as far (half the size), moved
    camera = 0.5 * base @ rotation.T + np.array([0.02, -0.01, 0.6])
    upright = np.eye(3)[None]  # the mesh's own axes are the head frame's
    still = k.geometry(base[None], upright)
    posed = k.geometry(camera[None], rotation[None])
    for name in k.SIGNALS:
        if not name.startswith("head_"):
            assert posed[name][0] == pytest.approx(still[name][0], abs=1e-9), name
    assert (posed["head_yaw"][0], posed["head_pitch"][0], posed["head_roll"][0]) == pytest.approx((0.3, -0.2, 0.15))
    assert still["mouth_open"][0] == pytest.approx(0.002 / 0.063)  # inner lips 2 mm apart; IOD 63 mm
    opened = base.copy()
    opened[[14, 87, 317], 2] -= 0.0126  # the lower lip drops 0.2 IOD
    assert k.geometry(opened[None], upright)["mouth_open"][0] == pytest.approx(still["mouth_open"][0] + 0.2)
    winked = base.copy()
    winked[[386, 385, 387], 2] = winked[[374, 373, 380], 2].mean()  # the person's left upper lid down
    g = k.geometry(winked[None], upright)
    assert g["eye_aperture_L"][0] == pytest.approx(0.0, abs=1e-9) and g["eye_aperture_R"][0] == still["eye_aperture_R"][0]
    looking = base.copy()
    looking[[468, 473]] = base[[33, 133]].mean(axis=0), base[[263, 362]].mean(axis=0)
    looking[[468, 473], 1] += 0.0126  # both irises 0.2 IOD to the person's left
    assert k.geometry(looking[None], upright)["iris_yaw"][0] == pytest.approx(0.2)
    nothing = k.geometry(np.full((1, 478, 3), np.nan), np.full((1, 3, 3), np.nan))
    assert all(math.isnan(v[0]) for v in nothing.values())


def aperture(n: int, closed_at, depth: float = 0.95, seed: int = 0) -> np.ndarray:
    """An eye's aperture: open (0.12 with noise) with closures of 4 frames at the given frames."""
    a = 0.12 + np.random.default_rng(seed).normal(scale=0.004, size=n)
    for f in closed_at:
        a[f:f + 4] = 0.12 * (1.0 - depth * np.array([0.6, 1.0, 1.0, 0.5]))
    return a


def test_blinks_and_winks_are_found_relative_to_the_person_and_looking_down_is_not_a_blink():
    right = aperture(300, [40, 120, 200]) * 1.7     # a bigger eye: the same events, other scale
    left = aperture(300, [40, 120, 250], seed=1)
    left[150:160] *= 0.6                             # looking down: the lids 40 % lower, no closure
    left[[60, 61]] = np.nan                          # no face for two frames
    right[270:272], left[270:272] = 0.12 * 1.7 * 0.3, 0.12 * 0.55  # one eye 70 % shut, the other 45 %: no wink
    right[122], left[122] = 0.12 * 1.7 * 0.5, 0.12 * 0.5  # a blink that opens to half for a frame: still one
    closures = {"R": k.closure(right), "L": k.closure(left)}
    events = k.eye_events(closures)
    assert [(e.kind, e.start) for e in events] == [("blink", 40), ("blink", 120), ("wink_R", 200), ("wink_L", 250),
                                                   ("partial", 270)]
    assert events[0].peak == 41 and events[0].depth["R"] == pytest.approx(0.95, abs=0.06)


def test_blink_depth_and_delay_and_wink_side_from_the_robot_lids():
    n = 60
    closures = {"R": np.zeros(n), "L": np.zeros(n)}
    closures["R"][20:24] = closures["L"][20:24] = [0.7, 1.0, 0.9, 0.4]
    event = k.eye_events(closures)[0]
    assert (event.kind, event.start, event.peak) == ("blink", 20, 21)
    lid = np.zeros(n)
    lid[20:30] = [0.2, 0.5, 0.85, 0.9, 0.9, 0.6, 0.3, 0.1, 0.0, 0.0]
    slow = np.zeros(n)
    slow[21:30] = [0.1, 0.3, 0.5, 0.7, 0.82, 0.6, 0.3, 0.1, 0.0]
    fast = k.blink_response(event, {"R": lid, "L": lid}, closures)
    assert fast["depth"] == pytest.approx(0.9) and fast["delay"] == 1  # person at 80 % on 21, lid on 22
    both = k.blink_response(event, {"R": lid, "L": slow}, closures)
    assert both["depth"] == pytest.approx(0.5) and both["delay"] == 4  # the slower lid counts
    never = k.blink_response(event, {"R": lid, "L": 0.5 * slow}, closures)
    assert math.isnan(never["delay"])
    summary = k.summarise_blinks([fast, both, never])
    assert summary["count"] == 3 and summary["reached"] == pytest.approx(1 / 3) and summary["delay_missed"] == 1

    closures["L"][:] = 0.1  # the left eye stays open: a wink of the right eye
    wink = k.eye_events(closures)[0]
    assert wink.kind == "wink_R"
    right_only = k.wink_response(wink, {"R": lid, "L": np.zeros(n)})
    assert right_only["one_lid"] and right_only["closed_eye"] == "R"
    assert not k.wink_response(wink, {"R": lid, "L": lid})["one_lid"]          # both lids closed
    assert not k.wink_response(wink, {"R": np.zeros(n), "L": lid})["one_lid"]  # the wrong lid
    # the open eye narrows 40 % in the wink (a squeeze): its lid may follow it that far, no further
    closures["L"][20:24] = [0.3, 0.4, 0.4, 0.2]
    squeeze = k.eye_events(closures)[0]
    assert squeeze.kind == "wink_R" and squeeze.depth["L"] == pytest.approx(0.4)
    assert k.wink_response(squeeze, {"R": lid, "L": 0.35 * lid / 0.9})["one_lid"]
    assert not k.wink_response(squeeze, {"R": lid, "L": 0.5 * lid / 0.9})["one_lid"]
    assert not k.wink_response(squeeze, {"R": lid, "L": lid})["one_lid"]


def test_pairing_honours_the_mirror_and_refuses_unknown_names():
    data = {"groups": {"upper_lids": [{"joint": "upper_lid_left", "signal": "eye_aperture_L", "sign": -1}],
                       "eye_yaw": [{"joint": "eyes_yaw", "signal": "iris_yaw", "sign": 1}],
                       "jaw": [{"joint": "jaw", "signal": "mouth_open", "sign": 1}]}}
    joints = ["upper_lid_left", "eyes_yaw", "jaw"]
    same = k.parse_pairing(data, joints, mirror=False)
    mirrored = k.parse_pairing(data, joints, mirror=True)
    assert [(p.signal, p.sign) for p in same] == [("eye_aperture_L", -1), ("iris_yaw", 1), ("mouth_open", 1)]
    assert [(p.signal, p.sign) for p in mirrored] == [("eye_aperture_R", -1), ("iris_yaw", -1), ("mouth_open", 1)]
    with pytest.raises(ValueError, match="unknown signal 'eye_open_L'"):
        k.parse_pairing({"groups": {"g": [{"joint": "jaw", "signal": "eye_open_L", "sign": 1}]}}, joints, False)
    with pytest.raises(ValueError, match="joint 'chin' is not in the robot config"):
        k.parse_pairing({"groups": {"g": [{"joint": "chin", "signal": "mouth_open", "sign": 1}]}}, joints, False)
    # lids: the fraction toward the closing limit the sign implies
    lids = k.lid_fractions(
        [k.Pair("l", "a", "eye_aperture_R", -1.0), k.Pair("l", "b", "eye_aperture_L", 1.0)],
        {"a": np.array([0.45]), "b": np.array([-0.2])}, {"a": (-0.3, 0.0, 0.9), "b": (-0.4, 0.0, 0.3)})
    assert lids["R"][0] == pytest.approx(0.5) and lids["L"][0] == pytest.approx(0.5)
