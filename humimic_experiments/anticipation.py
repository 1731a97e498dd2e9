"""Anticipation, measured: re-runs (humimic-eval's reruns/) retargeted again with forecasts of given
settings, then the kinematic measure (lag and r at lag 0 per group, blinks) and onset anticipation.
The robot's side is the positions its servos reach: the commands driven, a loop latency after their
stamps (``--latency``, default the live p50: driven.LOOP_LATENCY_S), through the live driver's code
over emulated servos (humimic_experiments.driven); ``--commands`` measures the commands themselves.

Perception runs once per clip (humimic-eval); retargeting a clip again takes milliseconds, so
methods and horizons are compared on the same measured channels.

    python -m humimic_experiments.anticipation --reruns out/eval/reruns --out out/anticipation [--commands]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from humimic_core.head_frame import head_angles, quaternion_to_matrix
from humimic_core.paths import config_file
from humimic_core.robot_config import RobotConfig, load_robot_config
from humimic_core.topics import ACTION_UNITS, GAZE, HEAD_POSE, absolute
from humimic_experiments import driven, evaluate, kinematic
from humimic_experiments.bag_io import deserialize, read_messages
from humimic_experiments.session import stamp_ns
from humimic_retarget.forecast import ForecastSettings, make_forecaster
from humimic_retarget.retargeter import Retargeter, RetargetParams

Channels = Optional[Dict[str, float]]

#: Onset events: (event, channels whose mean is watched, threshold in AU intensity). An onset is an
#: upward crossing; the event re-arms once the signal falls under half the threshold.
ONSETS = (("smile", ("AU12",), 1.5), ("blink", ("AU45",), 2.5), ("brow_raise", ("AU01", "AU02"), 1.5),
          ("mouth_open", ("AU26",), 1.5))
#: Seconds before a measured onset within which a forecast onset counts as predicting it.
ONSET_WINDOW = 0.5
#: The groups of the issue's lag target.
TARGET_GROUPS = ("jaw", "upper_lids", "lip_corners")


@dataclass
class ClipData:
    """A re-run clip: its recording (landmarks, head pose) and each frame's channels (None: no face)."""

    label: str
    recording: evaluate.Recording
    channels: List[Channels]


def load_channels(path: Path, stamps: np.ndarray) -> List[Channels]:
    """Each frame's channels as the retarget node joins them (AUs, head angles, gaze) on ``stamps``."""
    aus: Dict[int, Dict[str, float]] = {}
    extra: Dict[int, Dict[str, float]] = {}
    for m in read_messages(path, [absolute(ACTION_UNITS), absolute(HEAD_POSE), absolute(GAZE)]):
        msg = deserialize(m)
        stamp = stamp_ns(msg)
        if m.topic == absolute(ACTION_UNITS):
            aus[stamp] = dict(zip(msg.name, msg.position))
        elif m.topic == absolute(HEAD_POSE):
            q = msg.pose.orientation
            yaw, pitch, roll = head_angles(quaternion_to_matrix((q.x, q.y, q.z, q.w)))
            extra.setdefault(stamp, {}).update(head_yaw=yaw, head_pitch=pitch, head_roll=roll)
        else:
            extra.setdefault(stamp, {}).update(gaze_yaw=msg.vector.x, gaze_pitch=msg.vector.y)
    return [{**aus[s], **extra.get(s, {})} if aus.get(s) else None for s in stamps.tolist()]


def load_clip(folder: Path) -> ClipData:
    recording = evaluate.load_recording(folder, "commands")  # the robot's side is retargeted again
    return ClipData(folder.name, recording, load_channels(folder, recording.stamps))


def retarget(clip: ClipData, config: RobotConfig, params: RetargetParams, settings: ForecastSettings,
             latency_s: float = driven.LOOP_LATENCY_S) -> Tuple[Dict[str, np.ndarray], List[Channels]]:
    """(joint -> command per frame, the forecast channels per frame) of a clip retargeted with ``settings``,
    the forecast counting a loop latency of ``latency_s``."""
    retargeter = Retargeter(config, params)
    forecaster = make_forecaster(settings, retargeter.response_times(), retargeter.driver_times(), latency_s)
    commands, forecasts = [], []
    for stamp, channels in zip(clip.recording.stamps.tolist(), clip.channels):
        t = stamp * 1e-9
        ahead = channels if forecaster is None else forecaster(t, channels)
        forecasts.append(ahead)
        commands.append(retargeter.update(t, ahead))
    return {j: np.array([c[j] for c in commands]) for j in config.joint_names}, forecasts


def onset_times(times: np.ndarray, frames: Sequence[Channels]) -> Dict[str, List[float]]:
    """Event -> times of its onsets (ONSETS) in a series of frames' channels."""
    out: Dict[str, List[float]] = {}
    for event, names, threshold in ONSETS:
        armed, found = True, []
        for t, ch in zip(times, frames):
            level = np.mean([ch.get(n, np.nan) for n in names]) if ch else np.nan
            if not np.isfinite(level) or level < threshold * 0.5:
                armed = True
            elif armed and level >= threshold:
                armed = False
                found.append(float(t))
        out[event] = found
    return out


def onset_anticipation(clips: Sequence[Tuple[np.ndarray, Sequence[Channels], Sequence[Channels]]]
                       ) -> Dict[str, Dict[str, float]]:
    """Per event over (times, measured, forecast) clips: measured onsets, share predicted (a forecast
    onset within ONSET_WINDOW s before or at it), median lead (s) of the predicted ones, and false
    forecast onsets (no measured onset within ONSET_WINDOW s after) per minute of face time."""
    out = {}
    face_minutes = sum(sum(ch is not None for ch in m) * float(np.median(np.diff(t))) for t, m, _ in clips) / 60.0
    for event, _, _ in ONSETS:
        leads, measured, false = [], 0, 0
        for times, real, ahead in clips:
            a, b = onset_times(times, real)[event], onset_times(times, ahead)[event]
            measured += len(a)
            for t in a:
                before = [f for f in b if t - ONSET_WINDOW <= f <= t + 1e-9]
                if before:
                    leads.append(t - before[0])
            false += sum(1 for f in b if not any(f - 1e-9 <= t <= f + ONSET_WINDOW for t in a))
        out[event] = {"onsets": measured, "predicted": len(leads) / measured if measured else float("nan"),
                      "lead_ms": 1e3 * float(np.median(leads)) if leads else float("nan"),
                      "false_per_min": false / face_minutes if face_minutes else float("nan")}
    return out


def fine_lag(segments: Sequence[Tuple[np.ndarray, np.ndarray]], fps: float, frames: int = 6) -> float:
    """The robot's lag (ms; < 0: it leads) at the peak of r over lags -frames..frames, refined between
    frames by the parabola through the best lag and its neighbours (the table's lag is whole frames)."""
    lags = np.arange(-frames, frames + 1)
    r = np.array([kinematic.pooled_pearson(segments, int(k))[0] if k >= 0 else
                  kinematic.pooled_pearson([(y, x) for x, y in segments], int(-k))[0] for k in lags])
    if not np.isfinite(r).any():
        return float("nan")
    i = int(np.nanargmax(r))
    shift = 0.0
    if 0 < i < lags.size - 1 and np.isfinite(r[i - 1:i + 2]).all():
        curvature = r[i - 1] - 2 * r[i] + r[i + 1]
        shift = 0.5 * (r[i - 1] - r[i + 1]) / curvature if curvature < 0 else 0.0
    return 1e3 * (lags[i] + shift) / fps


def measure(clips: Sequence[ClipData], config: RobotConfig, params: RetargetParams, pairing: evaluate.Pairing,
            settings: ForecastSettings, forecasters: Optional[Mapping[str, ForecastSettings]] = None,
            measured: str = "positions", params_file: Optional[Path] = None,
            latency_s: float = driven.LOOP_LATENCY_S) -> Dict[str, object]:
    """Pooled kinematic figures and onset anticipation of the clips retargeted with ``settings`` (or,
    per clip label, ``forecasters[label]``: a model trained without that clip's person), measured on
    the servos' achieved positions (the driver settings of ``params_file``, each command written
    ``latency_s`` after its stamp) or the "commands"."""
    params_file = params_file or config_file("humimic.yaml")
    results, onsets = [], []
    for clip in clips:
        chosen = (forecasters or {}).get(clip.label, settings)
        positions, forecasts = retarget(clip, config, params, chosen, latency_s)
        if measured == "positions":
            positions = driven.achieved(config, params_file, clip.recording.stamps, positions, latency_s=latency_s)
        recording = dataclasses.replace(clip.recording, positions=positions)
        results.append(evaluate.measure(recording, pairing, config))
        onsets.append((clip.recording.stamps * 1e-9, clip.channels, forecasts))
    lag = max(f["max_lag_frames"] for f, _ in results)
    pooled = evaluate.pooled(results, lag, pairing.blinks["reach"])
    fps = float(np.median([c.recording.fps for c in clips]))
    each: Dict[str, Dict[str, Tuple[float, float]]] = {c.label: {} for c in clips}  # clip -> group -> (r@0, lag ms)
    behind: Dict[str, Dict[str, float]] = {}  # group -> the person a frame late (kinematic.one_frame_behind)
    for group, figures in pooled["groups"].items():
        per_clip = [[s for p, ss in clip_segments.items() if p.group == group for s in ss]
                    for _, clip_segments in results]
        every = [s for segments in per_clip for s in segments]
        figures["lag_ms"] = fine_lag(every, fps)
        reference = kinematic.one_frame_behind(every)
        behind[group] = {"r": kinematic.pooled_pearson(reference, 0)[0], "lag_ms": fine_lag(reference, fps)}
        lags = []
        for segments, clip in zip(per_clip, clips):
            if segments:
                lags.append(fine_lag(segments, clip.recording.fps))
                each[clip.label][group] = (kinematic.pooled_pearson(segments, 0)[0], lags[-1])
        figures["lag_ms_clip_median"] = float(np.nanmedian(lags)) if np.isfinite(lags).any() else float("nan")
    blink_delays = [e["delay"] for f, _ in results for e in f["blinks"]["events"]]
    return {"groups": pooled["groups"], "blinks": pooled["blinks"], "one_frame_behind": behind,
            "blink_delay_ms_median": 1e3 * float(np.nanmedian(blink_delays)) / fps if blink_delays else float("nan"),
            "onsets": onset_anticipation(onsets) if settings.enabled or forecasters else None, "fps": fps,
            "measured": measured, "clips": each}


def row(name: str, figures: Mapping[str, object], groups: Sequence[str] = TARGET_GROUPS) -> List[str]:
    """name, per group 'r@0 / lag ms: whole frames, fine_lag pooled, median of the clips' fine lags',
    blink depth, delay (frames), onset leads."""
    fps = figures["fps"]
    cells = [name]
    for g in groups:
        f = figures["groups"].get(g)
        cells.append(f"{f['r']:.3f} / {1e3 * f['lag_frames'] / fps:.0f} / {f['lag_ms']:.0f} / "
                     f"{f['lag_ms_clip_median']:.0f}"
                     if f else "–")
    b = figures["blinks"]
    cells += [f"{b.get('depth_median', float('nan')):.2f}", f"{b.get('delay_median', float('nan')):+.1f}"]
    onsets = figures.get("onsets")
    cells.append(", ".join(f"{k} {v['lead_ms']:.0f} ms {v['predicted']:.0%} ({v['false_per_min']:.1f}/min)"
                           for k, v in onsets.items()) if onsets else "–")
    return cells


def compare(reruns: Path, out: Path, variants: Sequence[Tuple[str, ForecastSettings]],
            learned: Optional[Mapping[str, str]] = None, params_file: Optional[Path] = None,
            config: Optional[RobotConfig] = None, log=print, measured: str = "positions",
            latency_s: float = driven.LOOP_LATENCY_S) -> Dict[str, object]:
    """Figures of each (name, settings) variant over every re-run in ``reruns``, measured on the servos'
    positions (commands written ``latency_s`` after their stamps) or the "commands"; ``learned``: clip label -> its held-out model, measured as one more
    variant per horizon of the learned settings."""
    from humimic_core.parameters import node_parameters

    params_file = Path(params_file or config_file("humimic.yaml"))
    config = config or load_robot_config(config_file("robot_face.yaml"))
    params = RetargetParams.from_parameters(node_parameters(params_file, "retarget"))
    mirror = config.mapping.mirror if params.mirror is None else bool(params.mirror)
    pairing = evaluate.load_pairing(config_file("fidelity.yaml"), config, mirror)
    clips = [load_clip(p) for p in sorted(reruns.iterdir()) if (p / "metrics.json").is_file()]
    report = {}
    table = [[f"variant ({measured})", *(f"{g}: r@0 / lag ms (frames, fine, clips' median)" for g in TARGET_GROUPS), "blink depth",
                          "blink delay (frames)", "onsets: median lead, predicted (false/min)"]]
    for name, settings in variants:
        if settings.method == "learned" and learned:
            models = {c.label: dataclasses.replace(settings, model=learned[c.label.split("_from_")[0]])
                      for c in clips}
            figures = measure(clips, config, params, pairing, settings, models, measured, params_file, latency_s)
        else:
            figures = measure(clips, config, params, pairing, settings, None, measured, params_file, latency_s)
        report[name] = figures
        table.append(row(name, figures))
        log(" | ".join(table[-1]))
    if report:  # the same for every variant: the person's own geometry
        behind = next(iter(report.values()))["one_frame_behind"]
        cells = [f"{behind[g]['r']:.3f} / – / {behind[g]['lag_ms']:.0f} / –" if g in behind else "–"
                 for g in TARGET_GROUPS]
        table.append([kinematic.REFERENCE_ROW, *cells, "–", "–", "–"])
        log(" | ".join(table[-1]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "anticipation.json").write_text(json.dumps(report, indent=2, default=float))
    (out / "anticipation.md").write_text(evaluate.format_markdown(table) + "\n")
    return report


def plot(rerun: Path, png: Path, settings: ForecastSettings, joints: Sequence[Tuple[str, str, float]] = (
        ("jaw", "mouth_open", 1.0), ("lip_corner_left", "lip_corner_R", 1.0),
        ("upper_lid_left", "eye_aperture_R", -1.0)),
         config: Optional[RobotConfig] = None, latency_s: float = driven.LOOP_LATENCY_S) -> None:
    """The person's signal and the robot's joint with and without the forecast, one panel per
    (joint, signal, sign), each series scaled to its own range, as a PNG: the positions the emulated
    servos reach (solid; commands written ``latency_s`` after their stamps) and the commands (dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = config or load_robot_config(config_file("robot_face.yaml"))
    clip = load_clip(rerun)
    signals = kinematic.geometry(clip.recording.points, clip.recording.rotations)
    stamps = clip.recording.stamps
    variants = []
    for name, chosen, colour in (("forecast off", ForecastSettings(enabled=False), "tab:blue"),
                                 (f"{settings.method} ≤ {1e3 * settings.horizon:.0f} ms ahead", settings, "tab:red")):
        commands, _ = retarget(clip, config, RetargetParams(), chosen, latency_s)
        positions = driven.achieved(config, config_file("humimic.yaml"), stamps, commands, latency_s=latency_s)
        variants.append((name, colour, commands, positions))
    t = (stamps - stamps[0]) * 1e-9

    def unit(x, like=None):
        x = np.asarray(x, float)
        ref = x if like is None else np.asarray(like, float)
        lo, hi = np.nanmin(ref), np.nanmax(ref)
        return (x - lo) / (hi - lo) if hi > lo else x * 0

    fig, axes = plt.subplots(len(joints), 1, figsize=(10, 2.6 * len(joints)), sharex=True)
    for ax, (joint, signal, sign) in zip(np.atleast_1d(axes), joints):
        person = f"person: {'-' if sign < 0 else ''}{signal} (landmarks)"
        ax.plot(t, unit(sign * signals[signal]), "k", lw=1.2, label=person)
        for name, colour, commands, positions in variants:
            ax.plot(t, unit(positions[joint], commands[joint]), colour, label=f"robot {joint} position: {name}")
            ax.plot(t, unit(commands[joint]), colour, ls=":", lw=0.9, label=f"command: {name}")
        ax.legend(loc="upper left", fontsize=7, ncol=2)
        ax.set_ylabel("scaled")
    np.atleast_1d(axes)[-1].set_xlabel(f"s ({clip.label}; positions: commands {1e3 * latency_s:.1f} ms after "
                                       f"their stamps)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=80)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reruns", required=True, help="humimic-eval's reruns/ folder")
    parser.add_argument("--out", required=True, help="output folder: anticipation.json, anticipation.md")
    parser.add_argument("--horizons", default="0.033,0.067,0.1", help="horizons (s) to compare, comma-separated")
    parser.add_argument("--methods", default="linear,kalman", help="methods to compare")
    parser.add_argument("--models", default=None,
                        help="folder of held-out learned models (humimic-forecast-train --cross-validate)")
    parser.add_argument("--commands", action="store_true",
                        help="measure the commands instead of the positions the emulated servos reach")
    parser.add_argument("--latency", type=float, default=driven.LOOP_LATENCY_S,
                        help="s from a frame's stamp to its command's bus write on the driven servos (default: "
                             "the live p50, docs/latency.md); the forecast counts it too")
    args = parser.parse_args(argv)
    variants = [("off", ForecastSettings(enabled=False))]
    learned = None
    methods = [m for m in args.methods.split(",") if m]
    if args.models:
        learned = json.loads((Path(args.models) / "held_out.json").read_text())
        methods.append("learned")
    for method in methods:
        for h in (float(x) for x in args.horizons.split(",")):
            model = "held out" if method == "learned" else ""  # replaced per clip by its held-out model
            variants.append((f"{method} {1e3 * h:.0f} ms", ForecastSettings(True, method, h, model)))
    compare(Path(args.reruns), Path(args.out), variants, learned, measured="commands" if args.commands else "positions",
            latency_s=args.latency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
