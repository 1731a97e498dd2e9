"""Export MediaPipe's bundled face detector and face-landmark models to ONNX.

Writes face_detector.onnx and face_landmarks.onnx (+ JSON sidecars with source hash and I/O contract)
into the models cache (humimic_core.paths.cache_dir()/models) or --out. Idempotent: an export whose
source and converter are unchanged is kept. --benchmark N times N onnxruntime calls per model on one
CPU thread and prints ms per call.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from humimic_perception.export.onnx_export import export_models, models_dir  # noqa: E402


def benchmark(path: Path, calls: int) -> float:
    """Mean ms per onnxruntime call of the model at `path` on one CPU thread (random input)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    contract = json.loads(path.with_suffix(".json").read_text())["inputs"][0]
    low, high = contract["range"]
    feed = {contract["name"]: np.random.default_rng(0).uniform(low, high, contract["shape"]).astype(np.float32)}
    for _ in range(max(calls // 10, 3)):
        session.run(None, feed)
    start = time.perf_counter()
    for _ in range(calls):
        session.run(None, feed)
    return (time.perf_counter() - start) / calls * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default {models_dir()})")
    parser.add_argument("--force", action="store_true", help="export even when up to date")
    parser.add_argument("--benchmark", type=int, default=0, metavar="N",
                        help="time N onnxruntime calls per model on one CPU thread")
    args = parser.parse_args(argv)
    for result in export_models(args.out, args.force):
        if result.exported:
            print(f"{result.path}: exported in {result.seconds:.2f} s (source sha256 {result.source_sha256[:12]})")
        else:
            print(f"{result.path}: up to date (source sha256 {result.source_sha256[:12]})")
        if args.benchmark > 0:
            print(f"  onnxruntime, 1 CPU thread: {benchmark(result.path, args.benchmark):.2f} ms per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
