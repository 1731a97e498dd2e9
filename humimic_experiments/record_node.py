"""Record the pipeline's topics into a segmented rosbag2 recording, without ros2 bag.

Real subscribers (raw CDR, so nothing is re-encoded) write through humimic_experiments.bag_io. On a ROS
install `ros2 bag record` does the same job; this node exists where rosbag2 cannot be installed
and is what the tests use. Timestamps are the node clock's (use_sim_time honoured).

    python -m humimic_experiments.record_node --ros-args -p output:=out/session -p storage:=mcap
"""
from __future__ import annotations

from rclpy.node import Node

from humimic_experiments.bag_io import SegmentedBagWriter
from humimic_core.ros_util import RECORDER_RELIABLE_QOS, RECORDER_SENSOR_QOS, declare, run_node
from humimic_core.topics import SENSOR, TOPICS, message_class


class RecordNode(Node):
    def __init__(self) -> None:
        super().__init__("humimic_recorder")
        output = declare(self, "output", "out/recording", "Folder of the recording (must not exist or be empty)",
                         read_only=True)
        storage = declare(self, "storage", "mcap", "Bag storage: mcap or sqlite3", read_only=True)
        split = declare(self, "split_seconds", 10.0, "Seconds per bag segment (bounds what a crash can lose)",
                        read_only=True)
        topics = declare(self, "topics", list(TOPICS), "Topics to record (default: every humimic topic)",
                         read_only=True)
        unknown = [t for t in topics if t not in TOPICS]
        if unknown:
            raise ValueError(f"topics: not humimic topics: {unknown} (known: {list(TOPICS)})")
        self.writer = SegmentedBagWriter(output, storage, split)
        for topic in topics:
            msgtype, qos = TOPICS[topic]
            self.create_subscription(message_class(msgtype), topic,
                                     lambda data, t=topic, m=msgtype: self.on_message(t, m, data),
                                     RECORDER_SENSOR_QOS if qos == SENSOR else RECORDER_RELIABLE_QOS, raw=True)
        self.get_logger().info(f"recording {len(topics)} topics into {output} ({storage})")

    def on_message(self, topic: str, msgtype: str, data: bytes) -> None:
        self.writer.write(topic, msgtype, self.get_clock().now().nanoseconds, data)

    def shutdown(self) -> None:
        self.writer.close()
        self.get_logger().info(f"recorded {self.writer.count} messages in {len(self.writer.segments)} segment(s)")


def main(args=None) -> None:
    run_node(RecordNode, args)


if __name__ == "__main__":
    main()
