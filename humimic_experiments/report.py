"""Render a recorded session: AU-versus-joint plots, a latency histogram, a side-by-side video
(the human frame with landmarks | the robot face posed by its joint states), metrics JSON and an
HTML page tying them together. A recording with the robot-face camera (or the twin) on adds the
visual fidelity (person against robot face, both perceived); one with a self-model's
/retarget/self_model_std adds its predicted uncertainty per joint.

    python -m humimic_experiments.report out/session --out out/session_report
"""
from __future__ import annotations

import argparse
import html
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from humimic_core.paths import config_file
from humimic_core.robot_config import RobotConfig, load_robot_config
from humimic_core.topics import (
    ACTION_UNITS,
    CAMERA_IMAGE,
    DEBUG_IMAGE,
    FORECAST,
    JOINT_COMMANDS,
    JOINT_STATES,
    SELF_MODEL_STD,
    WRITTEN_GOALS,
    absolute,
)
from humimic_experiments import visual
from humimic_experiments.bag_io import topic_summary
from humimic_experiments.face_drawing import draw_robot_face
from humimic_experiments.metrics import drop_rate, fidelity_table, stage_latencies
from humimic_experiments.session import Sample, Session, load_session

STAGES = (absolute(ACTION_UNITS), absolute(JOINT_COMMANDS), absolute(WRITTEN_GOALS))
VIDEO = "side_by_side.webm"
#: equal parts of a session its fidelity is also reported for
SEGMENTS = 4


def channel_joint_pairs(config: RobotConfig) -> List[Tuple[str, str]]:
    """(channel, joint) pairs to plot: each mapped joint with its strongest channel, one per channel."""
    pairs, seen = [], set()
    for joint, entry in config.mapping.items():
        if not entry.weights:
            continue
        channel = max(entry.weights, key=lambda c: abs(entry.weights[c]))
        if channel not in seen:
            seen.add(channel)
            pairs.append((channel, joint))
    return pairs


def session_metrics(session: Session, config: RobotConfig) -> Dict[str, object]:
    """Latency per stage, frame drops and (with a forward model) fidelity of the session."""
    frames = [s for _, s in session.frames]
    reached = {topic: [s.stamp for s in session.series.get(topic, [])] for topic in STAGES}
    out: Dict[str, object] = {
        "frames": len(frames),
        "frames_with_face": sum(1 for s in session.series.get(absolute(ACTION_UNITS), []) if s.values),
        "latency_from_camera_stamp": {t: v for t, v in stage_latencies(session.arrivals()).items() if t in STAGES},
        "drop_rate": {topic: drop_rate(frames, stamps) for topic, stamps in reached.items()},
    }
    expected = robot_expression(session, config)
    if expected:
        out["fidelity"] = fidelity_table(session.human_curves(), expected,
                                         segments=equal_segments(session, SEGMENTS))
    if visual.ROBOT_ACTION_UNITS in topic_summary(session.path):
        out["visual"] = visual_fidelity(session.path, config)
    std = session.series.get(absolute(SELF_MODEL_STD))
    if std:
        out["self_model_std"] = std_summary(std, config.mapping.model_max_std)
    return out


def visual_fidelity(path: Path, config: RobotConfig) -> Dict[str, Dict[str, float]]:
    """Per group of the face's geometry and per AU: the person's against the robot face's as the
    recording's two perceptions saw them (r at lag 0, best r where the robot follows)."""
    from humimic_experiments.evaluate import load_pairing, load_recording

    mirror = config.mapping.mirror
    lag = load_pairing(config_file("fidelity.yaml"), config, mirror).max_lag_s
    return visual.recorded_fidelity(path, load_recording(path), mirror, lag)


def std_summary(samples: Sequence[Sample], max_std: Optional[float]) -> Dict[str, Dict[str, float]]:
    """Per joint: the self-model's predicted standard deviation (rad), median and 95th percentile,
    and the share of commands above ``max_std`` (those followed the linear mapping)."""
    out = {}
    for joint in dict.fromkeys(j for s in samples for j in s.values):
        values = np.array([s.values[joint] for s in samples if joint in s.values])
        out[joint] = {"n": int(values.size), "median": float(np.median(values)),
                      "p95": float(np.percentile(values, 95)),
                      "above_max_std": float(np.mean(values > max_std)) if max_std is not None else math.nan}
    return out


def equal_segments(session: Session, count: int) -> List[Tuple[str, float, float]]:
    """The session's camera span cut into `count` equal named segments (start s, end s)."""
    if len(session.frames) < 2:
        return []
    start, end = session.frames[0][1] * 1e-9, session.frames[-1][1] * 1e-9
    step = (end - start) / count
    return [(f"part {i + 1}/{count}", start + i * step, start + (i + 1) * step) for i in range(count)]


def robot_expression(session: Session, config: RobotConfig) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """channel -> (times s, values) the robot is expected to show from its achieved joint states
    (the commands in a re-run without servos), through the inverse of the config's mapping."""
    try:
        from humimic_retarget.offline.forward_model import ForwardModel
    except ImportError:
        return {}
    model = ForwardModel.from_config(config)
    states = session.series.get(absolute(JOINT_STATES)) or session.series.get(absolute(JOINT_COMMANDS), [])
    acc: Dict[str, Tuple[List[float], List[float]]] = {}
    for s in states:
        for channel, value in model.expression(s.values).items():
            ts, vs = acc.setdefault(channel, ([], []))
            ts.append(s.arrival * 1e-9)
            vs.append(value)
    return {k: (np.asarray(t), np.asarray(v)) for k, (t, v) in acc.items()}


def plot_curves(session: Session, config: RobotConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = channel_joint_pairs(config)
    human = session.human_curves()
    forecast = session.curves(absolute(FORECAST))
    states = session.curves(absolute(JOINT_STATES), by="arrival")
    t0 = session.frames[0][0] * 1e-9 if session.frames else 0.0
    fig, axes = plt.subplots(len(pairs), 1, figsize=(12, 1.8 * len(pairs) + 1), sharex=True, squeeze=False)
    for ax, (channel, joint) in zip(axes[:, 0], pairs):
        if channel in human:
            t, v = human[channel]
            ax.plot(t - t0, v, color="tab:blue", linewidth=0.9, label=f"human {channel}")
        if channel in forecast:
            t, v = forecast[channel]
            ax.plot(t - t0, v, color="tab:blue", linewidth=0.9, linestyle="--", label=f"forecast {channel}")
        ax.set_ylabel(channel, color="tab:blue")
        twin = ax.twinx()
        if joint in states:
            t, v = states[joint]
            twin.plot(t - t0, v, color="tab:red", linewidth=0.9, label=f"robot {joint}")
        twin.set_ylabel(f"{joint} (rad)", color="tab:red", fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle("human channel (blue, AU 0-5 or head angle rad; dashed: /face/forecast) vs the robot joint it "
                 "drives (red, /joint_states)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_latency(session: Session, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = {s for _, s in session.frames}
    fig, ax = plt.subplots(figsize=(8, 4))
    for topic in STAGES:
        lat = [(s.arrival - s.stamp) * 1e-6 for s in session.series.get(topic, []) if s.stamp in frames]
        if lat:
            ax.hist(lat, bins=40, alpha=0.5, label=f"{topic} (p50 {np.median(lat):.1f} ms)")
    ax.set_xlabel("latency from camera stamp (ms)")
    ax.set_ylabel("messages")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def render_video(session: Session, config: RobotConfig, path: Path, height: int = 360) -> int:
    """Side-by-side video; returns the number of frames written."""
    topics = topic_summary(session.path)
    source = absolute(DEBUG_IMAGE) if absolute(DEBUG_IMAGE) in topics else absolute(CAMERA_IMAGE)
    total = topics.get(source, ("", 0))[1]
    fps = 30.0
    if len(session.frames) > 2:
        span = (session.frames[-1][1] - session.frames[0][1]) * 1e-9
        fps = (len(session.frames) - 1) / span if span > 0 else fps
    # achieved positions where the servos reported them, else the commands (offline re-runs)
    joint_topic = absolute(JOINT_STATES) if session.series.get(absolute(JOINT_STATES)) else absolute(JOINT_COMMANDS)
    # the robot face as its camera (or the twin) showed it where the recording has it, else a drawing
    watched = session.frames_of(visual.ROBOT_IMAGE) if visual.ROBOT_IMAGE in topics else None
    shown, upcoming = None, next(watched, None) if watched else None
    writer, written = None, 0
    for arrival, stamp, img in tqdm(session.frames_of(source), total=total, desc="side-by-side video",
                                    unit="frame"):
        scale = height / img.shape[0]
        human = cv2.resize(img, (int(round(img.shape[1] * scale)), height))
        while upcoming is not None and upcoming[0] <= arrival:  # the latest robot face received by now
            shown, upcoming = upcoming[2], next(watched, None)
        if shown is not None:
            robot = cv2.resize(shown, (int(round(shown.shape[1] * height / shown.shape[0])), height))
        else:
            joints = session.state_at(joint_topic, arrival) or {}
            robot = draw_robot_face(config, joints, (height, height), label=f"robot ({joint_topic})")
        frame = np.hstack([human, robot])
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), fps, frame.shape[1::-1])
            if not writer.isOpened():
                raise RuntimeError(f"cannot write {path}: OpenCV has no VP8 encoder")
        writer.write(frame)
        written += 1
    if writer is not None:
        writer.release()
    return written


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3g}"
    return html.escape(str(value))


def latency_rows(metrics: Dict[str, object]) -> List[Tuple[str, int, str, str, str]]:
    """(stage topic, messages, p50 ms, p99 ms, drop rate) per stage, formatted."""
    drops = metrics["drop_rate"]
    return [(topic, stats.get("n", 0), _fmt(stats.get("p50_ms")), _fmt(stats.get("p99_ms")),
             _fmt(drops.get(topic, float("nan"))))  # type: ignore[union-attr]
            for topic, stats in metrics["latency_from_camera_stamp"].items()]  # type: ignore[union-attr]


def write_html(out: Path, metrics: Dict[str, object], title: str) -> None:
    rows = []
    for topic, n, p50, p99, dropped in latency_rows(metrics):
        rows.append(f"<tr><td>{html.escape(topic)}</td><td>{n}</td><td>{p50}</td><td>{p99}</td><td>{dropped}</td></tr>")
    fidelity = metrics.get("fidelity") or []
    fid_rows = "".join(
        f"<tr><td>{_fmt(r['segment'])}</td><td>{_fmt(r['channel'])}</td><td>{_fmt(r['pearson'])}</td>"
        f"<td>{_fmt(r['best_pearson'])}</td><td>{_fmt(r['lag_s'])}</td></tr>" for r in fidelity)
    fid_html = (f"<h2>AU-based fidelity (through the inverse mapping)</h2><p>Pearson correlation between "
                f"the human's AUs and head angles and the expression the robot is expected to show from its "
                f"achieved joint states through the inverse of the same mapping (forward model): it cannot see "
                f"perception errors nor a wrong mapping; <code>humimic-eval</code> measures the face's geometry "
                f"against the joints. Best lag searched where the robot follows (&ge; 0).</p><table id='fidelity'><tr><th>segment</th><th>channel</th>"
                f"<th>r (lag 0)</th><th>r (best lag)</th><th>lag (s)</th></tr>{fid_rows}</table>"
                if fidelity else "")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1300px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}img,video{{max-width:100%}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p id="summary">{metrics['frames']} camera frames, {metrics['frames_with_face']} with a face.</p>
<h2>Human and robot, side by side</h2>
<video id="video" src="{VIDEO}" controls loop muted width="960"></video>
<h2>Channels and the joints they drive</h2><img id="curves" src="curves.png" alt="AU and joint curves">
<h2>Latency</h2><img id="latency" src="latency.png" alt="latency histogram">
<table id="latency-table"><tr><th>stage</th><th>n</th><th>p50 (ms)</th><th>p99 (ms)</th><th>drop rate</th></tr>
{''.join(rows)}</table>
{fid_html}
{visual_html(metrics)}
<p>Raw figures: <a href="metrics.json">metrics.json</a></p>
</body></html>
"""
    (out / "index.html").write_text(page)


def visual_html(metrics: Dict[str, object]) -> str:
    """The visual fidelity and the self-model's uncertainty, where the recording has them."""
    parts = []
    figures = metrics.get("visual") or {}
    if figures:
        rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{_fmt(f['r'])}</td><td>{_fmt(f['best_r'])}</td>"
                       f"<td>{f['lag_frames']}</td><td>{f['n']}</td></tr>"
                       for name, f in figures.items())  # type: ignore[union-attr]
        parts.append("<h2>Visual fidelity (person against the robot's face)</h2><p>The person's facial geometry "
                     "and AUs against the robot face's, both as perception saw them (the robot face: "
                     "/robot_face/face/..., from its camera or the face twin), the robot's side mirrored where "
                     "the mapping mirrors. Best lag searched where the robot follows (&ge; 0).</p>"
                     "<table id='visual'><tr><th>channel</th><th>r (lag 0)</th><th>r (best lag)</th>"
                     f"<th>lag (frames)</th><th>frames</th></tr>{rows}</table>")
    std = metrics.get("self_model_std") or {}
    if std:
        rows = "".join(f"<tr><td>{html.escape(joint)}</td><td>{_fmt(f['median'])}</td><td>{_fmt(f['p95'])}</td>"
                       f"<td>{_fmt(f['above_max_std'])}</td></tr>" for joint, f in std.items())  # type: ignore[union-attr]
        parts.append("<h2>Self-model uncertainty</h2><p>The self-model's predicted standard deviation per joint "
                     "(/retarget/self_model_std, rad) and the share of commands above mapping.model.max_std "
                     "(those followed the linear mapping).</p><table id='self-model-std'><tr><th>joint</th>"
                     f"<th>median (rad)</th><th>p95 (rad)</th><th>above max_std</th></tr>{rows}</table>")
    return "\n".join(parts)


def summary_lines(metrics: Dict[str, object]) -> List[str]:
    """The report's figures for a terminal: latency per stage and the whole session's fidelity."""
    lines = [f"{metrics['frames']} frames, {metrics['frames_with_face']} with a face",
             f"{'stage':<24} {'p50 ms':>7} {'p99 ms':>7} {'dropped':>8}"]
    lines += [f"{topic:<24} {p50:>7} {p99:>7} {dropped:>8}" for topic, _, p50, p99, dropped in latency_rows(metrics)]
    rows = [r for r in metrics.get("fidelity") or [] if r["segment"] == "all"]  # type: ignore[union-attr]
    if rows:
        lines.append(f"{'AU-based fidelity':<24} {'r':>7} {'r best':>7} {'lag s':>8}")
        lines += [f"{r['channel']:<24} {_fmt(r['pearson']):>7} {_fmt(r['best_pearson']):>7} {_fmt(r['lag_s']):>8}"
                  for r in rows]
    figures = metrics.get("visual") or {}
    if figures:
        lines.append(f"{'visual fidelity':<24} {'r':>7} {'r best':>7} {'lag fr':>8}")
        lines += [f"{name:<24} {_fmt(f['r']):>7} {_fmt(f['best_r']):>7} {f['lag_frames']:>8}"
                  for name, f in figures.items()]  # type: ignore[union-attr]
    std = metrics.get("self_model_std") or {}
    if std:
        lines.append(f"{'self-model std (rad)':<24} {'median':>7} {'p95':>7} {'>max':>8}")
        lines += [f"{joint:<24} {_fmt(f['median']):>7} {_fmt(f['p95']):>7} {_fmt(f['above_max_std']):>8}"
                  for joint, f in std.items()]  # type: ignore[union-attr]
    return lines


def render_report(recording: str | Path, out: str | Path, config: Optional[RobotConfig] = None) -> Path:
    """Write the report of a recording into `out`; returns the HTML page's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = config or load_robot_config(config_file("robot_face.yaml"))
    session = load_session(recording)
    if not session.frames:
        raise ValueError(f"{recording}: no /camera/image_raw messages: nothing to report")
    metrics = session_metrics(session, config)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    plot_curves(session, config, out / "curves.png")
    plot_latency(session, out / "latency.png")
    metrics["video_frames"] = render_video(session, config, out / VIDEO)
    write_html(out, metrics, f"humimic session {Path(recording).name}")
    return out / "index.html"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recording", help="recording folder (segments) or a rosbag2 bag folder")
    parser.add_argument("--out", default=None, help="report folder (default: <recording>_report)")
    parser.add_argument("--robot-config", default=str(config_file("robot_face.yaml")), help="robot config YAML")
    args = parser.parse_args(argv)
    out = args.out or f"{args.recording.rstrip('/')}_report"
    page = render_report(args.recording, out, load_robot_config(args.robot_config))
    print("\n".join(summary_lines(json.loads((page.parent / "metrics.json").read_text()))))
    print(f"humimic-report: wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
