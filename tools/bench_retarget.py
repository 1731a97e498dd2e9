"""Per-frame cost of the retargeting for each mapping type, on a synthetic session.

    .venv/bin/python tools/bench_retarget.py [--frames 3000]

For each mapping type - linear weights; weights + response curves + mirror (the shipped config);
a learned ridge and a learned MLP (fitted here on a synthetic session, exported to ONNX and run
with ONNX Runtime) - it times Retargeter.update (mapping, hold/glide, smoothing, limits and
couplings) per frame, and the mapping alone, on one CPU thread of this machine.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from humimic_core.paths import config_file  # noqa: E402
from humimic_core.robot_config import RobotConfig, load_robot_config, parse_robot_config  # noqa: E402
from humimic_retarget.expression_mapping import ExpressionMapping  # noqa: E402
from humimic_retarget.offline.fit_tool import fit  # noqa: E402
from humimic_retarget.offline.onnx_export import export_onnx  # noqa: E402
from humimic_retarget.offline.paired_data import PairedData  # noqa: E402
from humimic_retarget.retargeter import Retargeter, RetargetParams  # noqa: E402
from humimic_retarget.offline.synthetic_pairs import synthetic_session  # noqa: E402


def timed(fn: Callable[[int], object], n: int) -> np.ndarray:
    """Microseconds of each of n calls fn(i)."""
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out[i] = (time.perf_counter() - t0) * 1e6
    return out


def variant(base: RobotConfig, **mapping) -> RobotConfig:
    data = copy.deepcopy(base.raw)
    data["mapping"] = {**data["mapping"], **mapping}
    return parse_robot_config(data, base.source)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    args = parser.parse_args()
    base = load_robot_config(config_file("robot_face.yaml"))
    names, x, y = synthetic_session(base, seconds=max(60.0, args.frames / 30.0), seed=0)
    frames: List[Dict[str, float]] = [dict(zip(names, row)) for row in x[:args.frames].tolist()]
    with tempfile.TemporaryDirectory() as tmp:
        data = PairedData(names, base.joint_names, x, y)
        models = {kind: export_onnx(fit(data, kind=kind).network, names, base.joint_names, Path(tmp) / f"{kind}.onnx")
                  for kind in ("ridge", "mlp")}
        variants = {
            "linear": variant(base, curves={}, mirror=False),
            "linear + curves + mirror": base,
            "learned ridge (ONNX)": variant(base, model={"path": str(models["ridge"])}),
            "learned MLP 32 (ONNX)": variant(base, model={"path": str(models["mlp"])}),
        }
        print(f"{len(frames)} frames, {len(names)} channels -> {len(base.servos)} joints, "
              f"{len(base.constraints.couplings)} couplings; microseconds per frame")
        print(f"{'mapping type':<26}{'update mean':>12}{'p50':>8}{'p99':>8}{'mapping only':>14}")
        for label, config in variants.items():
            r = Retargeter(config, RetargetParams())
            mapping = ExpressionMapping(config)
            for i in range(200):  # warm-up
                r.update(i / 30.0, frames[i % len(frames)])
            t0 = 200 / 30.0
            update = timed(lambda i: r.update(t0 + i / 30.0, frames[i]), len(frames))
            alone = timed(lambda i: mapping(frames[i]), len(frames))
            print(f"{label:<26}{update.mean():>12.1f}{np.percentile(update, 50):>8.1f}"
                  f"{np.percentile(update, 99):>8.1f}{alone.mean():>14.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
