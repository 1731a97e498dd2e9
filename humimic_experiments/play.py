"""Replay a recording into running nodes with its original timing and a /clock, like
`ros2 bag play --clock` (which is what to use on a ROS install). Topics keep the names they were
recorded under (a remapped or namespaced graph's); `--topics` names them so.

    python -m humimic_experiments.play out/session --topics /camera/image_raw /camera/camera_info
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

import rclpy
from rosgraph_msgs.msg import Clock

from humimic_experiments.bag_io import default_names, read_messages, topic_summary
from humimic_core.ros_util import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS, matched_subscriber_nodes
from humimic_core.stamps import from_ns
from humimic_core.subscriber_gate import SubscriberGate
from humimic_core.topics import LATCHED, RELIABLE, SENSOR, TOPICS, message_class

#: Hz of /clock between messages
CLOCK_RATE = 100.0
#: QoS kind -> the profile humimic's publishers offer
PUBLISHER_QOS = {SENSOR: SENSOR_QOS, RELIABLE: RELIABLE_QOS, LATCHED: LATCHED_QOS}


def play(path: str, topics: Optional[Sequence[str]], rate: float = 1.0, clock: bool = True,
         wait_for: int = 1, wait_timeout: float = 10.0) -> int:
    """Publish the recording's messages at `rate` times their recorded pace, starting once
    `wait_for` nodes subscribe to the played topics (at most `wait_timeout` s); returns the count."""
    if not rate > 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    available = topic_summary(path, recorded_names=True)
    defaults = default_names(path)
    chosen = list(available) if not topics else list(topics)
    missing = [t for t in chosen if t not in available]
    if missing:
        raise ValueError(f"{path} has no {missing}; it has {sorted(available)}")
    rclpy.init()
    node = rclpy.create_node("humimic_player")
    try:
        pubs = {}
        for topic in chosen:
            msgtype = available[topic][0]
            qos = PUBLISHER_QOS[TOPICS.get(defaults.get(topic, topic), ("", SENSOR))[1]]
            pubs[topic] = node.create_publisher(message_class(msgtype), topic, qos)
        clock_pub = node.create_publisher(Clock, "/clock", 10) if clock else None
        gate = SubscriberGate(lambda: matched_subscriber_nodes(node, pubs.values()), wait_for, wait_timeout,
                              lambda text: print(f"humimic-play: {text}", file=sys.stderr))
        while not gate.ready():
            time.sleep(0.05)
        count, wall0, bag0, next_clock = 0, None, None, 0.0
        for msg in read_messages(path, chosen, recorded_names=True):
            if wall0 is None:
                wall0, bag0 = time.monotonic(), msg.timestamp
            due = wall0 + (msg.timestamp - bag0) * 1e-9 / rate
            while True:
                now = time.monotonic()
                if clock_pub is not None and now >= next_clock:
                    sim = bag0 + int(min(now - wall0, (due - wall0)) * rate * 1e9)
                    clock_pub.publish(Clock(clock=from_ns(sim)))
                    next_clock = now + 1.0 / CLOCK_RATE
                if now >= due:
                    break
                time.sleep(min(due - now, 1.0 / CLOCK_RATE))
            if clock_pub is not None:
                clock_pub.publish(Clock(clock=from_ns(msg.timestamp)))
            pubs[msg.topic].publish(msg.data)
            count += 1
        return count
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recording", help="recording folder (segments) or one rosbag2 bag folder")
    parser.add_argument("--topics", nargs="*", default=None, help="topics to replay (default: all)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    parser.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    parser.add_argument("--wait-for", type=int, default=1,
                        help="start once this many nodes subscribe to the played topics (default 1)")
    parser.add_argument("--wait-timeout", type=float, default=10.0,
                        help="seconds to wait for them, then start anyway with a warning")
    args = parser.parse_args(argv)
    count = play(args.recording, args.topics, args.rate, not args.no_clock, args.wait_for, args.wait_timeout)
    print(f"humimic-play: published {count} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
