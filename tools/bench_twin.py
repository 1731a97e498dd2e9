"""Renders per second of the face twin (humimic_perception.sim.face_twin) at 512x512 on one core.

    .venv/bin/python tools/bench_twin.py [--renders 600]

Poses: every joint of the shipped robot config at once, at random inside its limits (the worst
case: the neck turns the whole face, so the whole image is warped), and the jaw alone (a local
warp). OpenCV and the BLAS run on one thread. Renders per CPU second (process time) is the cost on
one core; the wall-clock rate also counts the time other processes take the core. Needs the neutral face (prepared and cached on the
first run from the sample media).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from humimic_core.paths import config_file  # noqa: E402
from humimic_core.robot_config import load_robot_config  # noqa: E402
from humimic_perception.sim.neutral_face import prepare  # noqa: E402
from humimic_perception.sim.face_twin import FaceTwin  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=600)
    parser.add_argument("--source", default="", help="neutral face image or video ('' = the twin's default)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    config = load_robot_config(config_file("robot_face.yaml"))
    twin = FaceTwin(prepare(args.source, size=512), config.servos)
    rng = np.random.default_rng(0)
    cases = {
        "all joints, random": [{s.joint: float(rng.uniform(s.min, s.max)) for s in config.servos}
                               for _ in range(args.renders)],
        "jaw only": [{"jaw": 0.45 * (i % 20) / 19} for i in range(args.renders)],
    }
    for name, poses in cases.items():
        twin.render(poses[0])
        times = np.empty(len(poses))
        cpu0 = time.process_time()
        for i, pose in enumerate(poses):
            t0 = time.perf_counter()
            twin.render(pose)
            times[i] = time.perf_counter() - t0
        cpu = (time.process_time() - cpu0) / len(poses)
        print(f"{name:20s} {1.0 / cpu:6.0f} renders per CPU second, {1.0 / times.mean():6.0f} renders/s wall "
              f"(per render: median {np.median(times) * 1e3:.1f} ms, p99 {np.percentile(times, 99) * 1e3:.1f} ms wall)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
