"""Anticipation: the person's channels forecast ``horizon`` seconds ahead, fed to the retargeter.

The robot trails the person by the pipeline's filtering (perception's One-Euro filters, the
retargeter's smoothing and acceleration limits), transport and the servos' response. A forecaster
sees each frame's channels (AUs, per-eye closure, head and gaze angles; humimic_core.channels) at
its stream time and returns them as they are expected ``horizon`` s later; the retargeter then
applies the same limits and smoothing to the forecast as to a measurement, so a forecast can never
move the robot further or faster than a measurement could.

Methods (vectorised over humimic_core.channels.PUBLISHED):

- ``linear``: the slope of a least-squares line over the last WINDOW frames (two: the last
  step), extrapolated;
- ``kalman``: the measured value plus the speed of a constant-velocity Kalman filter
  (white-acceleration process noise, KALMAN_Q times the measurement noise);
- ``learned``: a ridge or MLP model over LEARNED_DEPTH frames of every channel's history
  (LearnedForecaster; trained by humimic_experiments.forecast_train, run with ONNX Runtime).

Each channel is forecast as far ahead as the robot's joints it moves trail the person, at most
``horizon``, in two parts (make_forecaster; Forecaster.follow, recomputed every frame):

- the retargeter's own response (Retargeter.response_times: smoothing plus v / 2a from the joints'
  caps), by the method: the jaw, smoothed 0.015 s and capped at 4.5 rad/s and 225 rad/s^2, 25 ms;
  an unsmoothed lid at 36 rad/s and 1800 rad/s^2, 10 ms;
- beyond it, what trails the retargeter (``beyond``): the driver's setpoint limiter and the servo's
  profile, which keep the same caps (Retargeter.driver_times: v / 2a again), the loop latency (camera
  stamp -> bus write: ``latency``, live the retarget node's running median of stamp -> receipt plus
  ``forecast.hop``, offline the configured one) and the hold (a joint never passes the goal it was
  written, and that goal steps once per frame, so a joint that follows a ramp at its slope is at
  least a frame period behind: the running median of the frame intervals). Only a trend is carried
  that far: the last step's slope where the step before went the same way, none otherwise, so a
  one-frame jitter (the open eye's AU45 in a wink of the other) is not pushed 60 ms on and the
  lids do not lead the eye.

At 30 fps and 10.2 ms of latency, with the sample robot's caps and smoothing: jaw 25 + 42 ms, lip
corners 26 + 41 ms, lids 10 + 54 ms, eyes 40 + 27 ms, each bounded by ``horizon`` (default 0.067 s:
at 0.1 s the jaw's r fell and false onsets doubled for 2-4 ms less lag, docs/anticipation.md); all
but the lids reach the bound.

A frame without a face, or a gap of more than MAX_GAP s, restarts the history; action units stay
in their range (0..5).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Union

import numpy as np

from humimic_core.channels import PUBLISHED, channel_range
from humimic_core.settings import Settings, setting

METHODS = ("linear", "kalman", "learned")
#: Frames of the linear method's least-squares line.
WINDOW = 2
#: Kalman: process noise (white acceleration, per s^3) over measurement noise.
KALMAN_Q = 1e4
#: Seconds between frames beyond which the history restarts.
MAX_GAP = 0.25
#: Longest horizon (s) accepted.
MAX_HORIZON = 0.5
#: Frame intervals in the running median of the frame period (the hold): one second at 30 fps.
PERIOD_WINDOW = 30

_INDEX = {name: i for i, name in enumerate(PUBLISHED)}
_LOW = np.array([(channel_range(c) or (-math.inf, math.inf))[0] for c in PUBLISHED])
_HIGH = np.array([(channel_range(c) or (-math.inf, math.inf))[1] for c in PUBLISHED])


@dataclass
class ForecastSettings(Settings):
    """The retarget node's ``forecast.*`` parameters (read at start)."""

    enabled: bool = setting(True, "Retarget the channels forecast `horizon` s ahead (published on /face/forecast) "
                                  "instead of the measured ones; same limits and smoothing")
    method: str = setting("linear", "Forecaster: linear, kalman or learned (humimic_retarget/forecast.py)")
    horizon: float = setting(0.067, "Seconds ahead at most: each channel as far as its joints trail the person "
                                  "(smoothing and caps here and in the driver, loop latency, a frame's hold)",
                             (0.0, MAX_HORIZON))
    hop: float = setting(0.0025, "Seconds from this node's receipt of a frame to the driver's bus write, added to "
                                 "the measured stamp -> receipt latency (docs/latency.md p50 at 30 fps: 7.7 -> 10.2 ms)",
                         (0.0, 1.0))
    model: str = setting("", "learned: ONNX model of humimic-forecast-train")

    def validate(self) -> None:
        """ValueError naming the parameter when a value cannot be used."""
        if self.method not in METHODS:
            raise ValueError(f"forecast.method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not (math.isfinite(self.horizon) and 0.0 <= self.horizon <= MAX_HORIZON):
            raise ValueError(f"forecast.horizon must be seconds in [0, {MAX_HORIZON}], got {self.horizon!r}")
        if self.enabled and self.method == "learned" and not self.model:
            raise ValueError("forecast.model: the learned method needs an ONNX model (humimic-forecast-train)")


def forecast_settings(values: Mapping[str, object]) -> ForecastSettings:
    """Settings from parameter values by name (``forecast.enabled`` ...); other names are ignored."""
    settings = ForecastSettings.from_parameters(values, "forecast.")
    settings.validate()
    return settings


def to_vector(channels: Mapping[str, float]) -> np.ndarray:
    """Channels in PUBLISHED order, NaN where absent (names not published are dropped)."""
    x = np.full(len(PUBLISHED), np.nan)
    for name, value in channels.items():
        i = _INDEX.get(name)
        if i is not None:
            x[i] = value
    return x


Horizon = Union[float, np.ndarray]  # s ahead: one for every channel, or one per PUBLISHED channel


def horizons(horizon: float, response: Optional[Mapping[str, float]] = None) -> Horizon:
    """Per PUBLISHED channel, ``horizon`` or the channel's ``response`` (s; Retargeter.response_times)
    where that is shorter; ``horizon`` alone without responses."""
    if response is None:
        return float(horizon)
    return np.array([min(horizon, response.get(c, horizon)) for c in PUBLISHED])


class Forecaster:
    """Base: a history of the last frames (times, values; ``depth`` for the method, at least 3 for the
    trend), restarted by a lost face or a gap. ``horizon`` may differ per channel (``horizons``); with
    joint responses (``follow``) each channel is forecast ``horizon`` ahead by the method and
    ``beyond`` further on a trend, both recomputed every frame from ``latency`` and the frame period."""

    depth = WINDOW

    def __init__(self, horizon: Horizon) -> None:
        self.horizon = horizon if isinstance(horizon, np.ndarray) else float(horizon)
        self.beyond: Horizon = 0.0
        self.bound = float(np.max(horizon))  # the longest horizon (forecast.horizon), kept by ``follow``
        #: s from a frame's stamp to its command's bus write (the owner keeps it up to date)
        self.latency = 0.0
        self._response: Optional[np.ndarray] = None  # per PUBLISHED channel (s), NaN: moves no joint
        self._driver = np.zeros(len(PUBLISHED))
        self.periods: deque = deque(maxlen=PERIOD_WINDOW)  # the last frame intervals (s)
        self.times = np.zeros(0)
        self.values = np.zeros((0, len(PUBLISHED)))

    @property
    def period(self) -> float:
        """The frame period (s): running median of the last PERIOD_WINDOW intervals, 0 before two frames."""
        return float(np.median(self.periods)) if self.periods else 0.0

    def follow(self, response: Mapping[str, float], driver: Optional[Mapping[str, float]] = None) -> None:
        """Each channel's horizons for new joint responses (Retargeter.response_times and driver_times
        after a live change of caps or smoothing), within ``bound``."""
        self._response = np.array([response.get(c, np.nan) for c in PUBLISHED])
        self._driver = np.array([(driver or {}).get(c, 0.0) for c in PUBLISHED])
        self._update_horizons()

    def _update_horizons(self) -> None:
        if self._response is None:
            return
        driven = np.isfinite(self._response)
        near = np.where(driven, np.minimum(self.bound, self._response), self.bound)
        trail = self._response + self._driver + max(0.0, self.latency) + self.period
        self.horizon = near
        self.beyond = np.where(driven, np.minimum(self.bound, trail) - near, 0.0)

    def reset(self) -> None:
        self.times, self.values = self.times[:0], self.values[:0]

    def __call__(self, t: float, channels: Optional[Mapping[str, float]]) -> Optional[Dict[str, float]]:
        """The forecast of a frame's channels at stream time ``t`` (None: no face, passed on)."""
        if channels is None:
            self.reset()
            return None
        x = to_vector(channels)
        if self.times.size and not 0.0 < t - self.times[-1] <= MAX_GAP:
            self.reset()
        if self.times.size:
            self.periods.append(t - self.times[-1])
        self._update_horizons()
        keep = max(self.depth, 3) - 1
        self.times = np.append(self.times[-keep:], t)
        self.values = np.vstack([self.values[-keep:], x])
        ahead = self.predict(x) + self.trend() * self.beyond
        ahead = np.clip(np.where(np.isfinite(ahead), ahead, x), _LOW, _HIGH)
        return {name: float(ahead[_INDEX[name]]) if name in _INDEX else value for name, value in channels.items()}

    def trend(self) -> np.ndarray:
        """Per channel the last step's slope where the step before went the same way, else 0."""
        if self.times.size < 3:
            return np.zeros(len(PUBLISHED))
        steps = np.diff(np.nan_to_num(self.values[-3:]), axis=0) / np.diff(self.times[-3:])[:, None]
        return np.where(steps[0] * steps[1] > 0.0, steps[1], 0.0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class LinearForecaster(Forecaster):
    """Least-squares line over the last WINDOW frames, extrapolated ``horizon`` ahead."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.times.size < 2:
            return x
        t = self.times[-WINDOW:] - self.times[-WINDOW:].mean()
        v = self.values[-WINDOW:] - self.values[-WINDOW:].mean(axis=0)
        slope = (t @ np.nan_to_num(v)) / (t @ t)
        return x + slope * self.horizon


class KalmanForecaster(Forecaster):
    """The measured value plus the speed of a constant-velocity Kalman filter per channel; one
    covariance serves every channel (same noise ratio, same steps), so a step is a few vector operations."""

    depth = 1

    def __init__(self, horizon: Horizon, q: float = KALMAN_Q) -> None:
        super().__init__(horizon)
        self.q = q
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._x: Optional[np.ndarray] = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        t = self.times[-1]
        if self._x is None:
            self._x, self._v, self._t = x.copy(), np.zeros_like(x), t
            self._p = np.array([[1.0, 0.0], [0.0, 1e4]])
            return x
        h, self._t = t - self._t, t
        f = np.array([[1.0, h], [0.0, 1.0]])
        p = f @ self._p @ f.T + self.q * np.array([[h ** 3 / 3, h ** 2 / 2], [h ** 2 / 2, h]])
        gain = p[:, 0] / (p[0, 0] + 1.0)
        self._p = p - np.outer(gain, p[0])
        predicted = self._x + self._v * h
        innovation = x - predicted
        tracked = np.isfinite(predicted)  # a channel that (re)appears starts from its value, at rest
        self._x = np.where(tracked, predicted + gain[0] * innovation, x)
        self._v = np.where(tracked, self._v + gain[1] * innovation, 0.0)
        return x + self._v * self.horizon  # the measured level: the filter only estimates the speed


#: Frames of history the learned model sees (the current one and LEARNED_DEPTH - 1 before it).
LEARNED_DEPTH = 5
#: ONNX metadata: the horizon (s) a learned model was trained for, and its history depth.
HORIZON_KEY, DEPTH_KEY = "humimic.forecast_horizon", "humimic.forecast_depth"


def feature_names(depth: int = LEARNED_DEPTH) -> list:
    """Names of the learned model's inputs: each channel's level, then its extrapolations from k frames back."""
    return list(PUBLISHED) + [f"{c}@-{k}" for k in range(1, depth) for c in PUBLISHED]


class HistoryFeatures(Forecaster):
    """The learned model's inputs of a frame (``features``): each channel's level and its straight-line
    extrapolations ``trained_horizon`` ahead from each of the last depth - 1 frames (0 where the history
    is shorter or a value is missing). Predicts no change; LearnedForecaster adds the model."""

    depth = LEARNED_DEPTH

    def __init__(self, horizon: Horizon, trained_horizon: Optional[float] = None) -> None:
        super().__init__(horizon)
        self.trained_horizon = float(horizon) if trained_horizon is None else trained_horizon
        self.features = np.zeros(len(PUBLISHED) * self.depth)

    def predict(self, x: np.ndarray) -> np.ndarray:
        c = len(PUBLISHED)
        out = np.zeros(c * self.depth)
        out[:c] = x
        n = self.times.size
        for k in range(1, min(n, self.depth)):
            dt = self.times[-1] - self.times[-1 - k]
            out[c * k:c * (k + 1)] = (x - self.values[-1 - k]) * (self.trained_horizon / dt)
        self.features = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
        return x


class LearnedForecaster(HistoryFeatures):
    """A trained model (ONNX: features -> change of each channel over its trained horizon), the change
    scaled to this forecaster's horizon."""

    def __init__(self, horizon: Horizon, model: str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a missing file, or not an ONNX model: onnx and onnxruntime raise their own
            raise ValueError(f"forecast.model {model}: cannot load it ({str(exc).splitlines()[0][:200]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            trained, depth = float(meta[HORIZON_KEY]), int(meta[DEPTH_KEY])
        except (KeyError, ValueError):
            raise ValueError(f"forecast.model {model}: not a forecast model (no {HORIZON_KEY} / {DEPTH_KEY} "
                             f"metadata; train one with humimic-forecast-train)") from None
        if depth != LEARNED_DEPTH or self.session.get_inputs()[0].shape[-1] != len(feature_names()):
            raise ValueError(f"forecast.model {model}: made for another history ({depth} frames) or other inputs")
        super().__init__(horizon, trained)
        self._input = self.session.get_inputs()[0].name

    def predict(self, x: np.ndarray) -> np.ndarray:
        super().predict(x)
        change = self.session.run(None, {self._input: self.features[None].astype(np.float32)})[0][0]
        return x + change * (self.horizon / self.trained_horizon)


def make_forecaster(settings: ForecastSettings, response: Optional[Mapping[str, float]] = None,
                    driver: Optional[Mapping[str, float]] = None, latency: float = 0.0) -> Optional[Forecaster]:
    """The forecaster the settings ask for, each channel ``horizons(settings.horizon, response)`` ahead
    and, on a trend, ``beyond`` that by ``driver`` + ``latency`` + the frame period (within
    ``settings.horizon``); None when anticipation is off."""
    settings.validate()
    if not settings.enabled:
        return None
    if settings.method == "linear":
        forecaster: Forecaster = LinearForecaster(settings.horizon)
    elif settings.method == "kalman":
        forecaster = KalmanForecaster(settings.horizon)
    else:
        forecaster = LearnedForecaster(settings.horizon, settings.model)
    forecaster.latency = latency
    if response is not None:
        forecaster.follow(response, driver)
    return forecaster
