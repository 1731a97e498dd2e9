"""Cost per frame of each forecaster (humimic_retarget/forecast.py) against the retargeter's own step,
on one core, on a synthetic 30 fps stream of every published channel.

    python tools/bench_forecast.py [--frames 3000]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humimic_core.channels import PUBLISHED  # noqa: E402
from humimic_core.paths import config_file  # noqa: E402
from humimic_core.robot_config import load_robot_config  # noqa: E402
from humimic_experiments.driven import LOOP_LATENCY_S  # noqa: E402
from humimic_experiments.forecast_train import export  # noqa: E402
from humimic_retarget.offline.fitting import fit_ridge  # noqa: E402
from humimic_retarget.forecast import (ForecastSettings, LearnedForecaster, feature_names,  # noqa: E402
                                       make_forecaster)
from humimic_retarget.stream_time import LATENCY_WINDOW, StreamTime  # noqa: E402
from humimic_retarget.retargeter import Retargeter, RetargetParams  # noqa: E402


def per_frame_ms(step, frames) -> float:
    t0 = time.perf_counter()
    for i, channels in enumerate(frames):
        step(i / 30.0, channels)
    return (time.perf_counter() - t0) * 1e3 / len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=3000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.normal(0.0, 0.05, (args.frames, len(PUBLISHED))), axis=0)
    frames = [dict(zip(PUBLISHED, row.tolist())) for row in values]
    retargeter = Retargeter(load_robot_config(config_file("robot_face.yaml")), RetargetParams())
    rows = [("retargeter.update (baseline)", per_frame_ms(retargeter.update, frames))]
    response, driver = retargeter.response_times(), retargeter.driver_times()
    for name in ("linear", "kalman"):  # as the node runs them: horizons per channel, recomputed every frame
        forecaster = make_forecaster(ForecastSettings(method=name), response, driver, LOOP_LATENCY_S)
        rows.append((f"forecast {name}", per_frame_ms(forecaster, frames)))
    time_base = StreamTime(1.0)
    time_base.latency_ms.extend([1e3 * (LOOP_LATENCY_S - ForecastSettings().hop)] * LATENCY_WINDOW)
    rows.append(("loop latency (median, live)", per_frame_ms(lambda t, c: time_base.median_latency(), frames)))
    with tempfile.TemporaryDirectory() as folder:  # a ridge model of the shipped shape (weights do not matter)
        x = rng.normal(size=(500, len(feature_names())))
        export(fit_ridge(x, rng.normal(size=(500, len(PUBLISHED))), 1e-2), Path(folder) / "m.onnx", 0.1, [])
        learned = LearnedForecaster(0.1, str(Path(folder) / "m.onnx"))
        rows.append(("forecast learned (ridge, ONNX)", per_frame_ms(learned, frames)))
    print(f"{args.frames} frames of {len(PUBLISHED)} channels, one core")
    for name, ms in rows:
        print(f"{name:32s} {ms:.3f} ms/frame")


if __name__ == "__main__":
    main()
