"""The retarget node without ROS: a frame's messages in, stamped joint commands out.

Frames are joined by stamp (frame_channels), timed on stream time (stream_time) and stepped
through the retargeter; the node's timer releases frames whose parts are late and carries the
stream on when frames stop. Times are integer nanoseconds of the node's clock.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

from humimic_retarget.forecast import Forecaster
from humimic_retarget.frame_channels import Frame, FrameChannels
from humimic_retarget.retargeter import Retargeter
from humimic_retarget.stream_time import StreamTime

#: Seconds a frame's action units wait for its head pose and gaze before going without them.
PART_TIMEOUT = 0.1
#: Seconds without a frame after which the timer steps the retargeter itself (a camera at 10 fps or
#: more never triggers it; a stalled or ended stream does, so the robot still glides to neutral).
STALL_TIMEOUT = 0.15

#: A command and the stamp of its message (ns): the source frame's, or the node clock's when the
#: timer stepped without a frame.
Command = Tuple[int, Dict[str, float]]


class RetargetStream:
    def __init__(self, retargeter: Retargeter, tolerance: float, stall: float = STALL_TIMEOUT,
                 warn: Callable[[str, str], None] = lambda kind, text: None,
                 forecaster: Optional[Forecaster] = None, hop: float = 0.0) -> None:
        self.retargeter = retargeter
        self.forecaster = forecaster
        #: s from a frame's receipt here to its bus write, added to the measured latency (forecast.hop)
        self.hop = hop
        #: (stamp, forecast channels) of the frames forecast since the owner last took them
        self.forecasts: List[Tuple[int, Dict[str, float]]] = []
        self.frames = FrameChannels()
        self.time = StreamTime(tolerance, warn)
        self._stall = int(max(stall, STALL_TIMEOUT) * 1e9)

    def action_units(self, stamp: int, names: Sequence[str], values: Sequence[float], now: int) -> List[Command]:
        """A frame's action units (empty: no face) arriving at ``now``; ValueError when names and
        values differ in length."""
        if not self.time.admit(stamp, now):
            return []
        return self._retarget(self.frames.action_units(stamp, names, values, now))

    def head_pose(self, stamp: int, quaternion: Sequence[float]) -> List[Command]:
        return self._retarget(self.frames.head_pose(stamp, quaternion))

    def gaze(self, stamp: int, yaw: float, pitch: float) -> List[Command]:
        return self._retarget(self.frames.gaze(stamp, yaw, pitch))

    def tick(self, now: int) -> List[Command]:
        """The timer: release a frame whose parts are late; while frames are late or gone keep
        stepping (hold, glide to neutral, finish a motion), publishing only what changed."""
        out = self._retarget(self.frames.expire(now, int(PART_TIMEOUT * 1e9)))
        t = self.time.stalled(now, self._stall)
        if t is not None:
            before = self.retargeter.command
            command = self.retargeter.tick(t * 1e-9)
            if command != before:
                out.append((now, command))
        return out

    def clock_jumped(self, delta: int) -> List[Command]:
        """The node clock jumped by ``delta`` ns (ROS time: a replay restarted, use_sim_time)."""
        out = self._retarget(self.frames.flush())
        self.time.clock_jumped(delta)
        return out

    def _retarget(self, frames: List[Frame]) -> List[Command]:
        out = []
        for f in frames:
            t = self.time.frame(f.stamp, int(f.arrival)) * 1e-9
            channels = f.channels
            if self.forecaster is not None:
                self.forecaster.latency = self.time.median_latency() + self.hop  # the loop latency, measured
                channels = self.forecaster(t, channels)
                if channels is not None:
                    self.forecasts.append((f.stamp, channels))
            out.append((f.stamp, self.retargeter.update(t, channels)))
        return out
