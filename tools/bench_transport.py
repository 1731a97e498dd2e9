#!/usr/bin/env python3
"""Camera image transport between two processes under several Fast DDS set-ups, in one run.

A publisher process sends 640x480 bgr8 images (humimic_perception.ros_convert, as the camera node)
at 30 fps with the sensor-data QoS; a subscriber process converts each (as perception) and notes
the wall clock minus the stamp. The set-ups, alternated over the repeats:

  shm_16mib   config/fastdds.xml: shared memory with 16 MiB segments, UDP on loopback (today's)
  udp_only    UDP on loopback only (what a profile without SHM gives)
  builtin     Fast DDS's built-in transports (SHM with its 512 KiB default segment, UDP)
  data_share  config/fastdds.xml plus data sharing AUTOMATIC on every reader and writer (Fast DDS
              uses it only for bounded types; sensor_msgs/Image is not, so this shows whether it
              changes anything)
  sync_pub    config/fastdds.xml with RMW_FASTRTPS_PUBLICATION_MODE=SYNCHRONOUS

    python tools/bench_transport.py [--frames 300] [--repeats 2] [--width 640 --height 480]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from humimic_core.paths import config_file  # noqa: E402

TOPIC = "bench_transport/image"
DATA_SHARING = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com"><profiles>
  <transport_descriptors>
    <transport_descriptor><transport_id>shm</transport_id><type>SHM</type><segment_size>16777216</segment_size>
    </transport_descriptor>
    <transport_descriptor><transport_id>udp</transport_id><type>UDPv4</type>
      <interfaceWhiteList><address>127.0.0.1</address></interfaceWhiteList></transport_descriptor>
  </transport_descriptors>
  <participant profile_name="p" is_default_profile="true"><rtps><userTransports>
    <transport_id>shm</transport_id><transport_id>udp</transport_id></userTransports>
    <useBuiltinTransports>false</useBuiltinTransports></rtps></participant>
  <data_writer profile_name="w" is_default_profile="true"><qos><data_sharing><kind>AUTOMATIC</kind></data_sharing>
  </qos></data_writer>
  <data_reader profile_name="r" is_default_profile="true"><qos><data_sharing><kind>AUTOMATIC</kind></data_sharing>
  </qos></data_reader>
</profiles></dds>
"""
UDP_ONLY = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com"><profiles>
  <transport_descriptors><transport_descriptor><transport_id>udp</transport_id><type>UDPv4</type>
    <interfaceWhiteList><address>127.0.0.1</address></interfaceWhiteList></transport_descriptor>
  </transport_descriptors>
  <participant profile_name="p" is_default_profile="true"><rtps><userTransports><transport_id>udp</transport_id>
    </userTransports><useBuiltinTransports>false</useBuiltinTransports></rtps></participant>
</profiles></dds>
"""


def setups(folder: Path) -> Dict[str, Dict[str, str]]:
    """name -> environment changes."""
    (folder / "data_share.xml").write_text(DATA_SHARING)
    (folder / "udp_only.xml").write_text(UDP_ONLY)
    shipped = str(config_file("fastdds.xml"))
    return {"shm_16mib": {"FASTDDS_DEFAULT_PROFILES_FILE": shipped},
            "udp_only": {"FASTDDS_DEFAULT_PROFILES_FILE": str(folder / "udp_only.xml")},
            "builtin": {"FASTDDS_DEFAULT_PROFILES_FILE": ""},
            "data_share": {"FASTDDS_DEFAULT_PROFILES_FILE": str(folder / "data_share.xml")},
            "sync_pub": {"FASTDDS_DEFAULT_PROFILES_FILE": shipped, "RMW_FASTRTPS_PUBLICATION_MODE": "SYNCHRONOUS"}}


def _node(name: str):
    import rclpy

    from humimic_core.ros_util import make_executor

    rclpy.init()
    node = rclpy.create_node(name)
    executor = make_executor()
    executor.add_node(node)
    return node, executor


def publish(args: argparse.Namespace) -> None:
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from humimic_core.ros_util import SENSOR_QOS
    from humimic_core.stamps import from_ns
    from humimic_perception.ros_convert import image_to_msg

    node, executor = _node("bench_transport_pub")
    pub = node.create_publisher(Image, TOPIC, SENSOR_QOS)
    end = time.monotonic() + 20.0
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
    time.sleep(1.0)
    frame = np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    start = time.monotonic()
    for i in range(args.frames):
        while time.monotonic() < start + i / args.fps:
            executor.spin_once(timeout_sec=max(0.0, start + i / args.fps - time.monotonic()))
        pub.publish(image_to_msg(frame, Header(stamp=from_ns(time.time_ns()))))
    time.sleep(1.0)


def subscribe(args: argparse.Namespace) -> None:
    from sensor_msgs.msg import Image

    from humimic_core.ros_util import SENSOR_QOS
    from humimic_core.stamps import to_ns
    from humimic_perception.ros_convert import image_from_msg

    node, executor = _node("bench_transport_sub")
    latencies: List[float] = []

    def on_image(msg: Image) -> None:
        image_from_msg(msg)
        latencies.append((time.time_ns() - to_ns(msg.header.stamp)) * 1e-6)

    node.create_subscription(Image, TOPIC, on_image, SENSOR_QOS)
    end = time.monotonic() + args.frames / args.fps + 25.0
    while time.monotonic() < end and len(latencies) < args.frames:
        executor.spin_once(timeout_sec=0.1)
    Path(args.result).write_text(json.dumps(latencies))


def run(name: str, env_changes: Dict[str, str], args: argparse.Namespace, folder: Path, index: int) -> List[float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_changes}
    if not env_changes.get("FASTDDS_DEFAULT_PROFILES_FILE", "x"):
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE")
    result = folder / f"{name}-{index}.json"
    common = ["--frames", str(args.frames), "--fps", str(args.fps), "--width", str(args.width),
              "--height", str(args.height)]
    sub = subprocess.Popen([sys.executable, __file__, "--role", "sub", "--result", str(result), *common], env=env)
    pub = subprocess.Popen([sys.executable, __file__, "--role", "pub", *common], env=env)
    pub.wait(120)
    sub.wait(120)
    return json.loads(result.read_text()) if result.is_file() else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--role", choices=["pub", "sub"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "pub":
        publish(args)
        return 0
    if args.role == "sub":
        subscribe(args)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results: Dict[str, List[List[float]]] = {}
        for index in range(args.repeats):
            for name, env in setups(folder).items():
                results.setdefault(name, []).append(run(name, env, args, folder, index))
                print(f"  {name} run {index + 1}: {len(results[name][-1])} of {args.frames} frames", flush=True)
    print(f"\n{args.width}x{args.height} bgr8 at {args.fps:g} fps, publish -> converted in the subscriber, ms "
          f"(median over {args.repeats} runs of each run's percentile):\n")
    print("| set-up | p50 | p99 | frames received |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        p50 = statistics.median(float(np.percentile(r, 50)) if r else float("nan") for r in runs)
        p99 = statistics.median(float(np.percentile(r, 99)) if r else float("nan") for r in runs)
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {' / '.join(str(len(r)) for r in runs)} of {args.frames} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
