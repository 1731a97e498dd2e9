"""Export a recorded session as an expression dataset: JSONL + images.

One record per camera frame with a face:
    {"image": "images/000042.jpg", "stamp_ns": ..., "action_units": {"AU01": 1.2, ...},
     "head": {"head_yaw": rad, ...}, "joint_commands": {joint: rad}, "joint_states": {joint: rad},
     "text": "inner brows raised 1/5, ..."}
`joint_commands` is the retarget output for that very frame (same stamp); `joint_states` is what
the servos reported last before the frame's command was written. The text follows
humimic_experiments.describe (vocabulary and granularity documented there).

    python -m humimic_experiments.dataset out/session --out out/dataset --levels 5
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Iterable, Iterator, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from humimic_core.head_frame import head_angles, quaternion_to_matrix
from humimic_core.topics import ACTION_UNITS, JOINT_COMMANDS, JOINT_STATES, absolute
from humimic_experiments.describe import describe
from humimic_experiments.session import as_mapping, load_session

DATASET_FILE = "dataset.jsonl"


def export_dataset(recording: str | Path, out: str | Path, levels: int = 5, threshold: float = 0.5,
                   words: bool = False, jpeg_quality: int = 95,
                   frames: Optional[Iterable[Tuple[int, np.ndarray]]] = None) -> int:
    """Write images/ and dataset.jsonl into `out`; returns the number of records. The images are the
    recording's /camera/image_raw, or `frames` ((stamp ns, BGR image) of its frames, e.g. decoded
    again from the video) when the recording holds none."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    session = load_session(recording)
    aus = as_mapping(session.series.get(absolute(ACTION_UNITS), []))
    commands = as_mapping(session.series.get(absolute(JOINT_COMMANDS), []))
    arrivals = {s.stamp: s.arrival for s in session.series.get(absolute(JOINT_COMMANDS), [])}
    poses = dict(session.head_pose)
    count = 0
    with open(out / DATASET_FILE, "w") as jsonl:
        images = ((stamp, img) for _, stamp, img in session.frames_of()) if frames is None else frames
        for stamp, img in tqdm(images, total=len(session.frames) or None, desc="dataset", unit="frame"):
            face = aus.get(stamp)
            if not face:
                continue
            head: Dict[str, float] = {}
            if stamp in poses:
                yaw, pitch, roll = head_angles(quaternion_to_matrix(poses[stamp]))
                head = {"head_yaw": yaw, "head_pitch": pitch, "head_roll": roll}
            name = f"images/{count:06d}.jpg"
            if not cv2.imwrite(str(out / name), img, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]):
                raise OSError(f"cannot write {out / name}")
            record = {
                "image": name, "stamp_ns": stamp, "action_units": face, "head": head,
                "joint_commands": commands.get(stamp, {}),
                "joint_states": session.state_at(absolute(JOINT_STATES), arrivals.get(stamp, stamp)) or {},
                "text": describe(face, levels, threshold, words, head),
            }
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
    args = parser.parse_args(argv)
    n = export_dataset(args.recording, args.out, args.levels, args.threshold, args.words)
    print(f"humimic-dataset: {n} records in {Path(args.out) / DATASET_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
