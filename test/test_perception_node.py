"""The camera and face_perception nodes as separate processes on real video, watched by a probe node.

Whole frames travel over the package's Fast DDS profile (config/fastdds.xml, set by
test/conftest.py) in the test session's own domain on localhost.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Vector3Stamped
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2
from std_msgs.msg import Float64MultiArray, Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from humimic_core import trace
from humimic_core.paths import config_file, media_dir
from humimic_core.ros_util import SENSOR_QOS
from humimic_core.processes import interrupt
from humimic_core.stamps import from_ns, to_ns
from humimic_perception.action_units import CHANNELS
from humimic_perception import ros_convert
from humimic_perception.ros_convert import cloud_from_msg

REPO = Path(__file__).resolve().parent.parent
#: The probe's sensor subscriptions: best effort like SENSOR_QOS, with room for a whole clip so a
#: busy test process loses no frame.
PROBE_SENSOR_QOS = QoSProfile(depth=400, reliability=ReliabilityPolicy.BEST_EFFORT)
pytestmark = pytest.mark.timeout(240)


def _node_command(module: str, *params: str) -> List[str]:
    args = [sys.executable, "-m", module, "--ros-args", "--params-file", str(config_file("humimic.yaml"))]
    for param in params:
        args += ["-p", param]
    return args


class Probe:
    """A test node recording what the perception graph publishes."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("perception_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.images: List[int] = []  # best effort: a large image can be lost on its way to the probe
        self.sent: List[int] = []  # the frames the camera published, by its own trace (reliable, flushed at exit)
        self.aus: List[JointState] = []
        self.clouds: List[PointCloud2] = []
        self.poses: List[PoseStamped] = []
        self.debug: List[int] = []
        self.gaze: Dict[str, List[Vector3Stamped]] = {"": [], "/right": [], "/left": []}
        self.markers: List[MarkerArray] = []
        sub = self.node.create_subscription
        sub(Image, "/camera/image_raw", lambda m: self.images.append(to_ns(m.header.stamp)), PROBE_SENSOR_QOS)
        sub(Float64MultiArray, "/trace", self._on_trace, QoSProfile(depth=100))
        sub(JointState, "/face/action_units", self.aus.append, QoSProfile(depth=400))
        sub(PointCloud2, "/face/landmarks", self.clouds.append, PROBE_SENSOR_QOS)
        sub(PoseStamped, "/face/head_pose", self.poses.append, QoSProfile(depth=400))
        sub(Image, "/face/debug_image", lambda m: self.debug.append(to_ns(m.header.stamp)), PROBE_SENSOR_QOS)
        for eye, log in self.gaze.items():
            sub(Vector3Stamped, "/face/gaze" + eye, log.append, QoSProfile(depth=400))
        sub(MarkerArray, "/face/mesh_markers", self.markers.append, QoSProfile(depth=400))
        self.frame_counts: List[Dict[str, int]] = []
        sub(DiagnosticArray, "/diagnostics", lambda m: self.frame_counts.extend(
            {kv.key: int(kv.value) for kv in s.values} for s in m.status if s.name == "face_perception: frames"),
            QoSProfile(depth=100))
        self.image_pub = self.node.create_publisher(Image, "/camera/image_raw", SENSOR_QOS)
        self.recapture = self.node.create_client(Trigger, "/face/recapture_neutral")
        self.set_parameters = self.node.create_client(SetParameters, "/face_perception/set_parameters")

    def _on_trace(self, msg: Float64MultiArray) -> None:
        batch = trace.from_msg(msg)
        if batch.node == "camera":
            sent = batch.ms[:, batch.stages.index("sent")]
            self.sent.extend(stamp for stamp, ms in zip(batch.stamps, sent) if math.isfinite(ms))

    def spin_until(self, done: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if done():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return done()

    def clear(self) -> None:
        for log in (self.images, self.sent, self.aus, self.clouds, self.poses, self.debug, self.markers,
                    *self.gaze.values()):
            log.clear()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """A running face_perception process and a probe that sees it."""
    folder = tmp_path_factory.mktemp("perception")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        log = (folder / "face_perception.log").open("w+")
        perception = subprocess.Popen(_node_command("humimic_perception.perception_node"), cwd=REPO,
                                      stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        probe = Probe()
        try:
            ready = probe.spin_until(lambda: probe.node.count_publishers("/face/action_units") > 0
                                    and probe.recapture.service_is_ready(), timeout=60.0)
            log.seek(0)
            assert ready, f"face_perception did not come up:\n{log.read()}"
            probe.spin_until(lambda: False, timeout=1.0)  # let the subscriptions match
            yield probe, perception
        finally:
            probe.close()
            interrupt(perception, 15.0)
            log.close()


def _run_camera(probe: Probe, source: Path) -> str:
    """Run the camera node on a file without pacing; returns its output after it ended by itself.

    The camera waits for two subscribing nodes (perception and the probe) before its first frame,
    so the probe sees every frame that perception answers.
    """
    camera = subprocess.Popen(_node_command("humimic_perception.camera_node", f"source:={source}",
                                            "realtime:=false", "min_subscribers:=2"),
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ))
    try:
        probe.spin_until(lambda: camera.poll() is not None, timeout=150.0)
    finally:
        if camera.poll() is None:
            camera.kill()
    output = camera.communicate()[0]
    assert camera.returncode == 0, output
    assert "starting anyway" not in output, output
    probe.spin_until(lambda: False, timeout=1.0)  # the answers to the last frames
    return output


def _stamps(messages) -> List[int]:
    return [to_ns(m.header.stamp) for m in messages]


def test_bad_frames_are_skipped_with_an_empty_action_unit_message(graph):
    probe, perception = graph
    probe.clear()
    bad = {
        "unsupported encoding": Image(encoding="16UC1", width=4, height=2, step=8, data=bytes(16)),
        "short data": Image(encoding="bgr8", width=640, height=360, step=1920, data=bytes(100)),
    }
    for sec, msg in enumerate(bad.values(), start=1000):
        msg.header = Header(stamp=from_ns(sec * 1_000_000_000), frame_id="camera_optical_frame")
        answered = lambda: sec * 1_000_000_000 in _stamps(probe.aus)  # noqa: E731
        for _ in range(10):
            probe.image_pub.publish(msg)
            if probe.spin_until(answered, timeout=1.0):
                break
        assert answered()
    assert all(m.name == [] and list(m.position) == [] for m in probe.aus)
    assert perception.poll() is None


def test_single_face_video_gives_one_action_unit_message_per_frame(graph):
    probe, _ = graph
    probe.clear()
    output = _run_camera(probe, media_dir() / "single_face.mp4")
    assert "end of source after 72 frames" in output
    images, aus = set(probe.sent), _stamps(probe.aus)  # the frames the camera sent (its trace)
    assert len(images) == 72 and set(probe.images) <= images, f"{len(aus)} AUs, {len(probe.clouds)} clouds"
    assert set(aus) <= images and len(aus) == len(set(aus))  # image stamps, one answer each
    assert len(aus) >= 68  # a best-effort frame lost on the way gets no answer
    assert all(m.name == CHANNELS for m in probe.aus)  # a face in every frame
    assert all(m.header.frame_id == "camera_optical_frame" for m in probe.aus)
    assert all(0.0 <= v <= 5.0 for m in probe.aus for v in m.position)
    assert max(max(m.position) for m in probe.aus) > 2.0  # he smiles
    assert len(probe.clouds) >= len(aus) - 5 and set(_stamps(probe.clouds)) <= images
    for cloud in probe.clouds:
        points = cloud_from_msg(cloud)
        assert cloud.width == 478 and points.shape == (478, 3)
        assert 0.2 < float(points[:, 2].min()) and float(points[:, 2].max()) < 2.0  # metres ahead
    assert set(_stamps(probe.poses)) <= images and len(probe.poses) >= len(aus) - 2
    assert all(p.header.frame_id == "camera_optical_frame" for p in probe.poses)
    assert set(probe.debug) <= images and len(probe.debug) > 0
    for eye, gaze in probe.gaze.items():  # combined and per eye, each frame with a face
        assert set(_stamps(gaze)) <= images and len(gaze) >= len(aus) - 2, eye
        assert all(g.header.frame_id == "head" and g.vector.z == 0.0 for g in gaze), eye
        assert all(abs(g.vector.x) < 0.5 and abs(g.vector.y) < 0.5 for g in gaze), eye  # he looks ahead
    assert set(_stamps(probe.markers[0].markers)) <= images and len(probe.markers) >= len(aus) - 5
    for array in probe.markers:
        lines, dots = array.markers[:2]
        assert (lines.type, dots.type, len(dots.points)) == (Marker.LINE_LIST, Marker.POINTS, 478)
        assert len(lines.points) == 264 and all(m.header.frame_id == "camera_optical_frame" for m in array.markers)
        assert 0.2 < lines.points[0].z < 2.0


def test_camera_waits_for_every_subscribing_node_before_the_first_frame(graph):
    """min_subscribers counts nodes on either camera topic: a late node that takes only the
    CameraInfo still gets the first frame's."""
    probe, _ = graph
    probe.clear()
    camera = subprocess.Popen(_node_command("humimic_perception.camera_node", f"source:={media_dir() / 'single_face.mp4'}",
                                            "realtime:=false", "min_subscribers:=3"),
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ))
    infos: List[int] = []
    late = None
    try:
        probe.spin_until(lambda: camera.poll() is not None, timeout=4.0)
        assert camera.poll() is None and not probe.images, "frames before the third subscriber came"
        late = rclpy.create_node("late_camera_info_subscriber", context=probe.context)
        late.create_subscription(CameraInfo, "/camera/camera_info", lambda m: infos.append(to_ns(m.header.stamp)),
                                 PROBE_SENSOR_QOS)
        probe.executor.add_node(late)
        probe.spin_until(lambda: camera.poll() is not None, timeout=150.0)
    finally:
        if camera.poll() is None:
            camera.kill()
        if late is not None:
            probe.executor.remove_node(late)
            late.destroy_node()
    output = camera.communicate()[0]
    assert camera.returncode == 0 and "starting anyway" not in output, output
    assert probe.sent and infos and infos[0] == min(probe.sent), "the late node missed the first frame"


def test_recapture_then_face_leaving_ends_with_empty_messages(graph):
    probe, _ = graph
    probe.clear()
    future = probe.recapture.call_async(Trigger.Request())
    assert probe.spin_until(future.done, timeout=10.0)
    assert future.result().success
    output = _run_camera(probe, media_dir() / "face_noface.mov")
    assert "end of source after 169 frames" in output
    assert len(probe.sent) == 169 and set(_stamps(probe.aus)) <= set(probe.sent) and len(probe.aus) >= 150
    faces: Dict[bool, List[JointState]] = {True: [], False: []}
    for msg in probe.aus:
        faces[bool(msg.name)].append(msg)
    assert len(faces[True]) >= 20 and len(faces[False]) >= 20
    assert all(not m.name and not m.position for m in probe.aus[-10:])  # the face has left
    assert all(max(m.position) == 0.0 for m in faces[True][:10])  # new neutral being captured
    assert len(probe.gaze[""]) == len(faces[True]) and max(_stamps(probe.gaze[""])) < to_ns(probe.aus[-10].header.stamp)
    cleared = [a for a in probe.markers if a.markers[0].action == Marker.DELETEALL]
    assert len(cleared) >= len(faces[False]) - 5 and probe.markers[-1].markers[0].action == Marker.DELETEALL


def _set(probe: Probe, name: str, value) -> bool:
    kind = {bool: (ParameterType.PARAMETER_BOOL, "bool_value"), float: (ParameterType.PARAMETER_DOUBLE, "double_value")}
    param_type, field = kind[type(value)]
    request = SetParameters.Request(parameters=[Parameter(name=name, value=ParameterValue(
        type=param_type, **{field: value}))])
    future = probe.set_parameters.call_async(request)
    assert probe.spin_until(future.done, timeout=10.0)
    return future.result().results[0].successful


def test_smoothing_parameters_can_be_changed_at_run_time(graph):
    probe, _ = graph
    assert probe.spin_until(probe.set_parameters.service_is_ready, timeout=10.0)
    assert not _set(probe, "smoothing.gaze.beta", -1.0)
    assert not _set(probe, "smoothing.action_units.min_cutoff", 0.0)
    assert _set(probe, "smoothing.head_pose.beta", 2.0)
    assert _set(probe, "smoothing.enabled", False) and _set(probe, "smoothing.enabled", True)
    assert not _set(probe, "smoothing.gaze.beta", 5000.0)  # outside the descriptor's range
    assert not _set(probe, "min_detection_confidence", 0.9)  # read at start: read-only, refused


def test_busy_perception_takes_the_newest_frame_and_counts_the_skipped_ones(graph):
    """Issue 10 item 6: frames come faster than perception handles them (bursts of 8): it answers
    the newest of each burst, skips older ones, and received = processed + dropped = published;
    with a max_frame_lag it answers every frame of a burst instead."""
    probe, _ = graph
    probe.clear()
    import cv2

    video = cv2.VideoCapture(str(media_dir() / "single_face.mp4"))
    images = [video.read()[1] for _ in range(40)]
    video.release()

    def fresh_counts() -> Dict[str, int]:
        seen = len(probe.frame_counts)
        assert probe.spin_until(lambda: len(probe.frame_counts) >= seen + 2, timeout=10.0), "no /diagnostics"
        return probe.frame_counts[-1]

    before = fresh_counts()
    stamps: List[int] = []
    for burst in range(3):
        for k, image in enumerate(images[burst * 8:(burst + 1) * 8]):
            stamps.append((5000 + burst) * 1_000_000_000 + k * 33_000_000)
            probe.image_pub.publish(ros_convert.image_to_msg(image, Header(stamp=from_ns(stamps[-1]),
                                                                           frame_id="camera_optical_frame")))
        assert probe.spin_until(lambda: stamps[-1] in _stamps(probe.aus), timeout=30.0), "newest frame unanswered"
    after = fresh_counts()
    answered = _stamps(probe.aus)
    delta = {k: after[k] - before[k] for k in after}
    assert after["waiting"] == 0 and delta["received"] == len(stamps) == delta["processed"] + delta["dropped"], delta
    assert delta["processed"] == len(answered) and delta["dropped"] >= 1, (delta, len(answered))
    assert set(answered) <= set(stamps) and answered == sorted(answered)
    assert all(m.name for m in probe.aus), "a skipped frame is not reported as a frame without a face"
    # a lag lets perception take every frame of a burst, in order (a replay where every frame counts);
    # a burst of 40 (a stall of a replay) reaches the queue whole: none lost uncounted before it
    assert probe.spin_until(probe.set_parameters.service_is_ready, timeout=10.0)
    assert not _set(probe, "max_frame_lag", -1.0)
    assert _set(probe, "max_frame_lag", 10.0)
    probe.clear()
    before = fresh_counts()
    stamps = [6000 * 1_000_000_000 + k * 33_000_000 for k in range(len(images))]
    try:
        for stamp, image in zip(stamps, images):
            probe.image_pub.publish(ros_convert.image_to_msg(image, Header(stamp=from_ns(stamp),
                                                                           frame_id="camera_optical_frame")))
        assert probe.spin_until(lambda: stamps[-1] in _stamps(probe.aus), timeout=30.0), "newest frame unanswered"
        after = fresh_counts()
    finally:
        assert _set(probe, "max_frame_lag", 0.0)
    assert _stamps(probe.aus) == stamps
    assert {k: after[k] - before[k] for k in ("received", "processed", "dropped")} == {
        "received": len(stamps), "processed": len(stamps), "dropped": 0}
