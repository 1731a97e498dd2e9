"""Items per minute of humimic-batch on 1 core, 2 cores and a two-node Ray cluster, beside the
single-process loop, and the batch's overhead per item.

    .venv/bin/python tools/bench_batch.py [--clip WolfgangLanger_Pexels.mp4] [--items 6] [--step 40] [--no-cluster]

The items are cuts of a clip starting at frames 0, step, 2 step, ...: each is re-run, measured
and exported. "loop" calls the three tools in one process
(rerun without images, evaluate.measure, export_dataset of the frames decoded again: the batch's
work per item), without the batch; every other row is a fresh batch
(empty --out, nothing skipped), its wall time including Ray's start-up (measured alone: a local
instance started and stopped; the cluster's driver: its start and connection). Overhead per item
= ((wall - start-up) x workers - the loop's time) / items: what the batch costs beyond the work.
The two-node cluster (1 CPU per node, in two network namespaces; needs root) is left out with
--no-cluster or where namespaces cannot be made.
"""
from __future__ import annotations

import argparse
import shutil
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


def ray_startup(cores: int) -> float:
    """Seconds to start and stop a local Ray instance of `cores` CPUs."""
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.shutdown()
    return time.perf_counter() - t0


def cluster_run(specs: List[str], tmp: Path) -> Tuple[float, float, str]:
    """(wall s of the batch CLI on the cluster, s of a driver that only connects, why not run)."""
    from humimic_experiments.batch_cluster import ClusterUnavailable, two_node_cluster

    try:
        with two_node_cluster() as cluster:
            connect = [sys.executable, "-c", f"import ray; ray.init(address={cluster.address!r}); ray.shutdown()"]
            t0 = time.perf_counter()
            cluster.run(connect, cwd=ROOT, capture_output=True, check=True)
            t1 = time.perf_counter()
            ran = cluster.run([sys.executable, "-m", "humimic_experiments.batch", *specs, "--out", str(tmp),
                               "--address", cluster.address], cwd=ROOT, capture_output=True, text=True)
            if ran.returncode:
                raise RuntimeError(ran.stderr[-2000:])
            return time.perf_counter() - t1, t1 - t0, ""
    except ClusterUnavailable as exc:
        return float("nan"), 0.0, str(exc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", default="WolfgangLanger_Pexels.mp4", help="the clip (a sample or shared media name)")
    parser.add_argument("--items", type=int, default=6, help="cuts of the clip (default 6)")
    parser.add_argument("--step", type=int, default=40, help="frames between the cuts' starts (default 40)")
    parser.add_argument("--no-cluster", action="store_true", help="leave out the two-node cluster")
    args = parser.parse_args()
    specs = [f"{args.clip}@{args.step * i}" if i else args.clip for i in range(args.items)]
    rows: List[Tuple[str, int, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        base = Path(tmp)
        plain = loop(specs, base / "loop")
        rows.append(("single-process loop (no batch)", 1, plain, 0.0))
        runs = [("batch, one process (--executor serial)", 1, "serial", 1),
                ("batch, Ray, 1 core (--cores 1)", 1, "ray", 1),
                ("batch, Ray, 2 cores (--cores 2)", 2, "ray", 2),
                ("batch, process pool, 2 cores", 2, "process", 2)]
        for i, (label, workers, executor, cores) in enumerate(runs):
            rows.append((label, workers, batch(specs, base / f"b{i}", executor, cores),
                         ray_startup(cores) if executor == "ray" else 0.0))
        note = ""
        if not args.no_cluster:
            seconds, startup, note = cluster_run(specs, base / "cluster")
            rows.append(("batch, Ray, two-node cluster (1 core per node)", 2, seconds, startup))
        shutil.rmtree(base, ignore_errors=True)
    n = len(specs)
    print(f"{n} items: cuts of {args.clip} every {args.step} frames; the loop: {plain / n:.2f} s per item")
    print(f"{'run':50s} {'workers':>7s} {'wall s':>7s} {'items/min':>9s} {'start-up s':>10s} {'overhead/item s':>15s}")
    for label, workers, seconds, startup in rows:
        overhead = ((seconds - startup) * workers - plain) / n
        print(f"{label:50s} {workers:7d} {seconds:7.1f} {60 * n / seconds:9.1f} {startup:10.1f} {overhead:15.2f}")
    if note:
        print(f"two-node cluster left out: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
