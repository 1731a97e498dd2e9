"""Paired samples for fitting a mapping: a person's channels with the robot's joint angles.

Sources:
  JSONL   one object per line: {"channels": {name: value}, "joints": {name: rad}, ...} (what
          pose playback records; other keys are kept out of the fit)
  CSV     a header naming channels (AU01, head_yaw, ...) and joints; other columns are ignored
  rosbag2 a bag folder or a folder of bag segments: each /face/action_units frame with a face,
          joined with that frame's /face/head_pose and /face/gaze (as the retarget node does),
          paired with the joint state (default /joint_states) nearest in stamp within ``max_age``

Channels and joints that appear in at least half of the samples are kept; samples lacking one
of them, or holding NaN/inf, are dropped (and counted).
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np

from humimic_core.channels import is_channel
from humimic_core.topics import ACTION_UNITS, GAZE, HEAD_POSE, JOINT_STATES, absolute
from humimic_experiments.bag_io import deserialize, read_messages
from humimic_experiments.session import stamp_ns
from humimic_retarget.frame_channels import FrameChannels

Row = Tuple[Dict[str, float], Dict[str, float]]


@dataclass
class PairedData:
    channels: List[str]
    joints: List[str]
    x: np.ndarray  # [N, channels]
    y: np.ndarray  # [N, joints], rad
    dropped: int = 0


def jsonl_line(channels: Mapping[str, float], joints: Mapping[str, float], **extra: object) -> str:
    """One JSONL sample (no newline)."""
    return json.dumps({**extra, "channels": dict(channels), "joints": dict(joints)})


def read_jsonl(path: Path) -> List[Row]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            rows.append(({str(k): float(v) for k, v in obj["channels"].items()},
                         {str(k): float(v) for k, v in obj["joints"].items()}))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{n}: expected {{\"channels\": {{...}}, \"joints\": {{...}}}}: {exc}") from None
    return rows


def read_csv(path: Path, robot_joints: Sequence[str]) -> List[Row]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        channels = [c for c in columns if is_channel(c)]
        joints = [c for c in columns if c in robot_joints]
        if not channels or not joints:
            raise ValueError(f"{path}: the header must name channels (AU01, head_yaw, ...) and robot joints; "
                             f"found channels {channels}, joints {joints}")
        rows = []
        for n, record in enumerate(reader, 2):
            try:
                rows.append(({c: float(record[c]) for c in channels if record[c] not in ("", None)},
                             {j: float(record[j]) for j in joints if record[j] not in ("", None)}))
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: {exc}") from None
    return rows


def read_rosbag(path: Path, joint_topic: str = absolute(JOINT_STATES), max_age: float = 0.1) -> List[Row]:
    events, states = [], []
    for m in read_messages(path, [absolute(ACTION_UNITS), absolute(HEAD_POSE), absolute(GAZE), joint_topic]):
        msg = deserialize(m)
        stamp = stamp_ns(msg)
        if m.topic == joint_topic:
            states.append((stamp, dict(zip(msg.name, (float(p) for p in msg.position)))))
        else:
            events.append((stamp, int(m.topic == absolute(ACTION_UNITS)), m.topic, msg))
    if not states:
        raise ValueError(f"{path}: no {joint_topic} messages to pair with")
    states.sort(key=lambda s: s[0])
    times = np.array([s for s, _ in states])
    frames = FrameChannels()
    rows = []
    released = []
    for stamp, _, topic, msg in sorted(events, key=lambda e: e[:2]):  # a frame's pose and gaze before its AUs
        if topic == absolute(HEAD_POSE):
            q = msg.pose.orientation
            released += frames.head_pose(stamp, (q.x, q.y, q.z, q.w))
        elif topic == absolute(GAZE):
            released += frames.gaze(stamp, msg.vector.x, msg.vector.y)
        else:
            released += frames.action_units(stamp, list(msg.name), list(msg.position))
    for frame in released + frames.flush():
        i = int(np.argmin(np.abs(times - frame.stamp)))
        if frame.channels is not None and abs(times[i] - frame.stamp) <= max_age * 1e9:
            rows.append((frame.channels, states[i][1]))
    return rows


def paired(rows: Iterable[Row], robot_joints: Sequence[str]) -> PairedData:
    rows = list(rows)
    if not rows:
        raise ValueError("no samples")
    half = len(rows) / 2

    def common(names: Iterable[str]) -> List[str]:
        counts: Dict[str, int] = {}
        for name in names:
            counts[name] = counts.get(name, 0) + 1
        return sorted(n for n, k in counts.items() if k >= half)

    channels = common(c for ch, _ in rows for c in ch if is_channel(c))
    joints = [j for j in robot_joints if j in set(common(j for _, js in rows for j in js))]
    if not channels or not joints:
        raise ValueError(f"samples share no channels ({channels}) or no robot joints ({joints})")
    x, y = [], []
    for ch, js in rows:
        try:
            xs, ys = [ch[c] for c in channels], [js[j] for j in joints]
        except KeyError:
            continue
        if all(math.isfinite(v) for v in xs + ys):
            x.append(xs)
            y.append(ys)
    if not x:
        raise ValueError(f"no sample has every channel {channels} and joint {joints}")
    return PairedData(channels, joints, np.array(x), np.array(y), len(rows) - len(x))


def load_paired(paths: Sequence[str | Path], robot_joints: Sequence[str], joint_topic: str = absolute(JOINT_STATES),
                max_age: float = 0.1) -> PairedData:
    """Samples of every source (JSONL, CSV or rosbag2 by what the path is), in order."""
    rows: List[Row] = []
    for path in map(Path, paths):
        if path.is_dir():
            rows += read_rosbag(path, joint_topic, max_age)
        elif path.suffix == ".jsonl":
            rows += read_jsonl(path)
        elif path.suffix == ".csv":
            rows += read_csv(path, robot_joints)
        elif path.exists():
            raise ValueError(f"{path}: not a .jsonl, .csv or rosbag2 folder")
        else:
            raise ValueError(f"{path}: no such file or folder")
    return paired(rows, robot_joints)
