#!/usr/bin/env python3
"""How close the robot's upper lids can get to the person's eyes, on the servos' positions.

Drives the upper lids of each re-run of `humimic-eval` (its `reruns/` folder) straight from the eye
closure the kinematic measure itself reads from the landmarks (humimic_experiments.kinematic.closure of
each eye's aperture: 0 open .. 1 shut), mapped linearly onto the lid's neutral → closed range: a robot
with ideal perception and no filter, a lid that copies the measured eye frame by frame. The commands go
through the live driver's code over emulated servos, a loop latency after their stamps
(humimic_experiments.driven), and the kinematic measure gives the upper lids' pooled r at lag 0. Then
the shipped pipeline's own lid shaping is added step by step, from its real settings:

- the dead zone and full scale of the per-eye closure channels (perception's EYE_CLOSURE_SCALE);
- perception's eyelid One-Euro filter (its default smoothing.eyelids);
- the robot config's response curve of AU45_L / AU45_R;

each alone, then one after the other.

The shipped robot's figure (perception and retargeting as they are) is `humimic-eval`'s upper_lids.

    python tools/lid_ceiling.py out/eval/reruns
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from humimic_core.paths import config_file  # noqa: E402
from humimic_core.robot_config import RobotConfig, load_robot_config  # noqa: E402
from humimic_experiments import driven, evaluate, kinematic  # noqa: E402
from humimic_perception.action_units import EYE_CLOSURE_SCALE, MAX_INTENSITY, intensity  # noqa: E402
from humimic_perception.one_euro import OneEuroFilter  # noqa: E402
from humimic_perception.settings import SmoothingSettings  # noqa: E402

#: Shaping steps of the pipeline, in the order it applies them.
STEPS = ("dead zone", "One-Euro", "curve")


def shaped(closure: np.ndarray, stamps: np.ndarray, steps: Sequence[str], config: RobotConfig,
           channel: str) -> np.ndarray:
    """The closure (0..1) as the pipeline's ``steps`` shape it, as a fraction of the lid's range."""
    closure = np.clip(np.nan_to_num(closure), 0.0, 1.0)
    x = closure * MAX_INTENSITY  # AU scale: 0 open .. 5 shut
    if "dead zone" in steps:  # as perception makes AU45_L / AU45_R of the closure
        x = np.array([intensity(c, *EYE_CLOSURE_SCALE) for c in closure])
    if "One-Euro" in steps:
        smooth = OneEuroFilter(SmoothingSettings().eyelids.params)
        x = np.array([smooth(t * 1e-9, np.array([v]))[0] for t, v in zip(stamps.tolist(), x)])
    if "curve" in steps:
        x = np.clip(config.mapping.curve(channel).shape(x), 0.0, MAX_INTENSITY)
    return x / MAX_INTENSITY


def lid_commands(recording: evaluate.Recording, closures: Dict[str, np.ndarray], pairs: Sequence[kinematic.Pair],
                 config: RobotConfig, steps: Sequence[str]) -> Dict[str, np.ndarray]:
    """Each upper lid's command per frame: neutral + the shaped closure of the eye it imitates (by its
    aperture signal) times the range toward its closing limit."""
    servos = {s.joint: s for s in config.servos}
    out = {}
    for pair in pairs:
        servo = servos[pair.joint]
        closed = kinematic.closing_limit(pair, servo.min, servo.max)
        fraction = shaped(closures[pair.signal], recording.stamps, steps, config, f"AU45_{pair.signal[-1]}")
        out[pair.joint] = servo.neutral + fraction * (closed - servo.neutral)
    return out


def ceiling(clips: Sequence[Tuple[evaluate.Recording, Dict[str, np.ndarray]]], steps: Sequence[str],
            config: RobotConfig, pairing: evaluate.Pairing) -> Tuple[float, float]:
    """(commands, positions) pooled r at lag 0 of the upper lids driven from the measured closures of
    ``clips`` ((recording, aperture signal -> closure))."""
    lids = [p for p in pairing.pairs if p.group == "upper_lids"]
    segments: Dict[str, List[Tuple[np.ndarray, np.ndarray]]] = {"commands": [], "positions": []}
    for recording, closures in clips:
        commands = lid_commands(recording, closures, lids, config, steps)
        positions = driven.achieved(config, config_file("humimic.yaml"), recording.stamps, commands)
        for measured, robot in (("commands", commands), ("positions", positions)):
            _, found = evaluate.measure(dataclasses.replace(recording, positions=robot), pairing, config)
            segments[measured] += [s for pair, ss in found.items() if pair.group == "upper_lids" for s in ss]
    return kinematic.pooled_pearson(segments["commands"])[0], kinematic.pooled_pearson(segments["positions"])[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reruns", type=Path, help="humimic-eval's reruns/ folder")
    args = parser.parse_args(argv)
    config = load_robot_config(config_file("robot_face.yaml"))
    pairing = evaluate.load_pairing(config_file("fidelity.yaml"), config, config.mapping.mirror)
    clips = []  # each re-run read once: (recording, each eye's measured closure)
    for folder in sorted(p for p in args.reruns.iterdir() if (p / "metrics.json").is_file()):
        recording = evaluate.load_recording(folder, "commands")
        signals = kinematic.geometry(recording.points, recording.rotations)
        clips.append((recording, {f"eye_aperture_{eye}": kinematic.closure(signals[f"eye_aperture_{eye}"])
                                  for eye in "RL"}))
    print(f"upper lids driven from the measured eye closure, each command {1e3 * driven.LOOP_LATENCY_S:.1f} ms "
          f"after its stamp; pooled r at lag 0")
    print(f"{'shaping':40s} {'commands':>9s} {'positions':>10s}")
    variants = [()] + [(step,) for step in STEPS] + [STEPS[:n] for n in range(2, len(STEPS) + 1)]
    for steps in variants:
        r_commands, r_positions = ceiling(clips, steps, config, pairing)
        name = " + ".join(steps) or "none (ideal perception)"
        print(f"{name:40s} {r_commands:9.3f} {r_positions:10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
