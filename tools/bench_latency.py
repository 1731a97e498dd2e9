#!/usr/bin/env python3
"""Latency budget of the live pipeline, before and after the latency work (issue 15), in one run.

Runs the demo (every node its own process, the emulated servo bus) on the sample clip, alternating
the previous settings ("before") and the current ones ("after"), and prints a README-ready table:
for each traced stage (humimic_core/trace.py) the ms after the camera stamp, p50 and p99, before
and after (each the median over the runs of each setting), then the end-to-end camera stamp ->
bus write as the driver measures it and as the monitor sees /driver/written_goals, the frames
perception dropped, and the trace's own cost per frame. What "before" turns off (each flag keeps
one improvement on in "before" too, to measure it alone):

  --keep-executor   EventsExecutor (before: SingleThreadedExecutor, HUMIMIC_EXECUTOR=single)
  --keep-gc         gc.freeze after start-up (before: HUMIMIC_GC=off)
  --keep-priority   the driver's SCHED_FIFO priority (before: realtime_priority 0)
  --keep-phase      the driver's state reads between commands (before: reads_between_commands false)
  --keep-gating     visual outputs only for subscribers (before: the monitor subscribes to
                    /face/landmarks and /face/boxes, which perception always published)
  --keep-late-detection  perception's search for further faces after the frame's outputs (before:
                    late_detection false, the detector before the landmarks)
  --keep-retarget-priority  the retarget node's SCHED_FIFO priority (before: realtime_priority 0)

The publish order (action units, pose and gaze first) and the message conversions are in both.
Absolute figures depend on the machine and its load: compare the columns of one run.

    python tools/bench_latency.py [--runs 2] [--video FILE] [--fps 30] [--out out/bench_latency]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from humimic_core.paths import config_file  # noqa: E402
from humimic_core.trace import FrameTrace, to_msg  # noqa: E402
from humimic_perception.perception_node import TRACE_STAGES, TRACE_STEPS  # noqa: E402

VISUALS = ["/face/landmarks", "/face/boxes"]
WRITTEN = "/driver/written_goals"


def params_file(args: argparse.Namespace, path: Path, changes: List[tuple]) -> Optional[Path]:
    """The shipped parameters with ``changes`` ((node, name, value), ...) and the camera at ``--fps``, written
    to ``path``; None when that changes nothing."""
    if args.fps:
        changes = [*changes, ("camera", "fps", args.fps)]
    if not changes:
        return None
    values = yaml.safe_load(config_file("humimic.yaml").read_text())
    for node, name, value in changes:
        values[node]["ros__parameters"][name] = value
    path.write_text(yaml.safe_dump(values))
    return path


def before_settings(args: argparse.Namespace, out: Path) -> Dict[str, object]:
    """Environment, params file and extra subscriptions of the "before" runs."""
    env: Dict[str, str] = {}
    if not args.keep_executor:
        env["HUMIMIC_EXECUTOR"] = "single"
    if not args.keep_gc:
        env["HUMIMIC_GC"] = "off"
    changes = [(node, name, value) for node, name, value, keep in (
        ("dynamixel_driver", "realtime_priority", 0, args.keep_priority),
        ("dynamixel_driver", "reads_between_commands", False, args.keep_phase),
        ("face_perception", "late_detection", False, args.keep_late_detection),
        ("retarget", "realtime_priority", 0, args.keep_retarget_priority)) if not keep]
    params = params_file(args, out / "before_params.yaml", changes)
    return {"env": env, "params": params, "subscribe": [] if args.keep_gating else VISUALS}


def run_demo(label: str, index: int, settings: Dict[str, object], args: argparse.Namespace, out: Path) -> dict:
    folder = out / f"{label}-{index}"
    cmd = [sys.executable, "-m", "humimic_bringup.demo", "--out", str(folder)]
    if args.video:
        cmd += ["--video", args.video]
    if settings["params"]:
        cmd += ["--params-file", str(settings["params"])]
    if settings["subscribe"]:
        cmd += ["--subscribe", *settings["subscribe"]]
    env = {**os.environ, "PYTHONPATH": str(ROOT), **settings["env"]}
    started = time.time()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench_latency: the {label} demo failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    print(f"  {label} run {index + 1}: {time.time() - started:.0f} s", flush=True)
    return json.loads((folder / "summary.json").read_text())


def figures(summary: dict) -> Dict[str, Dict[str, float]]:
    """name -> {p50, p99} (ms) of one demo run: every traced stage and the end-to-end figures."""
    out = {row["stage"]: {"p50": row["after_stamp"]["p50_ms"], "p99": row["after_stamp"]["p99_ms"]}
           for row in summary["trace"] if row["after_stamp"].get("n")}
    driver = summary["latency_bus_write_driver"]
    if "dynamixel_driver: servo bus/latency_p50_ms" in driver:
        out["end to end: bus write (driver)"] = {"p50": float(driver["dynamixel_driver: servo bus/latency_p50_ms"]),
                                                 "p99": float(driver["dynamixel_driver: servo bus/latency_p99_ms"])}
    written = summary["latency_from_camera_stamp"].get(WRITTEN, {})
    if written.get("n"):
        out[f"end to end: {WRITTEN} (monitor)"] = {"p50": written["p50_ms"], "p99": written["p99_ms"]}
    return out


def median(runs: List[Dict[str, Dict[str, float]]], name: str, key: str) -> Optional[float]:
    values = [r[name][key] for r in runs if name in r]
    return statistics.median(values) if values else None


def cell(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def trace_cost_us(frames: int = 20000) -> float:
    """µs per frame of perception's trace: its marks, and its share of a batch message."""
    trace = FrameTrace("face_perception", TRACE_STAGES)
    marks = [s for s in TRACE_STAGES if s not in TRACE_STEPS]
    steps = dict.fromkeys(TRACE_STEPS, 1.0)
    start = time.perf_counter()
    for i in range(frames):
        for stage in marks[:3]:
            trace.mark(i, stage)
        trace.mark_steps(i, "convert", steps)
        for stage in marks[3:]:
            trace.mark(i, stage)
        if i % 15 == 14:  # a batch every 0.5 s at 30 fps
            to_msg(trace.take(hold_ns=0))
    return (time.perf_counter() - start) / frames * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="demo runs of each setting (alternating)")
    parser.add_argument("--video", default="", help="clip (default: the sample clip)")
    parser.add_argument("--fps", type=float, default=0.0,
                        help="camera publish rate for both settings (0 = the clip's own; 30: issue 15's frame rate)")
    parser.add_argument("--out", default="out/bench_latency")
    for flag in ("executor", "gc", "priority", "phase", "gating", "late-detection", "retarget-priority"):
        parser.add_argument(f"--keep-{flag}", action="store_true", help=f"keep the {flag} improvement in 'before'")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    settings = {"before": before_settings(args, out),
                "after": {"env": {}, "params": params_file(args, out / "after_params.yaml", []), "subscribe": []}}
    print(f"bench_latency: {args.runs} demo run(s) per setting, alternating; before = "
          f"{json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in settings['before'].items()})}",
          flush=True)
    runs: Dict[str, List[dict]] = {"before": [], "after": []}
    for index in range(args.runs):
        for label in ("before", "after"):
            runs[label].append(run_demo(label, index, settings[label], args, out))
    measured = {label: [figures(s) for s in summaries] for label, summaries in runs.items()}
    names = list(dict.fromkeys(n for r in measured["after"] + measured["before"] for n in r))
    print(f"\nms after the camera stamp, median of {args.runs} run(s) each:\n")
    print("| stage | p50 before | p50 after | p99 before | p99 after |")
    print("|---|---|---|---|---|")
    for name in names:
        b50, a50 = median(measured["before"], name, "p50"), median(measured["after"], name, "p50")
        b99, a99 = median(measured["before"], name, "p99"), median(measured["after"], name, "p99")
        print(f"| {name} | {cell(b50)} | {cell(a50)} | {cell(b99)} | {cell(a99)} |")
    for label, summaries in runs.items():
        dropped = [s["frames_dropped_by_perception"] for s in summaries]
        print(f"\n{label}: frames {[s['frames_received'] for s in summaries]}, dropped by perception {dropped}, "
              f"CPU % {summaries[-1]['cpu_percent_of_one_core']}")
    print(f"trace cost: {trace_cost_us():.1f} µs per frame in perception (12 stages, batches included)")
    (out / "bench.json").write_text(json.dumps({"settings": {k: {**v, "params": str(v["params"])}
                                                             for k, v in settings.items()},
                                                "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
