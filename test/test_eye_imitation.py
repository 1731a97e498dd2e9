"""The robot's eyes and lip corners on real video through the offline re-run (the shipped perception,
retargeting and robot config): each lid follows its own (mirrored) eye, blinks close the lids in
time, wide eyes open them; each lip corner follows its own (mirrored) side. The person's eye closure
and lip corner heights come from the landmarks (lid gaps, corner lifts), not from the AUs."""
from __future__ import annotations

from typing import Dict

import numpy as np
import pytest

from humimic_core.head_frame import quaternion_to_matrix
from humimic_core.paths import config_file, shared_media_dir
from humimic_core.robot_config import load_robot_config
from humimic_experiments.bag_io import deserialize, read_messages
from humimic_experiments.rerun import rerun
from humimic_experiments.session import stamp_ns
from humimic_perception.action_units import INDEX, measure

CONFIG = load_robot_config(config_file("robot_face.yaml"))
#: Mirror image: the robot's left lid follows the person's right eye.
LID_OF_EYE = {"R": "upper_lid_left", "L": "upper_lid_right"} if CONFIG.mapping.mirror else \
    {"R": "upper_lid_right", "L": "upper_lid_left"}
CLOSED = {s.joint: s.max for s in CONFIG.servos}
CORNER_OF_SIDE = {"R": "lip_corner_left", "L": "lip_corner_right"} if CONFIG.mapping.mirror else \
    {"R": "lip_corner_right", "L": "lip_corner_left"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Dict[str, Dict[str, np.ndarray]]:
    """Per clip name: the person's closure of each eye ("R", "L": 1 - lid gap / the clip's median
    gap, NaN without a face), each lip corner's lift ("corner_R", "corner_L": IOD over the clip's
    median) and each joint's command, one row per frame."""
    cache: Dict[str, Dict[str, np.ndarray]] = {}

    def get(name: str) -> Dict[str, np.ndarray]:
        if name not in cache:
            path = shared_media_dir() / name
            if not path.is_file():
                pytest.skip(f"../shared/media absent: {path} not found")
            out = tmp_path_factory.mktemp(name.split(".")[0])
            rerun(path, out, write_images=False, driver=False)  # the commands are measured
            cache[name] = _eyes_and_joints(out)
        return cache[name]

    return get


def _eyes_and_joints(bag) -> Dict[str, np.ndarray]:
    clouds, poses, commands = {}, {}, {}
    for m in read_messages(bag, ["/face/landmarks", "/face/head_pose", "/joint_commands"]):
        msg = deserialize(m)
        if m.topic == "/face/landmarks":
            clouds[stamp_ns(msg)] = np.frombuffer(bytes(msg.data), dtype="<f4").reshape(-1, 3).astype(float)
        elif m.topic == "/face/head_pose":
            q = msg.pose.orientation
            poses[stamp_ns(msg)] = quaternion_to_matrix((q.x, q.y, q.z, q.w))
        else:
            commands[stamp_ns(msg)] = dict(zip(msg.name, msg.position))
    stamps = sorted(commands)
    names = ("lid_gap_R", "lid_gap_L", "corner_lift", "corner_tilt")
    measured = np.full((len(stamps), len(names)), np.nan)
    for i, stamp in enumerate(stamps):
        if stamp in clouds and stamp in poses:
            measured[i] = measure(clouds[stamp], poses[stamp])[[INDEX[name] for name in names]]
    closure = 1.0 - measured[:, :2] / np.nanmedian(measured[:, :2], axis=0)
    lift, tilt = (measured[:, 2:] - np.nanmedian(measured[:, 2:], axis=0)).T
    out = {"R": closure[:, 0], "L": closure[:, 1], "corner_R": lift + tilt, "corner_L": lift - tilt}
    out.update({joint: np.array([commands[s][joint] for s in stamps]) for joint in CLOSED})
    return out


def _peaks(closure: np.ndarray, level: float) -> list:
    """Frames where the closure peaks above ``level`` (the highest frame of each run above it)."""
    above = np.nan_to_num(closure) > level
    peaks, start = [], None
    for i, up in enumerate(np.append(above, False)):
        if up and start is None:
            start = i
        elif not up and start is not None:
            peaks.append(start + int(np.argmax(closure[start:i])))
            start = None
    return peaks


def test_a_wink_closes_only_the_lid_of_the_closed_eye(clips):
    """synthetic_winks_woman: the person's right eye alone shut 36-39, the left alone 86-91."""
    clip = clips("synthetic_winks_woman.mp4")
    for eye, other, (start, stop) in (("R", "L", (36, 40)), ("L", "R", (86, 92))):
        assert np.nanmax(clip[eye][start:stop]) > 0.7 and np.nanmax(clip[other][start:stop]) < 0.5, "the clip's wink"
        closing, staying = LID_OF_EYE[eye], LID_OF_EYE[other]
        window = slice(start, stop + 2)
        assert clip[closing][window].max() > 0.7 * CLOSED[closing], (eye, clip[closing][window])
        assert clip[staying][window].max() < 0.4 * CLOSED[staying], (eye, clip[staying][window])


def test_blinks_close_the_lids_within_two_frames_of_the_eyes(clips):
    """speech_browraise_frown_blinks_woman (blinks 30, 36-39, 76, 86-90, 125, 138-140): at most two
    frames after each eye's closure peaks, its lid has covered 80 % of its closing range."""
    clip = clips("speech_browraise_frown_blinks_woman.mp4")
    depths = []
    for eye, lid in LID_OF_EYE.items():
        for peak in _peaks(clip[eye], 0.8):
            depths.append(clip[lid][peak:peak + 3].max() / CLOSED[lid])
    assert len(depths) >= 10, depths
    assert np.mean(np.array(depths) >= 0.8) >= 0.8, np.round(depths, 2)


def test_wide_eyes_open_the_lids_beyond_neutral(clips):
    """expressive_gaze_squint_tongue: eyes wide with brows raised around frames 84, 126 and 252."""
    clip = clips("expressive_gaze_squint_tongue.mp4")
    for lid in LID_OF_EYE.values():
        neutral = CONFIG.servo(lid).neutral
        typical = np.median(clip[lid])
        for frame in (84, 126, 252):
            widest = clip[lid][frame - 6:frame + 7].min()
            assert widest < neutral - 0.15 and widest < typical - 0.05, (lid, frame, widest, typical)


def test_each_lip_corner_follows_its_own_side(clips):
    """expressive_gaze_squint_tongue twists her lips (e.g. 586, 622, 640: her right corner up, her
    left down): where one corner sits at least 0.04 IOD higher than the other (against their rest),
    the robot's corner imitating it (the other side's under the mirror) is the higher one (both corners
    answered one AU12 before: the same angle on both sides)."""
    clip = clips("expressive_gaze_squint_tongue.mp4")
    person = clip["corner_R"] - clip["corner_L"]
    robot = clip[CORNER_OF_SIDE["R"]] - clip[CORNER_OF_SIDE["L"]]
    twisted = np.abs(np.nan_to_num(person)) > 0.04
    agree = np.sign(robot[twisted]) == np.sign(person[twisted])
    assert twisted.sum() >= 20 and agree.mean() >= 0.8, (twisted.sum(), agree.mean())
    assert np.abs(robot[twisted]).mean() > 0.05, np.abs(robot[twisted]).mean()
    for frame in (586, 622, 640):
        assert robot[frame - 2:frame + 6].max() > 0.05, (frame, robot[frame - 2:frame + 6])
