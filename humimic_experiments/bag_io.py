"""rosbag2 files without ROS: write and read serialized (CDR) messages with the `rosbags` library.

A recording is one rosbag2 bag, as `ros2 bag record` writes it: a folder with metadata.yaml and
its files (`<name>_0.mcap`, `<name>_1.mcap`, ...: a new file every `split_seconds` of recorded
time, like `--max-bag-duration`), MCAP chunks compressed with zstd (`--storage-preset-profile
zstd_fast`), and each topic's offered QoS profiles in the metadata, so `ros2 bag play` offers
the recorded profiles (latched topics stay latched). metadata.yaml lists only closed files, so a
crash or power loss costs at most the open file's messages, never the session. Older recordings,
a folder of complete bags (one per segment), are read too.

Readers name topics by humimic's default names (humimic_core.topics.TOPICS), whatever a
namespace or remapping made of them while recording: humimic-record lists recorded name ->
default name in the metadata (custom_data `humimic.topics`); a bag without that list (`ros2 bag
record`) maps a recorded name to the default name it ends with, of the same message type
(`/robot2/joint_commands` -> `/joint_commands`), an exact name first.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
import re
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.typesys import Stores, get_typestore

from humimic_core.topics import TOPICS

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
_INFO = "rosbag2_bagfile_information"
#: custom_data key of the recorded name -> humimic default name map (JSON)
NAMES_KEY = "humimic.topics"


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    timestamp: int  # ns, the bag's receive time
    data: bytes     # CDR


def _qos_time(duration: Any) -> QosTime:
    ns = int(duration.nanoseconds)
    return QosTime(ns // 10**9, ns % 10**9)


def qos_of(profile: Any) -> Qos:
    """The rosbags Qos of an rclpy QoSProfile (read by attribute: no rclpy import here)."""
    return Qos(QosHistory[profile.history.name], int(profile.depth), QosReliability[profile.reliability.name],
               QosDurability[profile.durability.name], _qos_time(profile.deadline), _qos_time(profile.lifespan),
               QosLiveliness[profile.liveliness.name], _qos_time(profile.liveliness_lease_duration),
               bool(profile.avoid_ros_namespace_conventions))


def _merge(total: Optional[dict], part: dict) -> dict:
    """Bag metadata of `total`'s files followed by `part`'s (one file each)."""
    if total is None:
        return part
    end = max(total["starting_time"]["nanoseconds_since_epoch"] + total["duration"]["nanoseconds"],
              part["starting_time"]["nanoseconds_since_epoch"] + part["duration"]["nanoseconds"])
    start = min(total["starting_time"]["nanoseconds_since_epoch"], part["starting_time"]["nanoseconds_since_epoch"])
    topics = {t["topic_metadata"]["name"]: t for t in total["topics_with_message_count"]}
    for t in part["topics_with_message_count"]:
        known = topics.setdefault(t["topic_metadata"]["name"], {**t, "message_count": 0})
        known["message_count"] += t["message_count"]
    return {**total, "starting_time": {"nanoseconds_since_epoch": start}, "duration": {"nanoseconds": end - start},
            "message_count": total["message_count"] + part["message_count"],
            "topics_with_message_count": list(topics.values()),
            "relative_file_paths": total["relative_file_paths"] + part["relative_file_paths"],
            "files": total["files"] + part["files"]}


class SegmentedBagWriter:
    """Writes one bag `folder` whose files `<name>_N` each hold `split_seconds` of messages;
    `names`: recorded topic name -> humimic default name, where they may differ (remapped)."""

    def __init__(self, folder: str | Path, storage: str = "mcap", split_seconds: float = 10.0,
                 name: Optional[str] = None, names: Optional[Dict[str, str]] = None) -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        if not split_seconds > 0:
            raise ValueError(f"split_seconds must be > 0, got {split_seconds!r}")
        self.folder = Path(folder)
        if self.folder.exists() and any(self.folder.iterdir()):
            raise FileExistsError(f"recording folder {self.folder} exists and is not empty")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.storage, self.split_ns = storage, int(split_seconds * 1e9)
        self.name = name or self.folder.name
        self.names = dict(names or {})
        self.files: List[Path] = []  # closed files, in metadata.yaml
        self.count = 0
        self._writer: Optional[Writer] = None
        self._metadata: Optional[dict] = None
        self._connections: Dict[str, object] = {}
        self._types: Dict[str, str] = {}
        self._qos: Dict[str, Tuple[Qos, ...]] = {}
        self._segment_start = 0

    def _open(self, timestamp: int) -> None:
        self._writer = Writer(self.folder / f".{self.name}_{len(self.files)}.part", version=9,
                              storage_plugin=STORAGES[self.storage])
        if self.storage == "mcap":  # zstd chunks, as the zstd_fast preset of rosbag2_storage_mcap
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        if self.names:
            self._writer.set_custom_data(NAMES_KEY, json.dumps(self.names, sort_keys=True))
        self._writer.open()
        self._connections = {}
        self._segment_start = timestamp

    def write(self, topic: str, msgtype: str, timestamp: int, data: bytes, qos: Sequence[Qos] = ()) -> None:
        """Append one serialized message; opens or rolls over files as needed. `qos`: the
        profiles the topic's publishers offer (kept from the topic's first message)."""
        if topic in self._types and self._types[topic] != msgtype:
            raise ValueError(f"{topic}: type {msgtype} differs from the recorded {self._types[topic]}")
        self._types[topic] = msgtype
        self._qos.setdefault(topic, tuple(qos))
        if self._writer is None or timestamp - self._segment_start >= self.split_ns:
            self.close_segment()
            self._open(timestamp)
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=_TYPESTORE,
                                               offered_qos_profiles=self._qos[topic])
            self._connections[topic] = conn
        self._writer.write(conn, timestamp, data)
        self.count += 1

    def close_segment(self) -> None:
        """Close the open file, move it into the bag and list it in metadata.yaml."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        writer.close()
        part = yaml.safe_load((writer.path / "metadata.yaml").read_text())[_INFO]
        source = writer.path / part["relative_file_paths"][0]
        target = self.folder / f"{self.name}_{len(self.files)}{source.suffix}"
        source.replace(target)
        shutil.rmtree(writer.path)
        part["relative_file_paths"] = [target.name]
        part["files"][0]["path"] = target.name
        self._metadata = _merge(self._metadata, part)
        self.files.append(target)
        temporary = self.folder / "metadata.yaml.tmp"
        temporary.write_text(yaml.safe_dump({_INFO: self._metadata}, sort_keys=False))
        temporary.replace(self.folder / "metadata.yaml")

    def close(self) -> None:
        self.close_segment()

    def __enter__(self) -> "SegmentedBagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: a segment bag of an older recording: <name>_NNNN
_OLD_SEGMENT = re.compile(r"_\d{4}$")


def segments(path: str | Path) -> List[Path]:
    """The bag folders of a recording (one bag folder, or an older recording's folder of segment
    bags `<name>_NNNN`), in order. A folder of other bags (a folder of recordings) is none."""
    path = Path(path)
    if (path / "metadata.yaml").is_file():
        return [path]
    found = sorted(p for p in path.iterdir() if _OLD_SEGMENT.search(p.name) and (p / "metadata.yaml").is_file()) \
        if path.is_dir() else []
    if not found:
        raise FileNotFoundError(f"no rosbag2 bag in {path} (expected metadata.yaml in it or in <name>_NNNN "
                                f"sub-folders)")
    return found


def _default_names(bag: Path, reader: Reader) -> Dict[str, str]:
    """recorded topic name -> humimic default name (module docstring); names of other topics stay."""
    info = yaml.safe_load((bag / "metadata.yaml").read_text())[_INFO]
    listed = (info.get("custom_data") or {}).get(NAMES_KEY)
    if listed:
        return json.loads(listed)
    recorded = {c.topic: c.msgtype for c in reader.connections}
    names = {t: t for t in recorded if t in TOPICS}
    for topic, msgtype in sorted(recorded.items()):
        matches = [d for d, (kind, _) in TOPICS.items() if kind == msgtype and topic.endswith(d)]
        default = max(matches, key=len, default=None)
        if topic not in names and default is not None and default not in names.values():
            names[topic] = default
    return names


def read_messages(path: str | Path, topics: Optional[Sequence[str]] = None,
                  recorded_names: bool = False) -> Iterator[BagMessage]:
    """Every message of a recording in timestamp order (segments are consecutive in time), named
    by humimic's default names (or as recorded: `recorded_names`); `topics` in the same names."""
    for bag in segments(path):
        with Reader(bag) as reader:
            names = {} if recorded_names else _default_names(bag, reader)
            conns = [c for c in reader.connections if topics is None or names.get(c.topic, c.topic) in topics]
            if not conns:  # rosbags reads every connection when given none
                continue
            for conn, timestamp, data in reader.messages(connections=conns):
                yield BagMessage(names.get(conn.topic, conn.topic), conn.msgtype, timestamp, bytes(data))


def topic_summary(path: str | Path, recorded_names: bool = False) -> Dict[str, Tuple[str, int]]:
    """topic -> (message type, count) over a recording, named as read_messages names them."""
    out: Dict[str, Tuple[str, int]] = {}
    for bag in segments(path):
        with Reader(bag) as reader:
            names = {} if recorded_names else _default_names(bag, reader)
            for conn in reader.connections:
                topic = names.get(conn.topic, conn.topic)
                msgtype, count = out.get(topic, (conn.msgtype, 0))
                out[topic] = (msgtype, count + conn.msgcount)
    return out


def default_names(path: str | Path) -> Dict[str, str]:
    """recorded topic name -> humimic default name, over a recording's bags."""
    out: Dict[str, str] = {}
    for bag in segments(path):
        with Reader(bag) as reader:
            out.update(_default_names(bag, reader))
    return out


def deserialize(message: BagMessage):
    """The rosbags (pure Python) message object of a bag message.

    Bytes after the end of the message are ignored, as DDS readers do: rclpy's
    serialize_message() in some builds returns its buffer with a few bytes of slack at the end.
    """
    data = message.data
    if len(data) < 4 or data[:2] not in (b"\x00\x00", b"\x00\x01"):
        raise ValueError(f"{message.topic}: not a CDR message")
    msgdef = _TYPESTORE.get_msgdef(message.msgtype)
    decode = msgdef.deserialize_cdr_le if data[1] else msgdef.deserialize_cdr_be
    value, _ = decode(memoryview(data)[4:], 0, msgdef.cls, _TYPESTORE)
    return value


def serialize(msg, msgtype: str) -> bytes:
    """CDR bytes of a rosbags message object."""
    return bytes(_TYPESTORE.serialize_cdr(msg, msgtype))


_DTYPES = {"double": np.float64, "float": np.float32, "int8": np.int8, "uint8": np.uint8, "int16": np.int16,
           "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
           "octet": np.uint8, "char": np.uint8, "boolean": np.bool_}
_SEQUENCE = re.compile(r"^sequence<([^,>]+)(?:, \d+)?>$|^([^\[]+)\[\d*\]$")


def _rosbags_value(value: Any, ftype: str) -> Any:
    match = _SEQUENCE.match(ftype)
    if match:
        inner = match.group(1) or match.group(2)
        if inner in _DTYPES:
            return np.asarray(value, dtype=_DTYPES[inner])
        if "/" in inner:
            return [_rosbags_message(v, _full_type(inner)) for v in value]
        return list(value)
    if "/" in ftype:
        return _rosbags_message(value, _full_type(ftype))
    return value


def _full_type(ftype: str) -> str:
    package, name = ftype.split("/")[0], ftype.split("/")[-1]
    return f"{package}/msg/{name}"


def _rosbags_message(msg: Any, msgtype: str) -> Any:
    fields = msg.get_fields_and_field_types()
    return _TYPESTORE.types[msgtype](**{n: _rosbags_value(getattr(msg, n), t) for n, t in fields.items()})


def from_rclpy(msg: Any, msgtype: str) -> bytes:
    """CDR bytes of an rclpy message, serialised by rosbags: exact length, zeroed padding, so the
    same message always gives the same bytes (rclpy's serialize_message does not)."""
    return serialize(_rosbags_message(msg, msgtype), msgtype)


def typestore():
    """The rosbags type store (message classes for building messages without rclpy)."""
    return _TYPESTORE
