"""Visual fidelity: the person's face against the robot's face, both as the project's own perception
sees them (the robot's: the face twin rendering the robot's joints of each frame, read by a second,
identically configured perception).

Per frame of a recording (a re-run of humimic_experiments.rerun), the robot's joints are rendered
by the face twin (humimic_perception.sim.face_twin) and perceived; the person's raw facial geometry
(humimic_experiments.kinematic.geometry) is then correlated with the same geometry of the robot's
face, signal by signal (under the mirror the robot's right side answers the person's left, and
lateral signals change sign), and the person's action units with the robot's. Pearson r at lag 0
and the best r where the robot follows (lag 0..max_lag frames, never negative); the per-side
signals of a group are pooled (each side's series centred on its own mean). A side-by-side video
(person | robot face) shows each clip.

A live recording with the robot-face camera on (or the twin) already holds the robot face's
perception (/robot_face/face/...): ``recorded_fidelity`` reads it, on the robot face's own stamps
(the joint states it shows), interpolated onto the person's frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from humimic_core.channels import CODES
from humimic_core.head_frame import quaternion_to_matrix
from humimic_core.robot_config import RobotConfig
from humimic_core.topics import ACTION_UNITS, CAMERA_IMAGE, HEAD_POSE, LANDMARKS, ROBOT_FACE, absolute
from humimic_experiments import kinematic
from humimic_experiments.bag_io import deserialize, read_messages
from humimic_experiments.session import cloud_points, stamp_ns

#: the robot face's camera (or twin) images and its perception in a recording
ROBOT_IMAGE, ROBOT_ACTION_UNITS, ROBOT_LANDMARKS, ROBOT_HEAD_POSE = (
    absolute(f"{ROBOT_FACE}/{t}") for t in (CAMERA_IMAGE, ACTION_UNITS, LANDMARKS, HEAD_POSE))

#: group -> the person's signals in it (the robot's are their mirror images under the mirror)
GROUPS: Dict[str, Tuple[str, ...]] = {
    "jaw": ("mouth_open",), "lids": ("eye_aperture_R", "eye_aperture_L"), "lip corners": ("lip_corner_R", "lip_corner_L"),
    "brows": ("brow_inner_R", "brow_inner_L", "brow_outer_R", "brow_outer_L"), "eye yaw": ("iris_yaw",),
    "eye pitch": ("iris_pitch",), "neck yaw": ("head_yaw",), "neck pitch": ("head_pitch",), "neck roll": ("head_roll",),
}
#: the action units compared (each AU of channels.CODES the robot can show)
AUS = ("AU01", "AU02", "AU04", "AU05", "AU12", "AU15", "AU25", "AU26", "AU45")

Segments = Dict[str, List[Tuple[np.ndarray, np.ndarray]]]


@dataclass
class RobotFace:
    """The robot's face over a recording's frames: landmarks (T, 478, 3) and head rotations (T, 3, 3)
    as perceived (NaN where no face was found), and action units (T, len(CODES))."""

    points: np.ndarray
    rotations: np.ndarray
    action_units: np.ndarray


def twin_from_parameters(params_file: str | Path, config: RobotConfig):
    """The face twin as the ``face_twin`` node builds it from a parameter file (its neutral face)."""
    from humimic_core.parameters import node_parameters
    from humimic_perception.sim.face_twin import FaceTwin
    from humimic_perception.sim.neutral_face import prepare

    params = node_parameters(params_file, "face_twin")
    return FaceTwin(prepare(str(params.get("neutral_face", "")), int(params.get("neutral_frame", 0)),
                            int(params.get("size", 512))), config.servos)


def watch_robot(positions: Mapping[str, np.ndarray], frames: int, twin, perception, fov_deg: float = 60.0,
                frame_seconds: float = 1 / 30, on_image: Optional[Callable[[int, np.ndarray], None]] = None
                ) -> RobotFace:
    """Render the robot's joints of each frame (NaN: joint at neutral) and perceive the render."""
    from humimic_perception.intrinsics import Intrinsics

    size = twin.face.size
    intrinsics = Intrinsics.from_fov(size, size, fov_deg)
    points = np.full((frames, kinematic.MESH_POINTS, 3), np.nan)
    rotations = np.full((frames, 3, 3), np.nan)
    aus = np.full((frames, len(CODES)), np.nan)
    for i in range(frames):
        pose = {j: float(v[i]) for j, v in positions.items() if np.isfinite(v[i])}
        image = twin.render(pose)
        if on_image is not None:
            on_image(i, image)
        result = perception.process(image, intrinsics, i * frame_seconds)
        if result.face:
            points[i], rotations[i] = result.points[:kinematic.MESH_POINTS], result.head_pose.rotation
            aus[i] = [result.action_units[c] for c in CODES]
    return RobotFace(points, rotations, aus)


def action_units(path: str | Path, topic: str) -> Dict[int, Dict[str, float]]:
    """stamp -> AU values of a recording's action-unit topic (empty: no face)."""
    return {stamp_ns(msg): dict(zip(msg.name, msg.position))
            for msg in (deserialize(m) for m in read_messages(path, [topic]))}


def au_rows(by_stamp: Mapping[int, Mapping[str, float]], stamps: np.ndarray) -> np.ndarray:
    """(T, len(CODES)) AU values on ``stamps`` (NaN: no face)."""
    return np.array([[by_stamp.get(int(s), {}).get(c, np.nan) for c in CODES] for s in stamps], float)


def person_action_units(path: str | Path, stamps: np.ndarray) -> np.ndarray:
    """(T, len(CODES)) of the recording's /face/action_units on its frame stamps (NaN: no face)."""
    return au_rows(action_units(path, absolute(ACTION_UNITS)), stamps)


def resample(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``values`` (T, ...) at ascending ``times`` linearly interpolated onto ``at``: NaN outside
    their span and next to a NaN sample (no face then), so no gap is bridged."""
    flat = values.reshape(len(times), -1)
    out = np.full((len(at), flat.shape[1]), np.nan)
    if len(times):
        inside = (at >= times[0]) & (at <= times[-1])
        for k in range(flat.shape[1]):
            out[inside, k] = np.interp(at[inside], times, flat[:, k])
    return out.reshape((len(at),) + values.shape[1:])


def recorded_robot_face(path: str | Path, stamps: np.ndarray) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """The robot face's geometry signals and action units as the recording's robot-face perception
    saw them, on ``stamps`` (the person's frames; NaN where the robot face was not seen around them)."""
    clouds, poses = {}, {}
    for m in read_messages(path, [ROBOT_LANDMARKS, ROBOT_HEAD_POSE]):
        msg = deserialize(m)
        if m.topic == ROBOT_LANDMARKS:
            clouds[stamp_ns(msg)] = cloud_points(msg)
        else:
            q = msg.pose.orientation
            poses[stamp_ns(msg)] = quaternion_to_matrix((q.x, q.y, q.z, q.w))
    by_stamp = action_units(path, ROBOT_ACTION_UNITS)
    times = np.array(sorted(set(by_stamp) | set(clouds)), np.int64)  # every robot-face frame, with a face or not
    points = np.full((len(times), kinematic.MESH_POINTS, 3), np.nan)
    rotations = np.full((len(times), 3, 3), np.nan)
    for i, stamp in enumerate(times.tolist()):
        if stamp in poses and len(clouds.get(stamp, ())) >= kinematic.MESH_POINTS:
            points[i], rotations[i] = clouds[stamp][:kinematic.MESH_POINTS], poses[stamp]
    geometry = {k: resample(times, v, stamps) for k, v in kinematic.geometry(points, rotations).items()}
    return geometry, resample(times, au_rows(by_stamp, times), stamps)


def recorded_fidelity(path: str | Path, recording, mirror: bool, max_lag_s: float) -> Dict[str, Dict[str, float]]:
    """Visual fidelity of a live recording (humimic_experiments.evaluate.Recording of it) from its
    own robot-face perception: per group and AU, r at lag 0 and the best r where the robot follows."""
    robot, robot_aus = recorded_robot_face(path, recording.stamps)
    person = kinematic.geometry(recording.points[:, :kinematic.MESH_POINTS], recording.rotations)
    max_lag = int(round(max_lag_s * recording.fps)) if np.isfinite(recording.fps) else 0
    found = segments(person, robot, person_action_units(path, recording.stamps), robot_aus, mirror)
    return correlations(found, max_lag)


def _robot_signal(signal: str, mirror: bool) -> Tuple[str, float]:
    if not mirror:
        return signal, 1.0
    pair = kinematic.mirror_pair(kinematic.Pair("", "", signal, 1.0))
    return pair.signal, pair.sign


def segments(person: Mapping[str, np.ndarray], robot: Mapping[str, np.ndarray], person_aus: np.ndarray,
             robot_aus: np.ndarray, mirror: bool) -> Segments:
    """Per group and per AU: (person, robot) series pairs."""
    out: Segments = {}
    for group, signals in GROUPS.items():
        out[group] = []
        for signal in signals:
            name, sign = _robot_signal(signal, mirror)
            out[group].append((person[signal], sign * robot[name]))
    for code in AUS:
        i = CODES.index(code)
        out[code] = [(person_aus[:, i], robot_aus[:, i])]
    return out


def correlations(found: Segments, max_lag: int) -> Dict[str, Dict[str, float]]:
    return {name: kinematic.follow_correlation(pairs, max_lag).as_dict() for name, pairs in found.items()}


def measure(recording, recording_path: str | Path, config: RobotConfig, twin, perception, mirror: bool,
            max_lag: int, video: Optional[Path] = None, person_frames: Optional[Callable[[], object]] = None
            ) -> Tuple[Dict[str, Dict[str, float]], Segments]:
    """The visual fidelity of one recording (humimic_experiments.evaluate.Recording); with ``video``
    (and ``person_frames``, an iterator of the person's BGR frames) the side-by-side video too."""
    frames = len(recording.stamps)
    joints = {j: recording.positions[j] for j in config.joint_names if j in recording.positions}
    writer, person_iter = None, None
    if video is not None and person_frames is not None:
        person_iter = iter(person_frames())

    def on_image(i: int, robot_image: np.ndarray) -> None:
        nonlocal writer
        person_image = next(person_iter, None)
        if person_image is None:
            return
        h = robot_image.shape[0]
        scaled = cv2.resize(person_image, (round(person_image.shape[1] * h / person_image.shape[0]), h))
        pair = np.hstack([scaled, robot_image])
        if writer is None:
            video.parent.mkdir(parents=True, exist_ok=True)
            writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), float(recording.fps or 30.0),
                                     (pair.shape[1], pair.shape[0]))
        writer.write(pair)

    step = 1.0 / recording.fps if np.isfinite(recording.fps) else 1 / 30
    robot = watch_robot(joints, frames, twin, perception, frame_seconds=step,
                        on_image=on_image if person_iter is not None else None)
    if writer is not None:
        writer.release()
    person = kinematic.geometry(recording.points[:, :kinematic.MESH_POINTS], recording.rotations)
    robot_signals = kinematic.geometry(robot.points, robot.rotations)
    found = segments(person, robot_signals, person_action_units(recording_path, recording.stamps),
                     robot.action_units, mirror)
    return correlations(found, max_lag), found


def pooled(results: Sequence[Segments], max_lag: int) -> Dict[str, Dict[str, float]]:
    merged: Segments = {}
    for found in results:
        for name, pairs in found.items():
            merged.setdefault(name, []).extend(pairs)
    return correlations(merged, max_lag)


def table(rows: Sequence[Tuple[str, Mapping[str, Mapping[str, float]]]]) -> List[List[str]]:
    """Rows of clip -> 'r / best r' per group and AU (the header first)."""
    names = list(GROUPS) + list(AUS)
    out = [["clip", *names]]
    for label, figures in rows:
        out.append([label] + [f"{figures[n]['r']:.2f} / {figures[n]['best_r']:.2f}" if np.isfinite(figures[n]["r"])
                              else "-" for n in names])
    return out
