"""A recorded session as time series: what the metrics, the report and the dataset export read.

Loaded from a recording (humimic_experiments.bag_io) by topic name; camera images stay in the
bag and are streamed by `frames()` so a long session does not fill memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np

from humimic_core.topics import (
    ACTION_UNITS,
    FORECAST,
    CAMERA_IMAGE,
    GAZE,
    HEAD_POSE,
    JOINT_COMMANDS,
    JOINT_STATES,
    SELF_MODEL_STD,
    WRITTEN_GOALS,
    absolute,
)
from humimic_experiments.bag_io import BagMessage, deserialize, read_messages

JOINT_TOPICS = (absolute(ACTION_UNITS), absolute(FORECAST), absolute(JOINT_COMMANDS), absolute(WRITTEN_GOALS),
                absolute(JOINT_STATES), absolute(SELF_MODEL_STD))


def stamp_ns(msg) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


@dataclass(frozen=True)
class Sample:
    """One JointState-shaped message: arrival (bag) time, header stamp, name -> value."""

    arrival: int
    stamp: int
    values: Dict[str, float]


@dataclass
class Session:
    path: Path
    frames: List[Tuple[int, int]] = field(default_factory=list)  # (arrival, stamp) of camera images
    series: Dict[str, List[Sample]] = field(default_factory=dict)
    head_pose: List[Tuple[int, np.ndarray]] = field(default_factory=list)  # (stamp, quaternion xyzw)
    gaze: List[Tuple[int, float, float]] = field(default_factory=list)  # (stamp, yaw, pitch) from /face/gaze

    def arrivals(self) -> Dict[str, List[Tuple[int, int]]]:
        """topic -> [(arrival ns, stamp ns)] for latency metrics."""
        out = {absolute(CAMERA_IMAGE): list(self.frames)}
        for topic, samples in self.series.items():
            out[topic] = [(s.arrival, s.stamp) for s in samples]
        return out

    def curves(self, topic: str, by: str = "stamp") -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
        """channel -> (times s, values) of a JointState topic, timed by header stamp or arrival."""
        acc: Dict[str, Tuple[List[float], List[float]]] = {}
        for s in self.series.get(topic, []):
            t = (s.stamp if by == "stamp" else s.arrival) * 1e-9
            for name, value in s.values.items():
                ts, vs = acc.setdefault(name, ([], []))
                ts.append(t)
                vs.append(value)
        return {k: (np.asarray(t), np.asarray(v)) for k, (t, v) in acc.items()}

    def head_curves(self) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
        """head_yaw / head_pitch / head_roll (rad) over header-stamp time, from /face/head_pose."""
        from humimic_core.head_frame import head_angles, quaternion_to_matrix

        if not self.head_pose:
            return {}
        t = np.array([s * 1e-9 for s, _ in self.head_pose])
        angles = np.array([head_angles(quaternion_to_matrix(q)) for _, q in self.head_pose])
        return {name: (t, angles[:, i]) for i, name in enumerate(("head_yaw", "head_pitch", "head_roll"))}

    def human_curves(self) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
        """Every channel the person showed: AUs, head angles and gaze, over header-stamp time."""
        curves = {**self.curves(absolute(ACTION_UNITS)), **self.head_curves()}
        if self.gaze:
            t = np.array([s * 1e-9 for s, _, _ in self.gaze])
            curves["gaze_yaw"] = (t, np.array([y for _, y, _ in self.gaze]))
            curves["gaze_pitch"] = (t, np.array([p for _, _, p in self.gaze]))
        return curves

    def state_at(self, topic: str, arrival: int) -> Optional[Dict[str, float]]:
        """The latest sample of a topic that arrived at or before ``arrival``."""
        samples = self.series.get(topic, [])
        times = [s.arrival for s in samples]
        i = int(np.searchsorted(times, arrival, side="right")) - 1
        return samples[i].values if i >= 0 else None

    def frames_of(self, topic: str = absolute(CAMERA_IMAGE)) -> Iterator[Tuple[int, int, np.ndarray]]:
        """(arrival, stamp, BGR image) of every image on a topic, streamed from the bag."""
        for m in read_messages(self.path, [topic]):
            yield m.timestamp, stamp_ns(deserialize(m)), image_array(m)


def cloud_points(msg) -> np.ndarray:
    """The (N, 3) points of a face/landmarks PointCloud2 (x, y, z float32)."""
    fields = [(f.name, f.offset, f.datatype) for f in msg.fields]
    if fields != [("x", 0, 7), ("y", 4, 7), ("z", 8, 7)] or msg.point_step != 12 or msg.is_bigendian:
        raise ValueError(f"landmarks: expected x, y, z float32 points (12 bytes each), got {fields}")
    return np.frombuffer(np.asarray(msg.data, np.uint8).tobytes(), "<f4").reshape(-1, 3)


def image_array(message: BagMessage) -> np.ndarray:
    """A sensor_msgs/Image from the bag as a BGR uint8 array (bgr8, rgb8 and mono8 supported)."""
    msg = deserialize(message)
    data = np.asarray(msg.data, dtype=np.uint8)
    channels = {"bgr8": 3, "rgb8": 3, "mono8": 1}.get(msg.encoding)
    if channels is None:
        raise ValueError(f"image encoding {msg.encoding!r} not supported (bgr8, rgb8, mono8)")
    img = data.reshape(msg.height, msg.step)[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
    if msg.encoding == "rgb8":
        img = img[:, :, ::-1]
    elif channels == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


def load_session(path: str | Path) -> Session:
    """Read a recording's non-image topics into memory."""
    session = Session(Path(path))
    for m in read_messages(path, [absolute(CAMERA_IMAGE), absolute(HEAD_POSE), absolute(GAZE), *JOINT_TOPICS]):
        msg = deserialize(m)
        if m.topic == absolute(CAMERA_IMAGE):
            session.frames.append((m.timestamp, stamp_ns(msg)))
        elif m.topic == absolute(GAZE):
            session.gaze.append((stamp_ns(msg), float(msg.vector.x), float(msg.vector.y)))
        elif m.topic == absolute(HEAD_POSE):
            q = msg.pose.orientation
            session.head_pose.append((stamp_ns(msg), np.array([q.x, q.y, q.z, q.w])))
        else:
            values = {str(n): float(p) for n, p in zip(msg.name, msg.position)}
            session.series.setdefault(m.topic, []).append(Sample(m.timestamp, stamp_ns(msg), values))
    return session


def as_mapping(samples: List[Sample]) -> Mapping[int, Dict[str, float]]:
    """stamp -> values of a topic's samples (the last one wins for repeated stamps)."""
    return {s.stamp: s.values for s in samples}
