"""Retargeting logic: mapping (weights, curves, gains, mirror, gaze), hold and glide, limits, head angles."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import yaml

from humimic_core.paths import config_file
from humimic_core.robot_config import parse_robot_config
from humimic_retarget.expression_mapping import ExpressionMapping
from humimic_retarget.frame_channels import FrameChannels
from humimic_core.head_frame import FACING_CAMERA, head_angles, quaternion_to_matrix
from humimic_retarget.retargeter import MAX_STEP, Retargeter, RetargetParams, with_changes

RAW = yaml.safe_load(config_file("robot_face.yaml").read_text())


def config_with(edit=None, mirror=False):
    data = copy.deepcopy(RAW)
    data["mapping"]["mirror"] = mirror
    if edit:
        edit(data)
    return parse_robot_config(data)


def global_caps(data, *joints):
    """Drop the joints' constraints.velocity / .acceleration entries: they take the node's global caps."""
    for key in ("velocity", "acceleration"):
        for joint in joints:
            data["constraints"][key].pop(joint, None)


@pytest.fixture(scope="module")
def config():
    return config_with()


def targets(config, frame):
    t, valid = ExpressionMapping(config)(frame)
    return dict(zip(config.joint_names, t)), dict(zip(config.joint_names, valid))


def run(r, frames, dt=0.01, t=0.0):
    """Feed frames every dt seconds; the commands as an array [steps, joints]."""
    out = []
    for frame in frames:
        t += dt
        out.append(list(r.update(t, frame).values()))
    return np.array(out), t


def test_weights_curves_and_offsets(config):
    m = config.mapping
    t, _ = targets(config, {"AU26": 2.0, "AU25": 1.0, "AU12_L": 2.3, "AU45_L": 2.5, "AU01": 1.0})
    assert t["jaw"] == pytest.approx(2.0 * m["jaw"].weights["AU26"] + 1.0 * m["jaw"].weights["AU25"])
    assert t["lip_corner_left"] == pytest.approx(0.10 * 2.3)  # linear: AU12_L has no curve
    assert t["upper_lid_left"] == pytest.approx(0.18 * 2.375)  # AU45_L curve: 2.5 -> 2.375
    assert t["upper_lid_right"] == pytest.approx(0.0)  # a wink: the other lid stays
    assert t["brow_inner_left"] == pytest.approx(0.07)
    deadband = config_with(lambda d: d["mapping"]["curves"].update(AU12_L={"deadband": 0.3}))
    assert targets(deadband, {"AU12_L": 2.3})[0]["lip_corner_left"] == pytest.approx(0.10 * (2.3 - 0.3))
    offset = config_with(lambda d: d["mapping"]["jaw"].update(offset=0.05))
    assert targets(offset, {"AU26": 0.0})[0]["jaw"] == pytest.approx(0.05)


def test_missing_and_bad_channels(config):
    t, valid = targets(config, {"AU26": math.nan, "AU12_L": 2.3})
    assert not valid["jaw"], "a NaN channel invalidates its joints"
    assert valid["lip_corner_left"], "AU15_L absent counts as 0 when AU12_L arrived"
    assert not valid["neck_yaw"] and not valid["eyes_yaw"], "no head pose / gaze: those joints have no input"
    assert not valid["brow_inner_left"]
    _, valid = targets(config, {"AU01": math.inf})
    assert not valid["brow_inner_left"]
    unmapped = config_with(lambda d: d["mapping"].pop("jaw"))
    assert targets(unmapped, {})[1]["jaw"], "a joint without an entry always has its neutral target"


def test_gaze_drives_the_eyes_and_head_pose_the_neck(config):
    t, valid = targets(config, {"gaze_yaw": 0.2, "gaze_pitch": 0.1, "head_yaw": 0.3, "head_pitch": -0.1,
                                "head_roll": 0.05})
    eyes = config.mapping["eyes_yaw"].weights["gaze_yaw"]
    assert (t["eyes_yaw"], t["eyes_pitch"]) == pytest.approx((0.2 * eyes, 0.1))
    assert (t["neck_yaw"], t["neck_pitch"], t["neck_roll"]) == pytest.approx((0.3, -0.1, 0.05))
    assert valid["eyes_yaw"] and valid["neck_roll"]


def lateral(d):
    for side in ("AU45_L", "AU45_R"):  # the shipped lid curves would reshape the per-eye channels
        d["mapping"].get("curves", {}).pop(side, None)
    d["mapping"]["lip_corner_left"] = {"weights": {"AU45_L": 0.1}}
    d["mapping"]["lip_corner_right"] = {"weights": {"AU45_R": 0.1}}


def test_mirror_image_swaps_sides_and_negates_lateral_angles():
    frame = {"AU45_L": 4.0, "AU45_R": 0.0, "head_yaw": 0.3, "head_roll": 0.1, "head_pitch": 0.2,
             "gaze_yaw": 0.2, "gaze_pitch": 0.1}
    same, _ = targets(config_with(lateral, mirror=False), frame)
    image, _ = targets(config_with(lateral, mirror=True), frame)
    assert same["lip_corner_left"] == pytest.approx(0.4) and same["lip_corner_right"] == 0.0
    assert image["lip_corner_right"] == pytest.approx(0.4) and image["lip_corner_left"] == 0.0
    for joint in ("neck_yaw", "neck_roll", "eyes_yaw"):
        assert image[joint] == pytest.approx(-same[joint]) and same[joint] != 0.0
    for joint in ("neck_pitch", "eyes_pitch"):
        assert image[joint] == pytest.approx(same[joint])


def test_mirror_and_gains_are_live_settings():
    config = config_with(lateral, mirror=True)
    r = Retargeter(config, RetargetParams(smoothing=0.0))
    frame = {"AU45_L": 4.0, "AU45_R": 0.0, "AU26": 3.0}
    out, t = run(r, [frame] * 200)
    assert out[-1][r.joints.index("lip_corner_right")] == pytest.approx(0.4)
    r.set_params(with_changes(r.params, {"mirror": False, "gains.AU26": 0.5}))
    out, _ = run(r, [frame] * 200, t=t)
    assert out[-1][r.joints.index("lip_corner_left")] == pytest.approx(0.4)
    assert out[-1][r.joints.index("lip_corner_right")] == pytest.approx(0.0)
    assert out[-1][r.joints.index("jaw")] == pytest.approx(0.5 * 3.0 * config.mapping["jaw"].weights["AU26"])


def test_velocity_and_acceleration_limits_without_overshoot():
    config = config_with(lambda d: global_caps(d, "brow_inner_left"))
    r = Retargeter(config, RetargetParams(max_velocity=1.0, max_acceleration=10.0, smoothing=0.0))
    out, _ = run(r, [{"AU01": 5.0}] * 150)
    brow = out[:, r.joints.index("brow_inner_left")]
    v = np.diff(np.concatenate([[0.0], brow])) / 0.01
    a = np.diff(np.concatenate([[0.0], v])) / 0.01
    assert np.max(np.abs(v)) <= 1.0 + 1e-9 and np.max(np.abs(v)) > 0.9
    assert np.max(np.abs(a)) <= 10.0 + 1e-6
    assert np.all(np.diff(brow) >= -1e-12) and np.max(brow) <= 0.35
    assert brow[-1] == pytest.approx(0.35, abs=1e-6)  # AU01 5 -> 0.35 = the joint's max


def test_per_joint_caps_of_the_config(config):
    r = Retargeter(config, RetargetParams(max_velocity=10.0, max_acceleration=1000.0, smoothing=0.0))
    out, _ = run(r, [{"head_yaw": 0.6, "AU01": 5.0}] * 60)
    neck = np.diff(out[:, r.joints.index("neck_yaw")]) / 0.01
    brow = np.diff(out[:, r.joints.index("brow_inner_left")]) / 0.01
    assert np.max(np.abs(neck)) <= config.constraints.velocity["neck_yaw"] + 1e-9
    assert np.max(np.abs(brow)) > config.constraints.velocity["neck_yaw"]


def test_per_joint_dynamics_replace_the_global_ones_up_to_the_servo_maximum():
    """A joint's constraints entry applies even above the global cap (fast lids), a joint without one
    has the global cap, and no joint is asked to move faster than its servo model can."""
    def edit(d):
        global_caps(d, "brow_inner_left", "brow_outer_left")
        d["constraints"]["velocity"].update(upper_lid_left=50.0, brow_inner_left=0.5)
        d["constraints"]["acceleration"].update(upper_lid_left=5000.0)
        d["constraints"]["smoothing"] = {"upper_lid_left": 0.0, "lower_lid_left": 0.2}
    config = config_with(edit)
    r = Retargeter(config, RetargetParams(max_velocity=1.0, max_acceleration=10.0, smoothing=0.03))
    lid, brow, outer = (r.joints.index(j) for j in ("upper_lid_left", "brow_inner_left", "brow_outer_left"))
    assert r.limits.vmax[lid] == pytest.approx(config.servo("upper_lid_left").spec.max_velocity)  # 38.85 rad/s
    assert r.limits.vmax[brow] == 0.5 and r.limits.vmax[outer] == 1.0
    assert r.limits.amax[lid] == 5000.0 and r.limits.amax[brow] == 10.0
    out, _ = run(r, [{"AU45_L": 5.0, "AU01": 5.0, "AU02": 5.0}] * 60)
    speed = np.abs(np.diff(np.vstack([r.neutral, out]), axis=0)) / 0.01
    assert speed[:, lid].max() == pytest.approx(r.limits.vmax[lid]) and out[8, lid] > 0.7  # shut in 90 ms
    assert speed[:, brow].max() <= 0.5 + 1e-9 and speed[:, outer].max() <= 1.0 + 1e-9


def test_per_joint_smoothing():
    """No smoothing on a joint with 0 (its target is reached as fast as its limits allow), the
    global time constant on joints without an entry, its own on a joint with one."""
    config = config_with(lambda d: d["constraints"].update(smoothing={"brow_inner_left": 0.0, "brow_outer_left": 0.5}))
    r = Retargeter(config, RetargetParams(smoothing=0.1, max_velocity=100.0, max_acceleration=1e6))
    out, _ = run(r, [{"AU01": 2.0, "AU02": 2.0}] * 10)  # 0.1 s; targets 0.14 rad
    j = {name: out[-1, i] for i, name in enumerate(r.joints)}
    assert j["brow_inner_left"] == pytest.approx(0.14)
    assert j["brow_inner_right"] == pytest.approx(0.14 * (1.0 - math.exp(-1.0)), rel=0.1)
    assert j["brow_outer_left"] == pytest.approx(0.14 * (1.0 - math.exp(-0.2)), rel=0.1)
    with pytest.raises(Exception, match="constraints.smoothing.jaw"):
        config_with(lambda d: d["constraints"].update(smoothing={"jaw": -0.1}))


def test_long_gap_restarts_from_rest(config):
    r = Retargeter(config, RetargetParams(max_velocity=1.0, max_acceleration=10.0, face_lost_timeout=100.0))
    out, t = run(r, [{"AU26": 5.0}] * 3)
    before = out[-1][r.joints.index("jaw")]
    after = r.update(t + 60.0, {"AU26": 5.0})["jaw"]
    assert 0.0 < after - before <= 10.0 * MAX_STEP * MAX_STEP + 1e-12


def test_face_lost_holds_then_glides_to_neutral(config):
    p = RetargetParams(max_velocity=10.0, neutral_velocity=0.5, face_lost_timeout=0.3, smoothing=0.0)
    r = Retargeter(config, p)
    held, t = run(r, [{"AU26": 5.0, "AU12_L": 5.0, "AU12_R": 5.0}] * 60, dt=0.05)
    jaw = r.joints.index("jaw")
    assert held[-1][jaw] > 0.1
    out, t = run(r, [None] * 4, dt=0.05, t=t)  # 0.2 s: within the timeout the expression holds
    np.testing.assert_allclose(out, np.repeat(held[-1:], 4, axis=0), atol=1e-9)
    out, _ = run(r, [None] * 80, dt=0.05, t=t)
    positions = out[:, jaw]
    assert np.all(np.diff(positions) <= 1e-12)
    assert np.all(np.abs(np.diff(positions)) <= 0.5 * 0.05 + 1e-9)
    np.testing.assert_allclose(out[-1], [s.neutral for s in config.servos], atol=1e-9)


def test_bad_input_holds_its_joints_then_they_glide(config):
    p = RetargetParams(face_lost_timeout=0.3, smoothing=0.0)
    r = Retargeter(config, p)
    out, t = run(r, [{"AU26": 3.0, "AU12_L": 2.0, "AU12_R": 2.0}] * 50, dt=0.02)
    jaw, lip = r.joints.index("jaw"), r.joints.index("lip_corner_left")
    out, t = run(r, [{"AU26": math.nan, "AU12_L": 4.0, "AU12_R": 4.0}] * 10, dt=0.02, t=t)
    held = 3.0 * config.mapping["jaw"].weights["AU26"]
    assert out[-1][jaw] == pytest.approx(held, abs=1e-6), "NaN: the jaw holds its last target"
    assert out[-1][lip] > 0.2
    out, _ = run(r, [{"AU26": math.inf, "AU12_L": 4.0, "AU12_R": 4.0}] * 100, dt=0.02, t=t)
    assert out[-1][jaw] == pytest.approx(0.0, abs=1e-9), "still bad after the timeout: glide to neutral"
    assert out[-1][lip] == pytest.approx(0.10 * 4.0, abs=1e-6)


def test_couplings_keep_the_lids_apart_and_the_jaw_with_the_lips(config):
    r = Retargeter(config, RetargetParams(smoothing=0.0))
    frame = {"AU45_L": 5.0, "AU45_R": 5.0, "AU26": 5.0, "AU25": 5.0, "AU12_L": 5.0, "AU12_R": 5.0}
    out, _ = run(r, [frame] * 100, dt=0.02)
    j = {name: out[:, i] for i, name in enumerate(r.joints)}
    assert np.all(j["upper_lid_left"] - j["lower_lid_left"] <= 1.0 + 1e-9)
    assert np.all(j["jaw"] + 0.5 * j["lip_corner_left"] <= 0.6 + 1e-9)
    assert j["upper_lid_left"][-1] - j["lower_lid_left"][-1] == pytest.approx(1.0, abs=1e-6)
    assert j["jaw"][-1] + 0.5 * j["lip_corner_left"][-1] == pytest.approx(0.6, abs=1e-6)


def test_steps_that_do_not_advance_time_move_nothing(config):
    r = Retargeter(config, RetargetParams())
    run(r, [{"AU26": 5.0}] * 3)
    before = r.command
    assert r.update(0.02, {"AU26": 0.0}) == before
    assert r.tick(0.03) == before


def test_bad_params_refused(config):
    r = Retargeter(config, RetargetParams())
    for changes, name in [({"max_velocity": 0.0}, "max_velocity"), ({"max_acceleration": -1.0}, "max_acceleration"),
                          ({"face_lost_timeout": math.nan}, "face_lost_timeout"), ({"smoothing": -0.1}, "smoothing"),
                          ({"gains.AU26": -1.0}, "gains.AU26"), ({"gains.AU99": 1.0}, "gains.AU99")]:
        with pytest.raises(ValueError, match=name):
            r.set_params(with_changes(r.params, changes))
    assert r.params == RetargetParams(), "a refused change changes nothing"
    with pytest.raises(ValueError, match="neutral_velocity"):
        Retargeter(config, RetargetParams(neutral_velocity=math.inf))


def test_frame_channels_join_head_pose_and_gaze_of_the_frame():
    frames = FrameChannels()
    assert [f.channels for f in frames.action_units(10, [], [])] == [None], "empty action units = no face"
    with pytest.raises(ValueError, match="2 names but 1 values"):
        frames.action_units(20, ["AU01", "AU02"], [1.0])
    quaternion = matrix_to_quaternion(FACING_CAMERA @ rotation((0, 0, 1), 0.3))
    assert frames.head_pose(1_000_000_000, quaternion) == []
    assert frames.gaze(1_000_000_000, 0.1, -0.2) == []
    (out,) = frames.action_units(1_000_000_000, ["AU12"], [2.0])
    assert out.channels["AU12"] == 2.0 and out.channels["head_yaw"] == pytest.approx(0.3)
    assert out.channels["gaze_pitch"] == -0.2
    # the next frame waits for its own pose and gaze, whichever comes first
    assert frames.action_units(1_033_000_000, ["AU12"], [3.0], arrival=5.0) == []
    assert frames.gaze(1_033_000_000, 0.0, 0.0) == []
    (out,) = frames.head_pose(1_033_000_000, matrix_to_quaternion(FACING_CAMERA))
    assert out.channels["head_yaw"] == pytest.approx(0.0) and out.channels["AU12"] == 3.0
    # a frame whose parts never come: released by expiry or by the next frame, without them
    assert frames.action_units(1_066_000_000, ["AU12"], [4.0], arrival=6.0) == []
    assert frames.expire(6.05, 0.1) == []
    (late,) = frames.expire(6.2, 0.1)
    assert "head_yaw" not in late.channels
    assert frames.head_pose(1_066_000_000, quaternion) == [], "too late: never released twice"
    frames.head_pose(3_000_000_000, (0.0, 0.0, 0.0, 0.0))
    frames.action_units(3_000_000_000, ["AU12"], [2.0])
    (out,) = frames.flush()
    assert "head_yaw" not in out.channels, "degenerate pose dropped"


def rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def matrix_to_quaternion(m):
    w = math.sqrt(max(0.0, 1 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
    return ((m[2, 1] - m[1, 2]) / (4 * w), (m[0, 2] - m[2, 0]) / (4 * w), (m[1, 0] - m[0, 1]) / (4 * w), w)


@pytest.mark.parametrize("head_axis, index", [((0, 0, 1), 0), ((0, 1, 0), 1), ((1, 0, 0), 2)])
def test_head_angles_in_the_head_frame(head_axis, index):
    # a rotation about the head's own axis (z up: yaw, y left: pitch, x forward: roll)
    for angle in (-0.4, 0.25):
        r = FACING_CAMERA @ rotation(head_axis, angle)
        angles = head_angles(quaternion_to_matrix(matrix_to_quaternion(r)))
        expected = [0.0, 0.0, 0.0]
        expected[index] = angle
        assert angles == pytest.approx(expected, abs=1e-9)


def test_turning_to_own_left_is_positive_yaw():
    # the person turns to their left: their nose (head x) swings toward the camera's +x (image right)
    r = FACING_CAMERA @ rotation((0, 0, 1), 0.3)
    nose_in_camera = r @ np.array([1.0, 0.0, 0.0])
    assert nose_in_camera[0] > 0 and head_angles(r)[0] > 0


def test_degenerate_quaternion_refused():
    with pytest.raises(ValueError):
        quaternion_to_matrix((0, 0, 0, 0))
