"""Offline re-run: perception and retargeting on every frame of a video or a recording, in one
process, deterministically (no DDS, no frame dropping, time from the frames' stamps), into a new
rosbag2 (MCAP) with all outputs plus a metrics JSON.

Same inputs and parameters give byte-identical bags: stamps come from the media (video: a fixed
epoch + the frame's media time; recording: the original header stamps), messages are serialised
by rosbags (zeroed padding), the landmark backend runs single-threaded, and the One-Euro
smoothing is timed by the frame stamps.

With the driver (the default; ``--no-driver`` leaves it out) each command also goes, a live loop
latency after its stamp (driven.LOOP_LATENCY_S, 10.2 ms; the forecast counts the same latency), to
the live driver's code over emulated servos on simulated time (humimic_experiments.driven), and
the servos' achieved positions (/joint_states at the driver's state_rate) and the goals written
(/driver/written_goals) go into the bag as a live recording has them.

Perception, the camera intrinsics and the retargeter get their settings from the params file the
way the live nodes do (CameraSettings, PerceptionSettings, RetargetParams ``from_parameters``: every
setting, defaults for those the file leaves out), so a re-run moves as the live nodes would;
with forecast.enabled the forecast channels go to /face/forecast beside the measured ones.

    python -m humimic_experiments.rerun VIDEO_OR_RECORDING --out out/rerun [--params-file F] [--robot-config R] [--no-driver]
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from humimic_core.parameters import node_parameters
from humimic_core.paths import config_file
from humimic_core.robot_config import RobotConfig, load_robot_config
from humimic_core.stamps import from_ns
from humimic_core.topics import (
    ACTION_UNITS,
    FORECAST,
    CAMERA_IMAGE,
    CAMERA_INFO,
    GAZE,
    HEAD_POSE,
    JOINT_COMMANDS,
    LANDMARKS,
    absolute,
)
from humimic_experiments.bag_io import SegmentedBagWriter, deserialize, from_rclpy, read_messages, topic_summary
from humimic_experiments.driven import LOOP_LATENCY_S, DrivenRobot, Sample
from humimic_experiments.metrics import latency_stats
from humimic_experiments.session import image_array, stamp_ns
from humimic_retarget.forecast import forecast_settings, make_forecaster
from humimic_retarget.retargeter import RetargetParams

#: The driver runs on this long (ns) after the last frame's command.
DRIVER_TAIL_NS = 100_000_000
#: Stamp of a video's first frame: a fixed epoch, so re-runs of a video are identical.
VIDEO_EPOCH_NS = 1_700_000_000 * 1_000_000_000


@dataclass(frozen=True)
class InputFrame:
    stamp: int
    image: np.ndarray
    k: Optional[Sequence[float]] = None  # CameraInfo K when the recording has one


def video_frames(path: Path) -> Tuple[int, Iterator[InputFrame]]:
    """(frame count estimate, frames) of a video file, stamped by media time."""
    from humimic_perception.frame_source import FrameSource

    source = FrameSource(str(path), loop=False)

    def frames() -> Iterator[InputFrame]:
        try:
            for frame in source:
                yield InputFrame(VIDEO_EPOCH_NS + int(round(frame.media_time * 1e9)), frame.image)
        finally:
            source.close()
        if source.skipped:
            print(f"humimic-rerun: warning: skipped {source.skipped} undecodable frame(s) of {path}", file=sys.stderr)
        if source.early_end:
            print(f"humimic-rerun: warning: {source.early_end}", file=sys.stderr)

    count = int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT))
    return count, frames()


def recording_frames(path: Path) -> Tuple[int, Iterator[InputFrame]]:
    """(frame count, frames) of a recording's /camera/image_raw with their original stamps."""
    topics = topic_summary(path)
    if absolute(CAMERA_IMAGE) not in topics:
        raise ValueError(f"{path}: no /camera/image_raw in the recording (it has {sorted(topics)})")

    def frames() -> Iterator[InputFrame]:
        k = None
        for m in read_messages(path, [absolute(CAMERA_IMAGE), absolute(CAMERA_INFO)]):
            if m.topic == absolute(CAMERA_INFO):
                k = list(deserialize(m).k)
                continue
            yield InputFrame(stamp_ns(deserialize(m)), image_array(m), k)

    return topics[absolute(CAMERA_IMAGE)][1], frames()


def result_channels(result) -> Optional[Dict[str, float]]:
    """The retarget node's input channels of a perception result (AUs, head angles, gaze); None
    without a face."""
    from humimic_core.head_frame import head_angles

    if not result.face:
        return None
    channels = dict(result.action_units)
    yaw, pitch, roll = head_angles(result.head_pose.rotation)
    channels.update(head_yaw=yaw, head_pitch=pitch, head_roll=roll)
    if result.gaze is not None:
        channels.update(gaze_yaw=result.gaze.combined[0], gaze_pitch=result.gaze.combined[1])
    return channels


def perception_from_parameters(params_file: str | Path, backend: Optional[str] = None) -> Tuple[Any, str]:
    """(FacePerception, backend name) as the perception node builds it from a parameter file (one
    ONNX Runtime thread)."""
    from humimic_perception.face_selection import FaceSelector
    from humimic_perception.landmarks import make_backend
    from humimic_perception.perception import FacePerception
    from humimic_perception.settings import PerceptionSettings

    settings = PerceptionSettings.from_parameters(node_parameters(params_file, "face_perception"))
    name = backend or settings.backend
    landmarks = make_backend(name, **settings.backend_options(threads=1))
    return FacePerception(landmarks, settings.neutral_frames, settings.smoothing.filters,
                          FaceSelector(settings.face_selection)), name


def rerun(source: str | Path, out: str | Path, params_file: Optional[str | Path] = None,
          config: Optional[RobotConfig] = None, backend: Optional[str] = None,
          write_images: bool = True, start_frame: int = 0, driver: bool = True) -> Dict[str, Any]:
    """Run perception + retargeting (+ the driver on emulated servos, with ``driver``) on every frame
    of `source` from `start_frame` on (frames before it are skipped, as if the clip began there);
    returns the metrics written."""
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Header

    from humimic_perception import ros_convert
    from humimic_perception.intrinsics import Intrinsics
    from humimic_perception.settings import CameraSettings
    from humimic_retarget.retargeter import Retargeter

    source, out = Path(source), Path(out)
    params_file = Path(params_file or config_file("humimic.yaml"))
    config = config or load_robot_config(config_file("robot_face.yaml"))
    camera = CameraSettings.from_parameters(node_parameters(params_file, "camera"))
    retarget_params = node_parameters(params_file, "retarget")
    perception, backend_name = perception_from_parameters(params_file, backend)
    retargeter = Retargeter(config, RetargetParams.from_parameters(retarget_params))
    forecaster = make_forecaster(forecast_settings(retarget_params), retargeter.response_times(),
                                 retargeter.driver_times(), LOOP_LATENCY_S)
    count, frames = recording_frames(source) if source.is_dir() else video_frames(source)
    if start_frame:
        if not 0 < start_frame < (count or start_frame + 1):
            raise ValueError(f"{source}: start frame {start_frame} is not within its {count} frames")
        count, frames = (count - start_frame if count else 0), itertools.islice(frames, start_frame, None)
    frame_id, hfov = camera.frame_id, camera.horizontal_fov_deg
    stage_ms: Dict[str, list] = {"perception": [], "retarget": [], **({"driver": []} if driver else {})}
    faces = processed = 0
    robot: Optional[DrivenRobot] = None

    with SegmentedBagWriter(out, "mcap", split_seconds=3600.0, name="rerun") as bag:
        def write(topic: str, msgtype: str, stamp: int, msg) -> None:
            bag.write(topic, msgtype, stamp, from_rclpy(msg, msgtype))

        def write_driven(samples: Sequence[Sample]) -> None:
            for s in samples:
                write(s.topic, "sensor_msgs/msg/JointState", s.log_ns,
                      JointState(header=Header(stamp=from_ns(s.stamp_ns)), name=s.names, position=s.position,
                                 velocity=list(s.velocity), effort=list(s.effort)))

        for frame in tqdm(frames, total=count or None, desc=f"re-run {source.name}", unit="frame"):
            h, w = frame.image.shape[:2]
            intrinsics = Intrinsics.from_k(w, h, frame.k) if frame.k else Intrinsics.from_fov(w, h, hfov)
            header = Header(stamp=from_ns(frame.stamp), frame_id=frame_id)
            t0 = time.perf_counter()
            result = perception.process(frame.image, intrinsics, frame.stamp * 1e-9)
            t1 = time.perf_counter()
            channels = result_channels(result)
            ahead = channels if forecaster is None else forecaster(frame.stamp * 1e-9, channels)
            command = retargeter.update(frame.stamp * 1e-9, ahead)
            t2 = time.perf_counter()
            stage_ms["perception"].append((t1 - t0) * 1e3)
            stage_ms["retarget"].append((t2 - t1) * 1e3)
            driven: List[Sample] = []
            if driver:
                robot = robot or DrivenRobot(config, params_file, frame.stamp)
                robot.command(frame.stamp, command)
                stage_ms["driver"].append((time.perf_counter() - t2) * 1e3)
                driven = robot.take()
                write_driven([s for s in driven if s.log_ns < frame.stamp])  # the bag in time order
                driven = [s for s in driven if s.log_ns >= frame.stamp]
            if write_images:
                write(absolute(CAMERA_IMAGE), "sensor_msgs/msg/Image", frame.stamp,
                      ros_convert.image_to_msg(frame.image, header))
            write(absolute(CAMERA_INFO), "sensor_msgs/msg/CameraInfo", frame.stamp,
                  ros_convert.camera_info_msg(intrinsics, header))
            write(absolute(ACTION_UNITS), "sensor_msgs/msg/JointState", frame.stamp,
                  ros_convert.action_units_msg(result.action_units, header))
            if result.face:
                faces += 1
                write(absolute(HEAD_POSE), "geometry_msgs/msg/PoseStamped", frame.stamp,
                      ros_convert.head_pose_msg(result.head_pose, header))
                write(absolute(LANDMARKS), "sensor_msgs/msg/PointCloud2", frame.stamp,
                      ros_convert.cloud_msg(result.points, header))
                if result.gaze is not None:
                    write(absolute(GAZE), "geometry_msgs/msg/Vector3Stamped", frame.stamp,
                          ros_convert.gaze_msg(result.gaze.combined, header))
            if forecaster is not None and ahead is not None:
                write(absolute(FORECAST), "sensor_msgs/msg/JointState", frame.stamp,
                      JointState(header=header, name=list(ahead), position=[float(v) for v in ahead.values()]))
            write(absolute(JOINT_COMMANDS), "sensor_msgs/msg/JointState", frame.stamp,
                  JointState(header=Header(stamp=header.stamp), name=list(command),
                             position=[float(v) for v in command.values()]))
            write_driven(driven)
            processed += 1
        if robot is not None:
            robot.run_until(frame.stamp + DRIVER_TAIL_NS)
            write_driven(robot.take())
    perception.close()
    metrics = {
        "source": str(source), "start_frame": start_frame, "backend": backend_name, "frames": processed, "frames_with_face": faces,
        "processing_ms": {stage: latency_stats(values) for stage, values in stage_ms.items()},
        **({"driver_events": [f"{severity}: {message}" for severity, message in robot.events]} if robot else {}),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", help="video file, or a recording folder / rosbag2 with /camera/image_raw")
    parser.add_argument("--out", required=True, help="output folder (the bag goes in <out>/rerun_0000)")
    parser.add_argument("--params-file", default=None, help="node parameter file (default config/humimic.yaml)")
    parser.add_argument("--robot-config", default=str(config_file("robot_face.yaml")), help="robot config YAML")
    parser.add_argument("--backend", default=None, help="landmark backend (default: the params file's)")
    parser.add_argument("--no-images", action="store_true", help="leave camera images out of the output bag")
    parser.add_argument("--start-frame", type=int, default=0, help="skip the frames before this one")
    parser.add_argument("--no-driver", action="store_true",
                        help="leave the driver on emulated servos out (no /joint_states, /driver/written_goals)")
    args = parser.parse_args(argv)
    metrics = rerun(args.source, args.out, args.params_file, load_robot_config(args.robot_config), args.backend,
                    not args.no_images, args.start_frame, not args.no_driver)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
