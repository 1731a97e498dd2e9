"""The imitation demo: the whole pipeline on a video (default: the sample clip) and the emulated
servo bus, every node its own process; prints per-topic rates, end-to-end latency and CPU use,
and writes a summary JSON and a picture (frames with landmarks beside the joint positions).

    ./run demo [--video FILE] [--out out/demo]
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from humimic_bringup.graph import add_camera_subscriber, imitation_graph, parse_remaps, process_environment
from humimic_bringup.monitor_stats import RunRecord, TraceStats, trace_table
from humimic_bringup.runner import INTERRUPTED, Pipeline, argument_parser, launch_values, preflight
from humimic_core import trace
from humimic_core.stamps import to_ns
from humimic_core.topics import (
    ACTION_UNITS,
    CAMERA_IMAGE,
    DEBUG_IMAGE,
    DIAGNOSTICS,
    JOINT_COMMANDS,
    JOINT_STATES,
    SENSOR,
    TRACE,
    WRITTEN_GOALS,
    absolute,
    message_class,
    resolve,
)
from humimic_core.topics import TOPICS as TOPIC_TYPES

TOPICS = tuple(absolute(t) for t in (CAMERA_IMAGE, ACTION_UNITS, JOINT_COMMANDS, WRITTEN_GOALS, JOINT_STATES))
#: joints drawn in the picture
PLOT_JOINTS = ("jaw", "lip_corner_left", "brow_inner_left", "upper_lid_left", "neck_yaw", "neck_pitch")
SNAPSHOTS = 6
#: the traced nodes, in pipeline order (humimic_core/trace.py)
TRACED_NODES = ("camera", "face_perception", "retarget", "dynamixel_driver")
#: action units drawn (those that vary most over the run)
PLOT_AUS = 6


def cpu_seconds(pid: int) -> Optional[float]:
    """User + system CPU seconds of a running process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU use of each process over the streaming window, sampled while it runs (so a process
    that exits, like the camera at the end of a file, still gets its figure)."""

    def __init__(self) -> None:
        self.first: Dict[str, tuple] = {}
        self.last: Dict[str, tuple] = {}

    def sample(self, processes: Mapping[str, "subprocess.Popen"]) -> None:
        now = time.time()
        for name, proc in processes.items():
            cpu = cpu_seconds(proc.pid) if proc.poll() is None else None
            if cpu is not None:
                self.first.setdefault(name, (now, cpu))
                self.last[name] = (now, cpu)

    def percent(self) -> Dict[str, float]:
        """name -> % of one core over the sampled window."""
        out = {}
        for name, (t1, c1) in self.last.items():
            t0, c0 = self.first[name]
            if t1 - t0 > 1.0:
                out[name] = round(100.0 * (c1 - c0) / (t1 - t0), 1)
        return out


class Monitor:
    """An rclpy node that watches the pipeline's topics into a RunRecord (bounded memory)."""

    def __init__(self, extra_topics: Sequence[str] = (), remaps: Sequence[Tuple[str, str]] = ()) -> None:
        """``extra_topics``: also subscribed to (and ignored), as rviz or a recorder would; ``remaps``: the
        nodes' topic remappings (launch argument ``remap``), so the monitor watches the names they use.
        Everything is recorded under the default names."""
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Float64MultiArray

        from humimic_core.ros_util import RECORDER_RELIABLE_QOS as RELIABLE_QOS
        from humimic_core.ros_util import RECORDER_SENSOR_QOS as SENSOR_QOS

        # Ctrl-C raises KeyboardInterrupt (the demo stops the pipeline and prints its summary)
        # instead of shutting rclpy down under the monitor
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("humimic_demo_monitor")
        self.record = RunRecord(TOPICS)
        self.diagnostics: Dict[str, str] = {}
        self.trace = TraceStats(TRACED_NODES)
        self.name = lambda topic: resolve(absolute(topic), remaps)

        def sub(msgtype, topic, callback, qos):
            self.node.create_subscription(msgtype, self.name(topic), callback, qos)

        sub(Image, absolute(CAMERA_IMAGE), self._frame, SENSOR_QOS)
        sub(Float64MultiArray, absolute(TRACE), lambda m: self.trace.add(trace.from_msg(m)), RELIABLE_QOS)
        sub(Image, absolute(DEBUG_IMAGE), self._debug_image, SENSOR_QOS)
        sub(JointState, absolute(ACTION_UNITS), self._action_units, RELIABLE_QOS)
        sub(JointState, absolute(JOINT_COMMANDS), self._command, RELIABLE_QOS)
        sub(JointState, absolute(WRITTEN_GOALS), lambda m: self._seen(absolute(WRITTEN_GOALS), m), RELIABLE_QOS)
        sub(JointState, absolute(JOINT_STATES), self._joint_states, RELIABLE_QOS)
        sub(DiagnosticArray, DIAGNOSTICS, self._diagnostics, RELIABLE_QOS)
        for topic in extra_topics:
            msgtype, kind = TOPIC_TYPES[absolute(topic)]
            sub(message_class(msgtype), absolute(topic), lambda m: None, SENSOR_QOS if kind == SENSOR else RELIABLE_QOS)

    def _seen(self, topic: str, msg) -> float:
        now = time.time()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.record.message(topic, stamp, now, latency=topic != absolute(JOINT_STATES))
        return now

    def _frame(self, msg) -> None:
        self._seen(absolute(CAMERA_IMAGE), msg)
        self.trace.frame(to_ns(msg.header.stamp))

    def _action_units(self, msg) -> None:
        now = self._seen(absolute(ACTION_UNITS), msg)
        self.record.action_units(now, dict(zip(msg.name, msg.position)))

    def _command(self, msg) -> None:
        now = self._seen(absolute(JOINT_COMMANDS), msg)
        self.record.commands.add((now, dict(zip(msg.name, msg.position))))

    def _joint_states(self, msg) -> None:
        now = self._seen(absolute(JOINT_STATES), msg)
        self.record.joints.add((now, dict(zip(msg.name, msg.position))))

    def _debug_image(self, msg) -> None:
        now = time.time()
        if not self.record.wants_snapshot(now):
            return
        img = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : msg.width * 3]
        img = img.reshape(msg.height, msg.width, 3)[::2, ::2, ::-1].copy()  # half size, BGR -> RGB
        self.record.snapshots.add((now, img))

    def _diagnostics(self, msg) -> None:
        for status in msg.status:
            for kv in status.values:
                self.diagnostics[f"{status.name}/{kv.key}"] = kv.value

    def spin_until(self, done, timeout: float) -> None:
        import rclpy

        deadline = time.time() + timeout
        while time.time() < deadline and not done():
            rclpy.spin_once(self.node, timeout_sec=0.05)

    def close(self) -> None:
        import rclpy

        self.node.destroy_node()
        rclpy.try_shutdown()


def log_warnings(path: Path, limit: int = 5) -> List[str]:
    """The last ``limit`` warning lines of a node's log, without the level and time stamp."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line.split("]: ", 1)[-1] for line in lines if line.startswith("[WARN]")][-limit:]


def frame_counts(frames: int, processed: int, with_face: int, diagnostics: Mapping[str, str]) -> Dict[str, Optional[int]]:
    """What became of the camera frames: perception's answers split into with / without a face, and
    the frames it dropped (skipped for a newer one while busy, from its /diagnostics; None: not
    reported) apart."""
    dropped = diagnostics.get("face_perception: frames/dropped")
    return {"frames_received": frames, "frames_processed": processed, "frames_with_face": with_face,
            "frames_no_face": processed - with_face,
            "frames_dropped_by_perception": int(dropped) if dropped is not None else None}


def draw(record: RunRecord, path: Path) -> None:
    """Frames with landmarks (top) beside joint positions and action units over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shots = record.snapshots.items
    t0 = min([record.first_frame or math.inf] + [t for t, _ in shots[:1]])
    if not math.isfinite(t0):
        t0 = min([t for t, _ in record.joints.items[:1]] or [0.0])
    fig = plt.figure(figsize=(16, 10), constrained_layout=True)
    grid = fig.add_gridspec(3, SNAPSHOTS)
    picks = [shots[int(i)] for i in np.linspace(0, len(shots) - 1, min(SNAPSHOTS, len(shots)))] if shots else []
    for k, (t, img) in enumerate(picks):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(img)
        ax.set_title(f"t = {t - t0:.1f} s", fontsize=9)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    for joint in PLOT_JOINTS:
        pts = [(t - t0, js[joint]) for t, js in record.joints.items if joint in js]
        if pts:
            line, = ax.plot(*zip(*pts), label=f"{joint} (state)")
            cmd = [(t - t0, c[joint]) for t, c in record.commands.items if joint in c]
            if cmd:
                ax.plot(*zip(*cmd), "--", color=line.get_color(), alpha=0.5, linewidth=0.8)
    for t, _ in picks:
        ax.axvline(t - t0, color="grey", alpha=0.3)
    ax.set_ylabel("joint position (rad)")
    ax.set_title("servo present positions from /joint_states (solid) and /joint_commands (dashed)")
    ax.legend(loc="upper right", fontsize=8, ncol=3)
    ax = fig.add_subplot(grid[2, :], sharex=ax)
    # the AUs that move most: a picture of all 17 would hide them
    aus = record.aus.items
    codes = sorted({c for _, au in aus for c in au})
    spread = {c: np.std([au[c] for _, au in aus if c in au]) for c in codes}
    for code in sorted(sorted(codes, key=lambda c: -spread[c])[:PLOT_AUS]):
        pts = [(t - t0, au[code]) for t, au in aus if code in au]
        ax.plot(*zip(*pts), label=code, linewidth=0.9)
    no_face = [t - t0 for t, au in aus if not au]
    if no_face:
        ax.plot(no_face, [-0.2] * len(no_face), "k|", label="no face")
    ax.set_xlim(left=-0.5)
    ax.set_xlabel("time since first frame (s)")
    ax.set_ylabel(f"AU intensity (0-5), {PLOT_AUS} most varying")
    ax.legend(loc="upper right", fontsize=8, ncol=5)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The demo; Ctrl-C outside the run itself (set-up, drawing) also ends it quietly with 130."""
    try:
        return run_demo(argv)
    except KeyboardInterrupt:
        print("\nhumimic-demo: interrupted", file=sys.stderr)
        return INTERRUPTED


def run_demo(argv: Optional[Sequence[str]] = None) -> int:
    parser = argument_parser(__doc__.split("\n")[0])
    parser.add_argument("--out", default="out/demo", help="folder for summary.json, demo.png and logs")
    parser.add_argument("--timeout", type=float, default=120.0, help="stop after this many seconds anyway")
    parser.add_argument("--check", action="store_true", help="only check the inputs (exit 0: usable, 2: not)")
    parser.add_argument("--subscribe", nargs="*", default=[], metavar="TOPIC",
                        help="also subscribe to these topics, as rviz would (e.g. /face/landmarks /face/boxes: "
                             "perception makes its visual outputs only for subscribers)")
    args = parser.parse_args(argv)
    values = launch_values(args)
    error = preflight(values, "humimic-demo")
    if error or args.check:
        return error
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    specs = imitation_graph(values, include_external=False)
    add_camera_subscriber(specs)  # the monitor sees the first frame too
    os.environ.update(process_environment(os.environ))  # the monitor's DDS transports match the nodes'
    unknown = [t for t in args.subscribe if absolute(t) not in TOPIC_TYPES]
    if unknown:
        parser.error(f"--subscribe: unknown topic(s) {', '.join(unknown)}")
    monitor = Monitor(args.subscribe, parse_remaps(values["remap"]))
    record = monitor.record
    pipeline = Pipeline(specs, out / "logs")
    meter = CpuMeter()
    last_sample = [0.0]
    wall_start: Optional[float] = None
    interrupted = False

    def sampled(done) -> bool:
        if time.time() - last_sample[0] >= 0.5:
            meter.sample(pipeline.processes)
            last_sample[0] = time.time()
        return done()

    try:
        # the camera starts once the monitor is matched with every stage, so no frame goes unseen
        pipeline.start(skip=["camera"])
        node = monitor.node
        monitor.spin_until(lambda: bool(pipeline.failed()) or (
            all(node.count_publishers(monitor.name(t)) for t in TOPICS[1:])
            and node.count_subscribers(monitor.name(TOPICS[0])) >= 2), 60.0)
        monitor.spin_until(lambda: False, 1.0)
        pipeline.start()
        print(f"humimic-demo: started {', '.join(pipeline.processes)} (logs in {out / 'logs'})", flush=True)
        monitor.spin_until(lambda: record.first_frame is not None or pipeline.failed(), 60.0)
        wall_start = time.time()
        camera = pipeline.processes["camera"]
        monitor.spin_until(lambda: sampled(lambda: camera.poll() is not None or pipeline.failed()), args.timeout)
        monitor.spin_until(lambda: False, 2.0)  # the robot glides back to neutral
    except KeyboardInterrupt:
        interrupted = True
        print("\nhumimic-demo: interrupted; stopping the pipeline (the driver moves the servos to neutral)",
              file=sys.stderr, flush=True)
    finally:
        wall = time.time() - wall_start if wall_start is not None else 0.0
        codes = pipeline.stop()
        monitor.close()
    failed = {n: c for n, c in codes.items() if c not in (0, None)}
    cpu = meter.percent()
    summary = {
        "video": values["video"] or "sample (camera.source of config/humimic.yaml)",
        "interrupted": interrupted,
        **frame_counts(record.frames, record.counts.get(absolute(ACTION_UNITS), 0), record.frames_with_face,
                       monitor.diagnostics),
        "duration_s": round(wall, 2),
        "rates_hz": {k: round(v, 2) for k, v in record.rates().items()},
        "latency_from_camera_stamp": {t: h.summary() for t, h in record.latency.items()},
        "latency_bus_write_driver": {k: v for k, v in monitor.diagnostics.items()
                                     if k.startswith("dynamixel_driver") and "latency" in k},
        "retarget_frame_stamps": {k.split("/", 1)[1]: v for k, v in monitor.diagnostics.items()
                                  if k.startswith("retarget: frame stamps/")},
        "cpu_percent_of_one_core": cpu,
        "trace": monitor.trace.rows(),
        "exit_codes": codes,
        "camera_warnings": log_warnings(out / "logs" / "camera.log"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    draw(record, out / "demo.png")
    print(f"\n{'topic':28s} {'rate (Hz)':>10s} {'latency p50 (ms)':>17s} {'p99 (ms)':>9s}")
    for topic in TOPICS:
        lat = summary["latency_from_camera_stamp"].get(topic, {})
        p50 = f"{lat['p50_ms']:.1f}" if lat.get("n") and topic != absolute(JOINT_STATES) else "-"
        p99 = f"{lat['p99_ms']:.1f}" if lat.get("n") and topic != absolute(JOINT_STATES) else "-"
        print(f"{topic:28s} {summary['rates_hz'][topic]:10.1f} {p50:>17s} {p99:>9s}")
    print("end-to-end = camera stamp -> /driver/written_goals (driver's bus write, +1 DDS hop)")
    ignored = {t: h.ignored for t, h in record.latency.items() if h.ignored}
    if ignored:
        print("latency: ignored absurd stamps (negative or > 10 s): "
              + ", ".join(f"{t} {n}" for t, n in ignored.items()))
    for key, value in summary["latency_bus_write_driver"].items():
        print(f"driver-measured {key}: {value}")
    print("\nper-stage trace, ms (camera stamp -> each stage of each node; step = since the node's previous stage):")
    print("\n".join(trace_table(summary["trace"])))
    print("CPU % of one core: " + ", ".join(f"{n} {c}" for n, c in cpu.items()))
    print(f"frames: {record.frames}, processed by perception: {summary['frames_processed']} (with a face "
          f"{summary['frames_with_face']}, no face {summary['frames_no_face']}), dropped by perception (busy, "
          f"newest frame first): {summary['frames_dropped_by_perception']}" + (" (interrupted)" if interrupted else ""))
    print(f"wrote {out / 'summary.json'} and {out / 'demo.png'}")
    for line in summary["camera_warnings"]:  # a truncated video, undecodable frames
        print(f"humimic-demo: camera: {line}", file=sys.stderr)
    for name, code in failed.items():
        print(f"humimic-demo: {name} exited with code {code} (see {out / 'logs' / (name + '.log')})", file=sys.stderr)
    if interrupted:
        return INTERRUPTED
    return 1 if failed or record.frames == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
