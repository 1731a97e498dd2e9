"""End-to-end latency with perception on another host, beside one host.

    sudo .venv/bin/python tools/bench_two_hosts.py [--video FILE] [--runs 3]

Runs the pipeline on a video (a real clip of ../shared/media by default) in two network
namespaces joined by a veth pair: perception on the "workstation", camera, retarget, driver,
emulated bus and recorder on the "robot" (Fast DDS: config/fastdds_two_hosts.xml, UDP only); then
everything on one host (config/fastdds.xml: shared memory). Where the kernel has netem, also
across the hosts with 5 ms added to every packet each way. Prints, per setup, the latency from
the camera stamp to perception's action units and to the driver's bus write (p50 / p99 over the
runs' frames) and the frames that reached the bus. Needs root (network namespaces).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from humimic_core.paths import media_dir, shared_media_dir  # noqa: E402
from humimic_bringup.two_hosts import run_split  # noqa: E402
from humimic_experiments import two_hosts  # noqa: E402
from humimic_experiments.metrics import latency_stats  # noqa: E402

TOPICS = ("/face/action_units", "/driver/written_goals")
DELAY_MS = 5.0


def measure(video: str, runs: int, setup: str, delay: bool = False) -> Dict[str, Dict[str, float]]:
    pooled: Dict[str, List[float]] = {t: [] for t in TOPICS}
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp, two_hosts.two_hosts() as hosts:
            if delay:
                for host in hosts:
                    problem = two_hosts.add_delay(host, DELAY_MS)
                    if problem:
                        raise OSError(problem)
            recording = run_split(video, Path(tmp), hosts if setup == "two" else None,
                                            single=hosts[1], timeout=600.0)
            for topic, values in two_hosts.latencies_ms(recording).items():
                pooled[topic] += values
    return {t: latency_stats(v) for t, v in pooled.items()}


def main() -> int:
    default = shared_media_dir() / "speech_browraise_frown_blinks_woman.mp4"
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", default=str(default if default.is_file() else media_dir() / "single_face.mp4"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    reason = two_hosts.unavailable()
    if reason:
        print(f"bench_two_hosts: {reason}", file=sys.stderr)
        return 2
    setups = [("one host (shared memory)", "one", False), ("two hosts (UDP over veth)", "two", False)]
    if two_hosts.netem_available():
        setups.append((f"two hosts, +{DELAY_MS:.0f} ms each way (netem)", "two", True))
    else:
        print("netem: not in this kernel; the run with added delay is left out")
    print(f"{Path(args.video).name}, {args.runs} run(s) per setup; ms from the camera stamp, p50 / p99")
    print(f"{'setup':40s} {'action units':>16s} {'bus write':>16s} {'frames at the bus':>18s}")
    for name, setup, delay in setups:
        stats = measure(args.video, args.runs, setup, delay)
        au, bus = stats["/face/action_units"], stats["/driver/written_goals"]
        print(f"{name:40s} {au.get('p50_ms', 0):7.1f} / {au.get('p99_ms', 0):6.1f} "
              f"{bus.get('p50_ms', 0):7.1f} / {bus.get('p99_ms', 0):6.1f} {bus['n']:18d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
