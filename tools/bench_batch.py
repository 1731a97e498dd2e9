"""Items per minute of humimic-batch on 1 core, 2 cores and a two-node Ray cluster, beside the
single-process loop, and the batch's overhead per item.

    .venv/bin/python tools/bench_batch.py [--items 8] [--no-cluster]

The items are cuts of the sample clip single_face.mp4 (72 frames, 640x360) starting at frames
0, 4, 8, ...: each is re-run, measured and exported. "loop" calls the three tools in one process
(rerun without images, evaluate.measure, export_dataset of the frames decoded again: the batch's
work per item), without the batch; every other row is a fresh batch
(empty --out, nothing skipped), its wall time including Ray's start-up. Overhead per item =
(wall time x workers - the loop's time) / items: what the batch costs beyond the work itself.
The two-node cluster (1 CPU per node, in two network namespaces; needs root) is left out with
--no-cluster or where namespaces cannot be made.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from humimic_core.paths import config_file  # noqa: E402
from humimic_core.robot_config import load_robot_config  # noqa: E402
from humimic_experiments import evaluate  # noqa: E402
from humimic_experiments.batch import Settings, find_items, run_batch, source_frames  # noqa: E402
from humimic_experiments.dataset import export_dataset  # noqa: E402
from humimic_experiments.rerun import rerun  # noqa: E402


def loop(specs: List[str], tmp: Path) -> float:
    """Seconds of the three tools in one process over the items (the work without the batch)."""
    config = load_robot_config(config_file("robot_face.yaml"))
    pairing, _ = evaluate.pairing_for(config_file("humimic.yaml"), config)
    t0 = time.perf_counter()
    for item in find_items(specs):
        out = tmp / item.name
        metrics = rerun(item.path, out / "rerun", config=config, write_images=False, start_frame=item.start)
        if metrics["frames_with_face"]:
            evaluate.measure(evaluate.load_recording(out / "rerun"), pairing, config)
        export_dataset(out / "rerun", out / "dataset", frames=source_frames(Path(item.path), item.start))
    return time.perf_counter() - t0


def batch(specs: List[str], tmp: Path, executor: str, cores: int, address: Optional[str] = None) -> float:
    texts = {k: config_file(f).read_text() for k, f in
             (("params", "humimic.yaml"), ("robot", "robot_face.yaml"), ("pairing", "fidelity.yaml"))}
    t0 = time.perf_counter()
    summary = run_batch(specs, tmp, Settings(**texts), executor, cores, address, log=lambda _: None)
    if summary["failed"]:
        raise RuntimeError(f"{summary['failed']} item(s) failed: {summary['sessions']}")
    return time.perf_counter() - t0


def cluster_run(specs: List[str], tmp: Path) -> Tuple[float, str]:
    from humimic_experiments.batch_cluster import ClusterUnavailable, two_node_cluster

    try:
        with two_node_cluster() as cluster:
            t0 = time.perf_counter()
            ran = cluster.run([sys.executable, "-m", "humimic_experiments.batch", *specs, "--out", str(tmp),
                               "--address", cluster.address], cwd=ROOT, capture_output=True, text=True)
            if ran.returncode:
                raise RuntimeError(ran.stderr[-2000:])
            return time.perf_counter() - t0, ""
    except ClusterUnavailable as exc:
        return float("nan"), str(exc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=8, help="cuts of single_face.mp4 (default 8)")
    parser.add_argument("--no-cluster", action="store_true", help="leave out the two-node cluster")
    args = parser.parse_args()
    specs = [f"single_face.mp4@{4 * i}" if i else "single_face.mp4" for i in range(args.items)]
    rows: List[Tuple[str, int, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        base = Path(tmp)
        plain = loop(specs, base / "loop")
        rows.append(("single-process loop (no batch)", 1, plain))
        runs = [("batch, one process (--executor serial)", 1, "serial", 1),
                ("batch, Ray, 1 core (--cores 1)", 1, "ray", 1),
                ("batch, Ray, 2 cores (--cores 2)", 2, "ray", 2),
                ("batch, process pool, 2 cores", 2, "process", 2)]
        for i, (label, workers, executor, cores) in enumerate(runs):
            rows.append((label, workers, batch(specs, base / f"b{i}", executor, cores)))
        note = ""
        if not args.no_cluster:
            seconds, note = cluster_run(specs, base / "cluster")
            rows.append(("batch, Ray, two-node cluster (1 core per node)", 2, seconds))
        shutil.rmtree(base, ignore_errors=True)
    n = len(specs)
    print(f"{n} items (single_face.mp4 cuts, {sum(72 - 4 * i for i in range(n))} frames)")
    print(f"{'run':50s} {'workers':>7s} {'wall s':>8s} {'items/min':>10s} {'overhead/item s':>16s}")
    for label, workers, seconds in rows:
        overhead = (seconds * workers - plain) / n
        print(f"{label:50s} {workers:7d} {seconds:8.1f} {60 * n / seconds:10.1f} {overhead:16.2f}")
    if note:
        print(f"two-node cluster left out: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
