"""Latency work (issue 15): the per-frame trace, its statistics, perception's publish order, the
executor choice and the garbage-collector freeze. The trace of every node in a real run is checked in
test_imitation_pipeline.py."""
from __future__ import annotations

import gc
import math
import sys
import time
from typing import List

import cv2
import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import Vector3Stamped
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Header, String
from visualization_msgs.msg import MarkerArray

from humimic_bringup.monitor_stats import TraceStats, trace_table
from humimic_core import ros_util, trace
from humimic_core.stamps import from_ns
from humimic_core.trace import FrameTrace
from humimic_perception.ros_convert import image_from_msg, image_to_msg


class Clock:
    """A wall clock in ns the test moves."""

    def __init__(self, t: int) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def test_trace_marks_each_stage_in_ms_after_the_frame_stamp():
    clock = Clock(0)
    frame_trace = FrameTrace("node", ("receive", "convert", "a", "b", "sent"), clock=clock)
    stamp = 1_700_000_000_123_456_789
    clock.t = stamp + 2_000_000
    frame_trace.mark(stamp, "receive")
    clock.t += 500_000
    frame_trace.mark(stamp, "receive", once=True)  # kept: the first part's arrival
    frame_trace.mark(stamp, "convert")
    frame_trace.mark_steps(stamp, "convert", {"a": 4.0, "b": 1.0})
    clock.t += 6_000_000
    frame_trace.mark(stamp, "sent")
    frame_trace.mark(stamp + 1, "receive")  # another frame, nothing else reached
    assert frame_trace.take() is None  # both frames may still be in the node
    clock.t += trace.HOLD_NS
    batch = frame_trace.take()
    assert batch.node == "node" and batch.stamps == [stamp, stamp + 1]
    np.testing.assert_allclose(batch.ms[0], [2.0, 2.5, 6.5, 7.5, 8.5])
    assert batch.ms[1][0] == pytest.approx(8.5) and np.isnan(batch.ms[1][1:]).all()
    assert frame_trace.take() is None  # taken: the buffer starts empty
    assert not frame_trace.marked(stamp)


def test_trace_holds_back_a_frame_still_in_the_node():
    clock = Clock(10_000_000_000)
    frame_trace = FrameTrace("node", ("receive", "sent"), clock=clock)
    frame_trace.mark(1, "receive")
    clock.t += trace.HOLD_NS
    frame_trace.mark(2, "receive")
    assert frame_trace.take().stamps == [1]
    frame_trace.mark(2, "sent")
    clock.t += trace.HOLD_NS
    batch = frame_trace.take()
    assert batch.stamps == [2] and not np.isnan(batch.ms).any()  # one row, not split over two batches


def test_trace_keeps_the_newest_rows_and_counts_the_overwritten():
    frame_trace = FrameTrace("node", ("receive",), capacity=4, clock=Clock(10_000_000))
    for stamp in range(6):
        frame_trace.mark(stamp, "receive")
    frame_trace.mark(3, "receive")  # a row still held is marked again, not added
    batch = frame_trace.take(hold_ns=0)
    assert sorted(batch.stamps) == [2, 3, 4, 5] and frame_trace.overwritten == 2


def test_a_full_trace_sends_a_batch_early_instead_of_dropping_rows():
    """Frames faster than a batch per TRACE_PERIOD (a lockstep replay on a fast machine) lose no row."""
    clock = Clock(10_000_000_000)
    frame_trace = FrameTrace("node", ("receive",), capacity=4, clock=clock)
    sent = []
    frame_trace.when_full = lambda: sent.append(frame_trace.take(hold_ns=0))
    for stamp in range(10):
        frame_trace.mark(stamp, "receive")
    sent.append(frame_trace.take(hold_ns=0))
    assert sorted(s for batch in sent for s in batch.stamps) == list(range(10)) and frame_trace.overwritten == 0


def test_trace_message_round_trip_keeps_exact_stamps():
    frame_trace = FrameTrace("face_perception", ("receive", "sent"), clock=Clock(1_800_000_000_999_999_999))
    stamps = [1_800_000_000_000_000_001, 1_800_000_000_500_000_000]
    for stamp in stamps:
        frame_trace.mark(stamp, "sent")
    batch = trace.from_msg(trace.to_msg(frame_trace.take(hold_ns=0)))
    assert (batch.node, batch.stages, batch.stamps) == ("face_perception", ("receive", "sent"), stamps)
    assert np.isnan(batch.ms[:, 0]).all() and batch.ms[:, 1] == pytest.approx([999.999998, 499.999999])
    bad = trace.to_msg(batch)
    bad.layout.dim[1].label = "x,y,receive,sent"
    with pytest.raises(ValueError):
        trace.from_msg(bad)
    with pytest.raises(ValueError):
        FrameTrace("node", ("a", "a"))


def test_trace_statistics_count_only_camera_frames_in_pipeline_order():
    stats = TraceStats(("camera", "retarget"))
    stats.frame(100)
    stats.frame(200)
    stats.add(trace.TraceBatch("retarget", ("receive", "sent"), [100, 200, 300],
                               np.array([[10.0, 12.0], [20.0, math.nan], [1.0, 2.0]])))
    stats.add(trace.TraceBatch("camera", ("sent",), [100], np.array([[1.0]])))
    rows = stats.rows()
    assert [r["stage"] for r in rows] == ["camera/sent", "retarget/receive", "retarget/sent"]
    assert rows[1]["after_stamp"]["n"] == 2 and rows[1]["step"] == {}
    assert rows[2]["after_stamp"]["p50_ms"] == pytest.approx(12.0, rel=0.01)
    assert rows[2]["step"]["n"] == 1 and rows[2]["step"]["p50_ms"] == pytest.approx(2.0, rel=0.01)
    assert stats.other_rows == 1  # stamp 300: a command the retarget timer made without a frame
    assert len(trace_table(rows)) == 4
    with pytest.raises(ValueError):
        stats.add(trace.TraceBatch("camera", ("convert", "sent"), [], np.empty((0, 2))))


def test_image_message_round_trip_is_exact():
    bgr = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    msg = image_to_msg(bgr, Header(stamp=from_ns(5)))
    assert (msg.width, msg.height, msg.step, len(msg.data)) == (64, 48, 192, bgr.size)
    np.testing.assert_array_equal(image_from_msg(msg), bgr)


@pytest.fixture
def ros():
    rclpy.init()
    try:
        yield
    finally:
        rclpy.try_shutdown()


def _spin(executor, done, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not done():
        executor.spin_once(timeout_sec=0.05)
    return done()


@pytest.mark.parametrize("kind", ["events", "single"])
def test_both_executors_run_subscriptions_timers_and_tasks(ros, kind):
    """What the nodes use: a subscription, a steady timer, a task made in a callback (perception's
    next frame), and request_exit, under the EventsExecutor and the single-threaded one."""
    executor = ros_util.make_executor(kind)
    node = rclpy.create_node(f"executor_{kind}")
    executor.add_node(node)
    seen: List[str] = []
    pub = node.create_publisher(String, "chat", 10)

    def on_message(msg: String) -> None:
        seen.append(msg.data)
        executor.create_task(lambda: seen.append("task"))
        ros_util.request_exit(node, 3)

    node.create_subscription(String, "chat", on_message, 10)
    node.create_timer(0.01, lambda: seen.append("timer"))
    try:
        assert _spin(executor, lambda: "timer" in seen)
        assert _spin(executor, lambda: pub.publish(String(data="hi")) or "task" in seen)
        assert "hi" in seen and node.exit_code == 3
    finally:
        executor.shutdown()
        node.destroy_node()


def test_executor_falls_back_to_single_threaded_without_events_executor(ros, monkeypatch):
    from rclpy.experimental import EventsExecutor

    assert type(ros_util.make_executor("events")) is type(EventsExecutor())
    monkeypatch.setitem(sys.modules, "rclpy.experimental", None)  # an rclpy before Jazzy
    assert isinstance(ros_util.make_executor("events"), SingleThreadedExecutor)
    monkeypatch.setenv(ros_util.EXECUTOR_ENV, "single")
    assert isinstance(ros_util.make_executor(), SingleThreadedExecutor)
    with pytest.raises(ValueError):
        ros_util.make_executor("multi")


def test_garbage_frozen_after_start_up_unless_off():
    try:
        assert ros_util.freeze_garbage("freeze") and gc.get_freeze_count() > 0
        gc.unfreeze()
        assert not ros_util.freeze_garbage("off") and gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


ROBOT_OUTPUTS = ["face/action_units", "face/head_pose", "face/gaze"]


@pytest.fixture
def perception(ros, sample_media):
    """A face_perception node in this process, each publisher recording the topic it sends, and a
    frame with a face."""
    from humimic_perception.perception_node import PerceptionNode

    node = PerceptionNode()
    sent: List[str] = []
    for pub in [node.au_pub, node.pose_pub, *node.gaze_pubs, node.cloud_pub, node.debug_pub, node.marker_pub,
                node.boxes_pub]:
        pub.publish = lambda msg, topic=pub.topic_name.lstrip("/"), real=pub.publish: sent.append(topic) or real(msg)
    capture = cv2.VideoCapture(str(sample_media / "single_face.mp4"))
    ok, bgr = capture.read()
    capture.release()
    assert ok
    try:
        yield node, sent, bgr
    finally:
        node.shutdown()
        node.destroy_node()


def test_perception_sends_what_the_robot_needs_first_and_visuals_only_to_subscribers(perception):
    node, sent, bgr = perception
    stamp = 1_800_000_000_000_000_000
    node.process(image_to_msg(bgr, Header(stamp=from_ns(stamp), frame_id="camera_optical_frame")))
    assert sent == ROBOT_OUTPUTS  # nobody subscribes to the visual outputs: none made
    row = node.trace.take(hold_ns=0)
    assert row.stamps == [stamp] and row.stages[-1] == "visuals_sent"

    viewer = rclpy.create_node("viewer")
    executor = SingleThreadedExecutor()
    executor.add_node(viewer)
    for msg_type, topic in ((PointCloud2, "face/landmarks"), (Image, "face/debug_image"), (MarkerArray, "face/boxes"),
                            (MarkerArray, "face/mesh_markers"), (Vector3Stamped, "face/gaze/left")):
        viewer.create_subscription(msg_type, topic, lambda m: None, ros_util.SENSOR_QOS)  # best effort: matches any
    visuals = [node.cloud_pub, node.debug_pub, node.marker_pub, node.boxes_pub, node.gaze_pubs[2]]
    try:
        assert _spin(executor, lambda: all(p.get_subscription_count() for p in visuals))
        sent.clear()
        node.process(image_to_msg(bgr, Header(stamp=from_ns(stamp + 40_000_000), frame_id="camera_optical_frame")))
    finally:
        executor.shutdown()
        viewer.destroy_node()
    assert sent[:3] == ROBOT_OUTPUTS  # the right eye's gaze has no subscriber
    assert sorted(sent[3:]) == ["face/boxes", "face/debug_image", "face/gaze/left", "face/landmarks",
                                "face/mesh_markers"]


def test_perception_searches_for_more_faces_after_the_robot_outputs(perception):
    """max_faces 4 (the default) with one face in view: the detector runs on every frame, before the
    first frame's landmarks (nothing tracked yet), after the outputs of the next ones (late_detection)."""
    node, sent, bgr = perception
    backend = node.pipeline.backend
    assert backend.max_faces > 1 and backend.late_detection
    detect = backend.detector.detect
    backend.detector.detect = lambda image: sent.append("detect") or detect(image)
    for k in range(3):
        node.process(image_to_msg(bgr, Header(stamp=from_ns(1_800_000_000_000_000_000 + k * 40_000_000),
                                              frame_id="camera_optical_frame")))
    assert sent == ["detect", *ROBOT_OUTPUTS, *ROBOT_OUTPUTS, "detect", *ROBOT_OUTPUTS, "detect"]


def test_realtime_priority_refused_without_permission_says_why(monkeypatch):
    import os

    from humimic_core.processes import realtime_priority

    def refuse(pid, policy, param):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    assert "Operation not permitted" in realtime_priority(10)
    lines: List[str] = []

    class Node:  # what use_realtime_priority needs of a node
        def get_logger(self):
            return type("Logger", (), {"info": staticmethod(lines.append)})

    assert not ros_util.use_realtime_priority(Node(), 5) and not ros_util.use_realtime_priority(Node(), 0)
    assert lines == ["real-time priority 5 refused (PermissionError: [Errno 1] Operation not permitted): "
                     "normal scheduling"]  # one line; none for 0
    monkeypatch.delattr(os, "sched_setscheduler")  # not Linux
    assert "sched_setscheduler" in realtime_priority(10)
    with pytest.raises(ValueError):
        realtime_priority(0)


def test_state_read_put_off_to_right_after_a_command_due_during_it():
    from humimic_driver.read_phase import ReadPhase

    phase = ReadPhase()
    assert phase.timer_may_read(0.0)  # nothing known yet
    for k in range(5):  # commands every 40 ms, reads of 4 ms
        phase.command(0.040 * k)
        phase.read(0.004)
    last = 0.160
    assert phase.timer_may_read(last + 0.010)  # the bus is free long before the next command
    assert not phase.timer_may_read(last + 0.037)  # the next one would arrive during the read
    phase.command(last + 0.040)
    assert phase.read_after_command() and not phase.read_after_command()
    assert not phase.timer_may_read(last + 0.078)
    assert phase.timer_may_read(last + 0.098)  # that command did not come: never two reads put off in a row
    assert not phase.read_after_command()


def test_node_priorities_rise_along_the_frame_path_and_are_read_at_start():
    """One parameter definition for every node (processes.realtime_priority_setting): 0-99, read-only;
    the retarget node below the driver (a bus write never waits for another node); the camera and
    perception off by default (flat out, perception would hold a core at real-time priority)."""
    from humimic_driver.driver_settings import DriverNodeSettings
    from humimic_perception.settings import CameraSettings, PerceptionSettings
    from humimic_retarget.retargeter import RetargetNodeSettings

    order = (PerceptionSettings, CameraSettings, RetargetNodeSettings, DriverNodeSettings)
    params = [next(p for p in cls.parameters() if p.name == "realtime_priority") for cls in order]
    assert all(p.bounds == (0, 99) and p.read_only for p in params)
    assert [p.default for p in params[:2]] == [0, 0] and 0 < params[2].default < params[3].default
