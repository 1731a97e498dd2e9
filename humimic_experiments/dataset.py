"""Export a recorded session as an expression dataset: JSONL + images.

One record per camera frame with a face:
    {"image": "images/000042.jpg", "stamp_ns": ..., "action_units": {"AU01": 1.2, ...},
     "head": {"head_yaw": rad, ...}, "joint_commands": {joint: rad}, "joint_states": {joint: rad},
     "text": "inner brows raised 1/5, ...",
     "robot_face": {"image": "images/robot_000042.jpg", "source": "twin", "action_units": {...},
                    "head": {...}, "text": "jaw dropped 2/5, ..."}}
`joint_commands` is the retarget output for that very frame (same stamp); `joint_states` is what
the servos reported last before the frame's command was written. The text follows
humimic_experiments.describe (vocabulary and granularity documented there).

`robot_face` (the text+image pairs a lab would train expression generation on) is the robot's
face and the expression it shows, as the robot-face perception reads it, described as the
person's is: with a TwinCamera (``--robot-face twin``) the face twin renders the frame's joints (the servos'
states, else the commands) and a second perception reads the render; a recording made with the
robot-face camera or the twin on (/robot_face/camera/image_raw and its perception) gives the first
robot-face image stamped at or after the frame's command (source "camera"). Absent where the
robot's face was not seen.

    python -m humimic_experiments.dataset out/session --out out/dataset --levels 5 [--robot-face twin]
"""
from __future__ import annotations

import argparse
import bisect
import json
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from tqdm import tqdm

from humimic_core.head_frame import head_angles, quaternion_to_matrix
from humimic_core.paths import config_file
from humimic_core.robot_config import RobotConfig, load_robot_config
from humimic_core.topics import ACTION_UNITS, JOINT_COMMANDS, JOINT_STATES, absolute
from humimic_experiments.bag_io import deserialize, read_messages, topic_summary
from humimic_experiments.describe import describe
from humimic_experiments.session import Session, as_mapping, load_session, stamp_ns
from humimic_experiments.visual import ROBOT_ACTION_UNITS, ROBOT_HEAD_POSE, ROBOT_IMAGE, action_units

DATASET_FILE = "dataset.jsonl"
#: (BGR image or the name of its written file, AUs, head angles) of the robot's face
Shot = Tuple[Union[np.ndarray, str], Dict[str, float], Dict[str, float]]


def _angles(rotation: np.ndarray) -> Dict[str, float]:
    yaw, pitch, roll = head_angles(rotation)
    return {"head_yaw": yaw, "head_pitch": pitch, "head_roll": roll}


def _write(out: Path, name: str, image: np.ndarray, jpeg_quality: int) -> str:
    if not cv2.imwrite(str(out / name), image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]):
        raise OSError(f"cannot write {out / name}")
    return name


class TwinCamera:
    """The robot's face as the face twin shows its joints, read by a robot-face perception that
    first takes the twin's rest pose as its neutral face."""

    def __init__(self, twin, perception, fov_deg: float = 60.0) -> None:
        from humimic_perception.intrinsics import Intrinsics

        self.twin, self.perception = twin, perception
        self.intrinsics = Intrinsics.from_fov(twin.face.size, twin.face.size, fov_deg)
        rest = twin.render({})
        perception.recapture_neutral()
        for i in range(perception.aus.neutral_frames):
            perception.process(rest, self.intrinsics, i / 30.0)
        self.seconds = perception.aus.neutral_frames / 30.0

    def shot(self, joints: Mapping[str, float], seconds: float) -> Optional[Shot]:
        """The render of ``joints`` with the AUs and head angles perceived on it (None: no face)."""
        image = self.twin.render(joints)
        self.seconds = max(self.seconds + 1e-3, seconds)  # the filters need increasing stamps
        result = self.perception.process(image, self.intrinsics, self.seconds)
        if not result.face:
            return None
        return image, dict(result.action_units), _angles(result.head_pose.rotation)

    def close(self) -> None:
        self.perception.close()


def twin_camera(params_file: str | Path, config: RobotConfig) -> TwinCamera:
    """A TwinCamera as the graph's face twin and robot-face perception are set up in a parameter file."""
    from humimic_experiments.rerun import perception_from_parameters
    from humimic_experiments.visual import twin_from_parameters

    return TwinCamera(twin_from_parameters(params_file, config), perception_from_parameters(params_file)[0])


def recorded_shots(session: Session, wanted: Mapping[int, int], out: Path, jpeg_quality: int) -> Dict[int, Shot]:
    """The recording's robot-face images for ``wanted`` (frame stamp -> the time its command was
    sent): per frame, the first robot face stamped at or after that time, with its perception; each
    image is written once into ``out``/images."""
    aus = action_units(session.path, ROBOT_ACTION_UNITS)
    heads = {stamp_ns(m): _angles(quaternion_to_matrix([getattr(m.pose.orientation, a) for a in "xyzw"]))
             for m in (deserialize(b) for b in read_messages(session.path, [ROBOT_HEAD_POSE]))}
    seen = sorted(stamp for stamp, values in aus.items() if values)
    pick: Dict[int, List[int]] = {}
    for frame, sent in wanted.items():
        i = bisect.bisect_left(seen, sent)
        if i < len(seen):
            pick.setdefault(seen[i], []).append(frame)
    shots: Dict[int, Shot] = {}
    for _, stamp, image in session.frames_of(ROBOT_IMAGE):
        if stamp in pick:
            name = _write(out, f"images/robot_{len(shots):06d}.jpg", image, jpeg_quality)
            shots.update({frame: (name, aus[stamp], heads.get(stamp, {})) for frame in pick.pop(stamp)})
    return shots


def export_dataset(recording: str | Path, out: str | Path, levels: int = 5, threshold: float = 0.5,
                   words: bool = False, jpeg_quality: int = 95,
                   frames: Optional[Iterable[Tuple[int, np.ndarray]]] = None,
                   twin: Optional[TwinCamera] = None) -> int:
    """Write images/ and dataset.jsonl into `out`; returns the number of records. The images are the
    recording's /camera/image_raw, or `frames` ((stamp ns, BGR image) of its frames, e.g. decoded
    again from the video) when the recording holds none. Each record gets the robot's face from
    ``twin``, else from the recording's robot-face camera where it has one."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    session = load_session(recording)
    aus = as_mapping(session.series.get(absolute(ACTION_UNITS), []))
    commands = as_mapping(session.series.get(absolute(JOINT_COMMANDS), []))
    arrivals = {s.stamp: s.arrival for s in session.series.get(absolute(JOINT_COMMANDS), [])}
    poses = dict(session.head_pose)
    recorded: Dict[int, Shot] = {}
    if twin is None and ROBOT_IMAGE in topic_summary(recording):
        wanted = {stamp: arrivals.get(stamp, stamp) for stamp, values in aus.items() if values}
        recorded = recorded_shots(session, wanted, out, jpeg_quality)
    count = 0
    with open(out / DATASET_FILE, "w") as jsonl:
        images = ((stamp, img) for _, stamp, img in session.frames_of()) if frames is None else frames
        for stamp, img in tqdm(images, total=len(session.frames) or None, desc="dataset", unit="frame"):
            face = aus.get(stamp)
            if not face:
                continue
            head = _angles(quaternion_to_matrix(poses[stamp])) if stamp in poses else {}
            states = session.state_at(absolute(JOINT_STATES), arrivals.get(stamp, stamp)) or {}
            record: Dict[str, Any] = {
                "image": _write(out, f"images/{count:06d}.jpg", img, jpeg_quality), "stamp_ns": stamp,
                "action_units": face, "head": head,
                "joint_commands": commands.get(stamp, {}), "joint_states": states,
                "text": describe(face, levels, threshold, words, head),
            }
            shot = twin.shot(states or commands.get(stamp, {}), stamp * 1e-9) if twin else recorded.get(stamp)
            if shot is not None:
                robot_image, robot_aus, robot_head = shot
                if not isinstance(robot_image, str):
                    robot_image = _write(out, f"images/robot_{count:06d}.jpg", robot_image, jpeg_quality)
                record["robot_face"] = {
                    "image": robot_image, "source": "twin" if twin else "camera", "action_units": robot_aus,
                    "head": robot_head, "text": describe(robot_aus, levels, threshold, words, robot_head)}
            jsonl.write(json.dumps(record) + "\n")
            count += 1
    return count


def read_dataset(folder: str | Path) -> Iterator[Dict[str, object]]:
    """The records of an exported dataset, each with its image loaded under "pixels" (BGR)."""
    folder = Path(folder)
    with open(folder / DATASET_FILE) as f:
        for line in f:
            record = json.loads(line)
            pixels = cv2.imread(str(folder / record["image"]))
            if pixels is None:
                raise FileNotFoundError(f"{folder / record['image']} missing or unreadable")
            record["pixels"] = pixels
            yield record


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recording", help="recording folder (segments) or a rosbag2 bag folder")
    parser.add_argument("--out", required=True, help="dataset folder")
    parser.add_argument("--levels", type=int, default=5, help="intensity steps in the text (default 5: k/5)")
    parser.add_argument("--threshold", type=float, default=0.5, help="AU intensity below which it is not mentioned")
    parser.add_argument("--words", action="store_true", help="intensity in words (levels 2-5) instead of k/levels")
    parser.add_argument("--robot-face", choices=("twin", "recorded"), default="recorded",
                        help="the robot's face: the face twin rendering its joints, or the recording's robot-face "
                             "camera where it has one (default)")
    parser.add_argument("--params-file", default=str(config_file("humimic.yaml")),
                        help="node parameter file (the twin's neutral face, the robot-face perception)")
    parser.add_argument("--robot-config", default=str(config_file("robot_face.yaml")), help="robot config YAML")
    args = parser.parse_args(argv)
    twin = (twin_camera(args.params_file, load_robot_config(args.robot_config)) if args.robot_face == "twin"
            else None)
    try:
        n = export_dataset(args.recording, args.out, args.levels, args.threshold, args.words, twin=twin)
    finally:
        if twin is not None:
            twin.close()
    print(f"humimic-dataset: {n} records in {Path(args.out) / DATASET_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
