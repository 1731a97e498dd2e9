"""Settings of the camera and face_perception nodes: each field one ROS parameter
(humimic_core.settings; values in config/humimic.yaml). The nodes declare them and build the
settings with ``from_parameters``; the offline re-run builds them from the parameter file the same way."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from humimic_core.processes import realtime_priority_setting
from humimic_core.settings import Settings, group, setting
from humimic_perception.one_euro import OneEuroParams
from humimic_perception.perception import Smoothing

#: Range (Hz) of the One-Euro cutoffs and of beta (per unit of the signal's speed).
_CUTOFF = (0.0, 1000.0)


@dataclass(frozen=True)
class CameraSettings(Settings):
    """The camera node's parameters (all read at start)."""

    source: str = setting("", 'V4L2 index ("0"), /dev/videoN, a video file or an image folder; "" = the sample video')
    frame_id: str = setting("camera_optical_frame", "REP-105 optical frame of the camera")
    fps: float = setting(0.0, "publish rate; 0 = the file's own rate (video) / the camera's or 30 (camera, images)",
                         (0.0, 1000.0))
    realtime: bool = setting(True, "video files: pace at fps (true) or publish the next frame when "
                                   "/face/action_units answered the last (false)")
    loop: bool = setting(False, "video files and image folders: start again at the end")
    width: int = setting(0, "V4L2: requested capture width (0 = driver default)", (0, 16384))
    height: int = setting(0, "V4L2: requested capture height (0 = driver default)", (0, 16384))
    horizontal_fov_deg: float = setting(60.0, "horizontal field of view (degrees) for CameraInfo", (1.0, 179.0))
    min_subscribers: int = setting(1, "nodes subscribed to the camera topics to wait for before the first frame "
                                      "(perception, plus a recorder when recording)", (0, 100))
    subscriber_timeout: float = setting(10.0, "seconds to wait for them; then the frames start anyway with a warning",
                                        (0.0, 3600.0))
    realtime_priority: int = realtime_priority_setting(0, "the camera's threads (above perception's: 3 with "
                                                          "perception's 1), so a frame goes out right after its stamp")


@dataclass(frozen=True)
class OneEuroSettings(Settings):
    """One signal's One-Euro filter (Casiez et al. 2012); can change at run time."""

    min_cutoff: float = setting(1.0, "Hz, One-Euro cutoff of the still signal (lower: less jitter, more lag)",
                                _CUTOFF, read_only=False)
    beta: float = setting(5.0, "Hz per unit/s, rise of the cutoff with the signal's speed (higher: less lag)",
                          _CUTOFF, read_only=False)
    d_cutoff: float = setting(1.0, "Hz, One-Euro cutoff of the speed estimate", _CUTOFF, read_only=False)

    @property
    def params(self) -> OneEuroParams:
        """The filter parameters (ValueError naming a bad value)."""
        return OneEuroParams(self.min_cutoff, self.beta, self.d_cutoff)


@dataclass(frozen=True)
class SmoothingSettings(Settings):
    """One-Euro smoothing of AUs, head angles and gaze, timed by the frame stamps (``smoothing.*``)."""

    enabled: bool = setting(True, "One-Euro smoothing of AUs, head angles and gaze (time = frame stamps)",
                            read_only=False)
    action_units: OneEuroSettings = group(lambda: OneEuroSettings(2.0, 0.5, 1.0),
                                          "AU intensities 0..5 (but the eyelids')")
    eyelids: OneEuroSettings = group(lambda: OneEuroSettings(4.0, 2.0, 4.0), "eyelid AUs (AU05, AU45, AU45_L, AU45_R)")
    head_pose: OneEuroSettings = group(OneEuroSettings, "head angles (rad)")
    gaze: OneEuroSettings = group(OneEuroSettings, "gaze angles (rad)")

    @property
    def filters(self) -> Optional[Smoothing]:
        """The filters' settings; None when smoothing is off. ValueError names a bad value."""
        if not self.enabled:
            return None
        return Smoothing(self.action_units.params, self.head_pose.params, self.gaze.params, self.eyelids.params)


@dataclass(frozen=True)
class PerceptionSettings(Settings):
    """The face_perception node's parameters; max_frame_lag, publish_debug_image and smoothing.* can
    change at run time."""

    backend: str = setting("onnx", "landmark backend: onnx (exported models on ONNX Runtime, CUDA when "
                                   "available) or mediapipe (the reference)")
    max_faces: int = setting(4, "onnx: faces tracked at once (all are published on /face/boxes; one is imitated)",
                             (1, 64))
    face_selection: str = setting("same", "which face the robot imitates: largest, central, or same (the person "
                                          "followed so far)")
    device: str = setting("auto", "onnx: auto (CUDA when available), cpu or cuda")
    threads: int = setting(1, "onnx: intra-op threads per model", (1, 256))
    redetect_interval: int = setting(0, "onnx: run the detector every N frames while tracking (0 = only when "
                                        "needed)", (0, 100000))
    late_detection: bool = setting(True, "onnx: while a face is tracked, search for further faces after the frame's "
                                         "outputs are sent (found faces are tracked from the next frame); false = "
                                         "before the frame's landmarks")
    landmark_model: str = setting("", "onnx: a keypoint model with the documented contract "
                                      "(humimic_perception/landmarks_onnx.py); empty = the exported MediaPipe face mesh")
    neutral_frames: int = setting(10, "faces whose median becomes the neutral face after /face/recapture_neutral",
                                  (1, 10000))
    min_detection_confidence: float = setting(0.5, "landmark backend: face detection threshold", (0.0, 1.0))
    min_tracking_confidence: float = setting(0.5, "landmark backend: face tracking threshold", (0.0, 1.0))
    publish_debug_image: bool = setting(True, "annotated image on /face/debug_image", read_only=False)
    max_frame_lag: float = setting(0.0, "seconds a frame may wait behind the newest one before it is skipped; "
                                        "0 = always the newest frame", (0.0, 3600.0), read_only=False)
    realtime_priority: int = realtime_priority_setting(0, "perception's threads (1: below the camera's, the "
                                                          "retarget node's and the driver's), so other processes do "
                                                          "not preempt its models; off by default: flat out "
                                                          "(realtime false, a slow CPU) it would hold a core")
    smoothing: SmoothingSettings = group(SmoothingSettings, "smoothing")

    def backend_options(self, **changes: Any) -> Dict[str, Any]:
        """The landmark backend's options (make_backend passes each backend those it takes)."""
        return {"max_faces": self.max_faces, "device": self.device, "threads": self.threads,
                "redetect_interval": self.redetect_interval, "late_detection": self.late_detection,
                "landmark_model": self.landmark_model,
                "min_detection_confidence": self.min_detection_confidence,
                "min_tracking_confidence": self.min_tracking_confidence, **changes}
