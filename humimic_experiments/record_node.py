"""Record the pipeline's topics into a rosbag2 bag, without ros2 bag.

Real subscribers (raw CDR, so nothing is re-encoded) write through humimic_experiments.bag_io: one
bag split into files every `split_seconds`, zstd MCAP chunks, and each topic's offered QoS
profiles (as the graph shows its publishers at the topic's first message) in the metadata, like
`ros2 bag record`. Latched topics (/robot_description, /tf_static) are subscribed transient
local, so their last message is recorded even when it was published before the recorder
started. On a ROS install `ros2 bag record` does the same job; this node exists where rosbag2
cannot be installed and is what the tests use. Timestamps are the node clock's (use_sim_time
honoured; messages that arrive before the first /clock are held and written at its first time, so
none is lost or stamped 0). Topics whose message package is not installed (tf2_msgs in the PyPI wheels) are left
out of the default list, with one line naming them. Topics are named by their default names
(`/joint_commands`) and subscribed as the nodes name them, so a namespace or remapping given to the
recorder (`--ros-args -r __ns:=/robot2`, `-r joint_commands:=/robot2/joint_commands`, as the runner
gives it the pipeline's) moves them as it moves the nodes' topics; the bag holds the names actually
recorded, with the map to the default names that readers use (humimic_experiments.bag_io).

    python -m humimic_experiments.record_node --ros-args -p output:=out/session -p storage:=mcap
"""
from __future__ import annotations

from typing import Dict, List, Tuple

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosbags.interfaces import Qos

from humimic_experiments.bag_io import SegmentedBagWriter, qos_of
from humimic_core.ros_util import (LATCHED_QOS, RECORDER_RELIABLE_QOS, RECORDER_SENSOR_QOS, RELIABLE_QOS, SENSOR_QOS,
                                   declare, run_node)
from humimic_core.topics import LATCHED, NAMES, RELIABLE, SENSOR, TOPICS, installed, message_class, recorded

#: QoS kind -> (the recorder's subscription, the profile humimic's publishers offer)
QOS = {SENSOR: (RECORDER_SENSOR_QOS, SENSOR_QOS), RELIABLE: (RECORDER_RELIABLE_QOS, RELIABLE_QOS),
       LATCHED: (LATCHED_QOS, LATCHED_QOS)}
#: Seconds between checks for the recorded topics' first publishers, and what is logged for each.
PUBLISHER_POLL_S, PUBLISHER_SEEN = 0.1, "publisher seen"


class RecordNode(Node):
    def __init__(self) -> None:
        super().__init__("humimic_recorder")
        output = declare(self, "output", "out/recording", "Folder of the recording (must not exist or be empty)",
                         read_only=True)
        storage = declare(self, "storage", "mcap", "Bag storage: mcap or sqlite3", read_only=True)
        split = declare(self, "split_seconds", 10.0, "Seconds per bag file (bounds what a crash can lose)",
                        read_only=True)
        missing = [t for t, (msgtype, _) in TOPICS.items() if not installed(msgtype)]
        if missing:
            self.get_logger().warning(f"not recording {', '.join(missing)}: message package not installed")
        topics = declare(self, "topics", [t for t in recorded(robot_face=False) if t not in missing],
                         "Topics to record (default: every humimic topic whose message package is installed, "
                         "the robot face's (/robot_face/...) only when named)",
                         read_only=True)
        unknown = [t for t in topics if t not in TOPICS]
        if unknown:
            raise ValueError(f"topics: not humimic topics: {unknown} (known: {list(TOPICS)})")
        if set(topics) & set(missing):
            raise ValueError(f"topics: message package not installed for {sorted(set(topics) & set(missing))}")
        self._offered: Dict[str, List[Qos]] = {}
        self._recorded: Dict[str, str] = {}  # default name -> recorded name (after namespace and remapping)
        self._before_clock: List[Tuple[str, str, bytes]] = []  # use_sim_time: no /clock yet
        for topic in topics:
            msgtype, kind = TOPICS[topic]
            self._recorded[topic] = self.create_subscription(
                message_class(msgtype), NAMES[topic], lambda data, t=topic, m=msgtype: self.on_message(t, m, data),
                QOS[kind][0], raw=True).topic_name
        self.writer = SegmentedBagWriter(output, storage, split, names={r: t for t, r in self._recorded.items()})
        self.get_logger().info(f"recording {len(topics)} topics into {output} ({storage})")
        self._unseen = list(topics)
        # steady time: under use_sim_time the clock stands still until a replay starts, and the replay
        # may wait for exactly these lines
        self._seen_timer = self.create_timer(PUBLISHER_POLL_S, self.on_poll_publishers,
                                             clock=Clock(clock_type=ClockType.STEADY_TIME))

    def on_poll_publishers(self) -> None:
        """Log each topic's first publisher (``<topic>: publisher seen``): a launcher can start the
        source once the recorder sees what it must not miss."""
        for topic in [t for t in self._unseen if self.count_publishers(self._recorded[t])]:
            self._unseen.remove(topic)
            self.get_logger().info(f"{topic}: {PUBLISHER_SEEN}")
        if not self._unseen:
            self._seen_timer.cancel()

    def offered(self, topic: str) -> List[Qos]:
        """The QoS profiles the topic's publishers offer (humimic's own profile if none is seen)."""
        if topic not in self._offered:
            profiles = [qos_of(i.qos_profile) for i in self.get_publishers_info_by_topic(self._recorded[topic])]
            self._offered[topic] = profiles or [qos_of(QOS[TOPICS[topic][1]][1])]
        return self._offered[topic]

    def on_message(self, topic: str, msgtype: str, data: bytes) -> None:
        """Write one message of `topic` (default name) under its recorded name."""
        now = self.get_clock().now().nanoseconds
        if now == 0:  # a simulated clock that has not started
            self._before_clock.append((topic, msgtype, data))
            return
        self._flush(now)
        self.writer.write(self._recorded[topic], msgtype, now, data, self.offered(topic))

    def _flush(self, now: int) -> None:
        for topic, msgtype, data in self._before_clock:
            self.writer.write(self._recorded[topic], msgtype, now, data, self.offered(topic))
        self._before_clock.clear()

    def shutdown(self) -> None:
        self._flush(0)
        self.writer.close()
        self.get_logger().info(f"recorded {self.writer.count} messages in {len(self.writer.files)} file(s)")


def main(args=None) -> None:
    run_node(RecordNode, args)


if __name__ == "__main__":
    main()
