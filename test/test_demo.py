"""The demo: bounded monitor memory, latency statistics, and Ctrl-C (a real SIGINT) ending with the
summary and exit code 130."""
from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

from humimic_bringup.demo import TOPICS
from humimic_bringup.monitor_stats import LatencyHistogram, RunRecord, Thinned


def feed(record: RunRecord, seconds: float, t0: float = 0.0) -> float:
    """Synthetic messages as a 24 fps camera, 50 Hz joint states and a debug image per frame would
    bring them, with 10-20 ms latency; the time after the last."""
    rng = np.random.default_rng(0)
    t = t0
    for k in range(int(seconds * 24)):
        t = t0 + k / 24
        for topic in TOPICS[:4]:
            record.message(topic, t, t + 0.010 + 0.010 * rng.random())
        record.action_units(t, {"AU12": float(rng.random())} if k % 10 else {})
        record.commands.add((t, {"jaw": 0.1}))
        for _ in range(2):
            record.message("/joint_states", t, t, latency=False)
            record.joints.add((t, {"jaw": 0.1}))
        if record.wants_snapshot(t):
            record.snapshots.add((t, np.zeros((180, 320, 3), np.uint8)))
    return t


def test_monitor_memory_is_bounded_for_any_length_of_run():
    record = RunRecord(TOPICS, series_limit=1000, snapshot_limit=12)
    tracemalloc.start()
    try:
        end = feed(record, 600.0)  # 10 minutes
        after_10_min = tracemalloc.get_traced_memory()[0]
        retained_10_min = record.retained()
        feed(record, 3000.0, t0=end + 1 / 24)  # an hour in all
        after_60_min = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    print(f"retained samples {retained_10_min} / {record.retained()}, "
          f"memory {after_10_min / 1e6:.1f} / {after_60_min / 1e6:.1f} MB after 10 / 60 min")
    assert record.retained() <= 3 * 1000 + 12 and retained_10_min <= 3 * 1000 + 12
    assert after_60_min < after_10_min + 1e6, "no growth with the length of the run"
    assert record.frames == 3600 * 24 and record.counts["/joint_states"] == 2 * record.frames
    # the kept samples still span the whole run, evenly
    times = [t for t, _ in record.joints.items]
    assert times[0] == 0.0 and times[-1] > 0.95 * 3600 and np.ptp(np.diff(times)) == pytest.approx(0, abs=1e-6)
    shots = [t for t, _ in record.snapshots.items]
    assert len(shots) >= 6 and shots[-1] > 0.5 * 3600
    rates = record.rates()
    assert rates["/camera/image_raw"] == pytest.approx(24.0, rel=1e-3)
    assert rates["/joint_states"] == pytest.approx(48.0, rel=1e-3)
    latency = record.latency["/joint_commands"].summary()
    assert latency["n"] == record.frames and 10.0 <= latency["p50_ms"] <= 20.0 and latency["max_ms"] <= 20.0


def test_latency_percentiles_within_one_percent_and_absurd_stamps_ignored():
    rng = np.random.default_rng(1)
    values = rng.lognormal(math.log(12.0), 0.5, 20_000)
    histogram = LatencyHistogram()
    for v in values:
        histogram.add(float(v))
    for absurd in (-5.0, -0.001, 10_000.5, 1e12, math.nan):
        histogram.add(absurd)
    summary = histogram.summary()
    assert summary["n"] == values.size and summary["ignored_absurd_stamps"] == 5
    assert summary["p50_ms"] == pytest.approx(np.percentile(values, 50), rel=0.01)
    assert summary["p99_ms"] == pytest.approx(np.percentile(values, 99), rel=0.01)
    assert summary["max_ms"] == values.max()
    record = RunRecord(TOPICS)
    record.message("/joint_commands", stamp=100.0, now=50.0)  # a stamp from another clock
    assert record.latency["/joint_commands"].summary() == {"n": 0, "ignored_absurd_stamps": 1}


def test_thinned_keeps_every_sample_until_full():
    thinned: Thinned[int] = Thinned(8)
    for k in range(7):
        thinned.add(k)
    assert thinned.items == list(range(7))
    for k in range(7, 100):
        thinned.add(k)
    assert len(thinned.items) < 8 and thinned.items[0] == 0 and thinned.items[-1] >= 100 - thinned.stride


def test_ctrl_c_prints_the_summary_and_exits_130(sample_media, tmp_path):
    """A real SIGINT to ./run demo (humimic-demo) while frames stream: the pipeline stops (the driver
    takes the servos to neutral and exits 0), the summary is printed and written, no traceback."""
    out = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "humimic_bringup.demo", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = proc.stdout.readline()
        assert "humimic-demo: started" in started, started + proc.stderr.read()
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr, stderr
    assert "(interrupted)" in stdout and "/driver/written_goals" in stdout, stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["frames_received"] < 472
    assert summary["exit_codes"]["dynamixel_driver"] == 0 and summary["exit_codes"]["servo_emulator"] == 0


def test_monitor_watches_the_remapped_names_and_records_the_default_ones():
    """Under `--remap`, the nodes publish on the remapped names: the monitor must watch those (it used
    to watch the defaults and saw nothing), and its summary keeps the default names."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState

    from humimic_bringup.demo import Monitor

    monitor = Monitor(remaps=[("/joint_commands", "/robot1/joint_commands")])
    try:
        watched = {s.topic_name for s in monitor.node.subscriptions}
        assert "/robot1/joint_commands" in watched and "/joint_commands" not in watched
        assert "/joint_states" in watched  # not remapped: the default
        publisher = monitor.node.create_publisher(
            JointState, "/robot1/joint_commands", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        msg = JointState(name=["jaw"], position=[0.2])
        msg.header.stamp = monitor.node.get_clock().now().to_msg()
        monitor.spin_until(lambda: publisher.get_subscription_count() > 0, 10.0)
        publisher.publish(msg)
        monitor.spin_until(lambda: monitor.record.counts["/joint_commands"] > 0, 10.0)
        assert monitor.record.counts["/joint_commands"] == 1
    finally:
        monitor.close()
