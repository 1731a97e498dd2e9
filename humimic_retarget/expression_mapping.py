"""The robot config's whole mapping: channels -> shaped vector -> linear and learned joint targets."""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from humimic_core.channels import mirror_source
from humimic_core.robot_config import RobotConfig
from humimic_retarget.channel_shaping import ChannelShaper
from humimic_retarget.learned_mapping import LearnedMapping
from humimic_retarget.linear_mapping import LinearMapping


class ExpressionMapping:
    """Joint targets (rad, servo order, not yet limited) for a frame's channels.

    The learned model (``mapping.model``) drives the joints it outputs and needs every one of its
    channels: when one is absent or NaN/inf, all its joints are invalid for that frame. It reads the
    channels as perceived (mirrored, times their gains): the response curves shape the linear
    mapping's input only, because a model fitted on perceived channels has learned its own. The
    linear weights drive the other joints. A self-model's joint whose predicted standard deviation
    exceeds ``mapping.model.max_std`` follows its linear mapping for that frame; ``std`` holds the
    last frame's predicted standard deviations (model joint order; None without a variance). A
    target that overflows to inf is invalid too.
    """

    def __init__(self, config: RobotConfig) -> None:
        self.joints = config.joint_names
        self.model: Optional[LearnedMapping] = None
        self.max_std = config.mapping.model_max_std
        self.std: Optional[np.ndarray] = None
        channels: List[str] = list(config.mapping.channels)
        if config.mapping.model is not None:
            self.model = LearnedMapping(config.mapping.model, self.joints)
            channels += [c for c in self.model.channels if c not in channels]
        self.shaper = ChannelShaper(channels, config.mapping.curves, config.mapping.mirror)
        self.linear = LinearMapping(config, channels)
        if self.model is not None:
            index = {c: i for i, c in enumerate(channels)}
            self._model_inputs = np.array([index[c] for c in self.model.channels])
            self._model_joints = np.array([self.joints.index(j) for j in self.model.joints])

    @property
    def channels(self) -> Tuple[str, ...]:
        return self.shaper.channels

    def driven_joints(self) -> Dict[str, np.ndarray]:
        """Input channel (as a frame names it: under the mirror AU12_L moves what AU12_R's entry names)
        -> the joints it moves (bool per joint, servo order)."""
        drives = self.linear.weights != 0.0
        if self.model is not None:
            drives[np.ix_(self._model_joints, self._model_inputs)] = True
        out: Dict[str, np.ndarray] = {}
        for i, channel in enumerate(self.channels):
            source = mirror_source(channel)[0] if self.shaper.mirror else channel
            out[source] = out.get(source, np.zeros(len(self.joints), bool)) | drives[:, i]
        return out

    def __call__(self, frame: Mapping[str, float]) -> Tuple[np.ndarray, np.ndarray]:
        """(targets, valid) per joint for a frame's channel values."""
        raw, present, bad = self.shaper.read(frame)
        values = self.shaper.shape(raw)
        with np.errstate(over="ignore", invalid="ignore"):
            targets, valid = self.linear(values, present, bad)
            if self.model is not None:
                idx = self._model_inputs
                ok = bool(np.all(present[idx] & ~bad[idx]))
                trusted = np.ones(len(self._model_joints), bool)
                if ok:
                    mean, variance = self.model.predict((raw * self.shaper.gains)[idx])
                    self.std = None if variance is None else np.sqrt(variance)
                    if self.std is not None and self.max_std is not None:
                        trusted = self.std <= self.max_std
                    targets[self._model_joints[trusted]] = mean[trusted]
                valid[self._model_joints[trusted]] = ok
        return targets, valid & np.isfinite(targets)
