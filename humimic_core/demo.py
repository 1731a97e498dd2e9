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
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from humimic_core.graph import add_camera_subscriber, imitation_graph, process_environment
from humimic_core.runner import Pipeline, argument_parser, launch_values

TOPICS = ("/camera/image_raw", "/face/action_units", "/joint_commands", "/driver/written_goals", "/joint_states")
#: joints drawn in the picture
PLOT_JOINTS = ("jaw", "lip_corner_left", "brow_inner_left", "upper_lid_left", "neck_yaw", "neck_pitch")
SNAPSHOTS = 6
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


def percentiles(values: Sequence[float]) -> Dict[str, float]:
    if not values:
        return {"n": 0}
    a = np.asarray(values)
    return {"n": int(a.size), "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max())}


class Monitor:
    """An rclpy node that watches the pipeline's topics and keeps what the report needs."""

    def __init__(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image, JointState

        from humimic_core.ros_util import RECORDER_RELIABLE_QOS as RELIABLE_QOS, RECORDER_SENSOR_QOS as SENSOR_QOS

        rclpy.init()
        self.node = rclpy.create_node("humimic_demo_monitor")
        self.times: Dict[str, List[float]] = defaultdict(list)
        self.latency_ms: Dict[str, List[float]] = defaultdict(list)
        self.joints: List[tuple] = []
        self.commands: List[tuple] = []
        self.aus: List[tuple] = []
        self.snapshots: List[tuple] = []
        self.diagnostics: Dict[str, str] = {}
        self.first_frame: Optional[float] = None
        sub = self.node.create_subscription
        sub(Image, "/camera/image_raw", lambda m: self._seen("/camera/image_raw", m), SENSOR_QOS)
        sub(Image, "/face/debug_image", self._debug_image, SENSOR_QOS)
        sub(JointState, "/face/action_units", self._action_units, RELIABLE_QOS)
        sub(JointState, "/joint_commands", self._command, RELIABLE_QOS)
        sub(JointState, "/driver/written_goals", lambda m: self._seen("/driver/written_goals", m), RELIABLE_QOS)
        sub(JointState, "/joint_states", self._joint_states, RELIABLE_QOS)
        sub(DiagnosticArray, "/diagnostics", self._diagnostics, RELIABLE_QOS)

    def _seen(self, topic: str, msg) -> float:
        now = time.time()
        if self.first_frame is None and topic == "/camera/image_raw":
            self.first_frame = now
        self.times[topic].append(now)
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if topic != "/joint_states":
            self.latency_ms[topic].append((now - stamp) * 1e3)
        return now

    def _action_units(self, msg) -> None:
        now = self._seen("/face/action_units", msg)
        self.aus.append((now, dict(zip(msg.name, msg.position))))

    def _command(self, msg) -> None:
        now = self._seen("/joint_commands", msg)
        self.commands.append((now, dict(zip(msg.name, msg.position))))

    def _joint_states(self, msg) -> None:
        now = self._seen("/joint_states", msg)
        self.joints.append((now, dict(zip(msg.name, msg.position))))

    def _debug_image(self, msg) -> None:
        now = time.time()
        if self.snapshots and now - self.snapshots[-1][0] < 1.0:
            return
        img = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : msg.width * 3]
        img = img.reshape(msg.height, msg.width, 3)[::2, ::2, ::-1].copy()  # half size, BGR -> RGB
        self.snapshots.append((now, img))

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


def frame_counts(frames: int, aus: Sequence[Mapping[str, float]],
                 diagnostics: Mapping[str, str]) -> Dict[str, Optional[int]]:
    """What became of the camera frames: perception's answers split into with / without a face, and
    the frames it dropped (skipped for a newer one while busy, from its /diagnostics; None: not
    reported) apart."""
    dropped = diagnostics.get("face_perception: frames/dropped")
    return {"frames_received": frames, "frames_processed": len(aus), "frames_with_face": sum(1 for au in aus if au),
            "frames_no_face": sum(1 for au in aus if not au),
            "frames_dropped_by_perception": int(dropped) if dropped is not None else None}


def rates(times: Dict[str, List[float]]) -> Dict[str, float]:
    """Messages per second of each topic while the camera streamed (first to last frame), so the
    driver's start-up moves and the glide to neutral after the clip do not count."""
    frames = times.get(TOPICS[0], [])
    if len(frames) < 2 or frames[-1] <= frames[0]:
        return {topic: 0.0 for topic in TOPICS}
    start, end = frames[0], frames[-1]
    return {topic: sum(start <= t <= end for t in times.get(topic, [])) / (end - start) for topic in TOPICS}


def draw(monitor: Monitor, path: Path) -> None:
    """Frames with landmarks (top) beside joint positions and action units over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = min([monitor.first_frame or math.inf] + [t for t, _ in monitor.snapshots[:1]])
    fig = plt.figure(figsize=(16, 10), constrained_layout=True)
    grid = fig.add_gridspec(3, SNAPSHOTS)
    shots = monitor.snapshots
    picks = [shots[int(i)] for i in np.linspace(0, len(shots) - 1, min(SNAPSHOTS, len(shots)))] if shots else []
    for k, (t, img) in enumerate(picks):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(img)
        ax.set_title(f"t = {t - t0:.1f} s", fontsize=9)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    for joint in PLOT_JOINTS:
        pts = [(t - t0, js[joint]) for t, js in monitor.joints if joint in js]
        if pts:
            line, = ax.plot(*zip(*pts), label=f"{joint} (state)")
            cmd = [(t - t0, c[joint]) for t, c in monitor.commands if joint in c]
            if cmd:
                ax.plot(*zip(*cmd), "--", color=line.get_color(), alpha=0.5, linewidth=0.8)
    for t, _ in picks:
        ax.axvline(t - t0, color="grey", alpha=0.3)
    ax.set_ylabel("joint position (rad)")
    ax.set_title("servo present positions from /joint_states (solid) and /joint_commands (dashed)")
    ax.legend(loc="upper right", fontsize=8, ncol=3)
    ax = fig.add_subplot(grid[2, :], sharex=ax)
    # the AUs that move most: a picture of all 17 would hide them
    codes = sorted({c for _, au in monitor.aus for c in au})
    spread = {c: np.std([au[c] for _, au in monitor.aus if c in au]) for c in codes}
    for code in sorted(sorted(codes, key=lambda c: -spread[c])[:PLOT_AUS]):
        pts = [(t - t0, au[code]) for t, au in monitor.aus if code in au]
        ax.plot(*zip(*pts), label=code, linewidth=0.9)
    no_face = [t - t0 for t, au in monitor.aus if not au]
    if no_face:
        ax.plot(no_face, [-0.2] * len(no_face), "k|", label="no face")
    ax.set_xlim(left=-0.5)
    ax.set_xlabel("time since first frame (s)")
    ax.set_ylabel(f"AU intensity (0-5), {PLOT_AUS} most varying")
    ax.legend(loc="upper right", fontsize=8, ncol=5)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argument_parser(__doc__.split("\n")[0])
    parser.add_argument("--out", default="out/demo", help="folder for summary.json, demo.png and logs")
    parser.add_argument("--timeout", type=float, default=120.0, help="stop after this many seconds anyway")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    values = launch_values(args)
    specs = imitation_graph(values, include_external=False)
    add_camera_subscriber(specs)  # the monitor sees the first frame too
    os.environ.update(process_environment(os.environ))  # the monitor's DDS transports match the nodes'
    monitor = Monitor()
    pipeline = Pipeline(specs, out / "logs")
    meter = CpuMeter()
    last_sample = [0.0]

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
            all(node.count_publishers(t) for t in TOPICS[1:]) and node.count_subscribers(TOPICS[0]) >= 2), 60.0)
        monitor.spin_until(lambda: False, 1.0)
        pipeline.start()
        print(f"humimic-demo: started {', '.join(pipeline.processes)} (logs in {out / 'logs'})", flush=True)
        monitor.spin_until(lambda: monitor.first_frame is not None or pipeline.failed(), 60.0)
        wall_start = time.time()
        camera = pipeline.processes["camera"]
        monitor.spin_until(lambda: sampled(lambda: camera.poll() is not None or pipeline.failed()), args.timeout)
        wall = time.time() - wall_start
        monitor.spin_until(lambda: False, 2.0)  # the robot glides back to neutral
    finally:
        codes = pipeline.stop()
        monitor.close()
    failed = {n: c for n, c in codes.items() if c not in (0, None)}
    cpu = meter.percent()
    frames = len(monitor.times["/camera/image_raw"])
    summary = {
        "video": values["video"] or "sample (camera.source of config/humimic.yaml)",
        **frame_counts(frames, [au for _, au in monitor.aus], monitor.diagnostics),
        "duration_s": round(wall, 2),
        "rates_hz": {k: round(v, 2) for k, v in rates(monitor.times).items()},
        "latency_from_camera_stamp": {t: percentiles(v) for t, v in monitor.latency_ms.items()},
        "latency_bus_write_driver": {k: v for k, v in monitor.diagnostics.items()
                                     if k.startswith("dynamixel_driver") and "latency" in k},
        "retarget_frame_stamps": {k.split("/", 1)[1]: v for k, v in monitor.diagnostics.items()
                                  if k.startswith("retarget: frame stamps/")},
        "cpu_percent_of_one_core": cpu,
        "exit_codes": codes,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    draw(monitor, out / "demo.png")
    print(f"\n{'topic':28s} {'rate (Hz)':>10s} {'latency p50 (ms)':>17s} {'p99 (ms)':>9s}")
    for topic in TOPICS:
        lat = summary["latency_from_camera_stamp"].get(topic, {})
        p50 = f"{lat['p50_ms']:.1f}" if lat.get("n") and topic != "/joint_states" else "-"
        p99 = f"{lat['p99_ms']:.1f}" if lat.get("n") and topic != "/joint_states" else "-"
        print(f"{topic:28s} {summary['rates_hz'][topic]:10.1f} {p50:>17s} {p99:>9s}")
    print("end-to-end = camera stamp -> /driver/written_goals (driver's bus write, +1 DDS hop)")
    for key, value in summary["latency_bus_write_driver"].items():
        print(f"driver-measured {key}: {value}")
    print("CPU % of one core: " + ", ".join(f"{n} {c}" for n, c in cpu.items()))
    print(f"frames: {frames}, processed by perception: {summary['frames_processed']} (with a face "
          f"{summary['frames_with_face']}, no face {summary['frames_no_face']}), dropped by perception (busy, "
          f"newest frame first): {summary['frames_dropped_by_perception']}")
    print(f"wrote {out / 'summary.json'} and {out / 'demo.png'}")
    for name, code in failed.items():
        print(f"humimic-demo: {name} exited with code {code} (see {out / 'logs' / (name + '.log')})", file=sys.stderr)
    return 1 if failed or frames == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
