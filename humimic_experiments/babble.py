"""Motor babbling on the face twin: the robot's face moved through structured and random poses, each
perceived once it has settled, recorded for learning an inverse self-model with humimic-fit.

    python -m humimic_experiments.babble --out DIR [--levels 2] [--pairs] [--combos 200] [--images]

Poses come from humimic_retarget.offline.pose_grid (neutral; each joint group alone at ``levels``
steps to each side; with ``pairs`` every two groups at the ends of their ranges, so that joints
sharing an action unit are seen together and apart; then ``combos`` random poses mixing groups, each side of a left/right pair on
its own; every pose keeps the joint limits and couplings). Between poses the joints move in a straight line at safe speeds (each joint's
velocity cap of the robot config's constraints under the retarget node's max_velocity), rendered
and perceived at ``fps`` as a camera would see them; at each pose the face is held ``settle``
seconds and then until the perceived channels stop moving (at most ``hold`` seconds). The sample
of a pose: its joint positions, the robot face's channels as the retarget node would get them
(AUs, head angles, gaze), its facial geometry (humimic_experiments.kinematic, IOD) and optionally
the image. DIR/babble.jsonl is humimic-fit's JSONL (channels -> joints: the inverse self-model);
the geometry and image path ride along as extra keys.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, Mapping, Optional, Sequence

import cv2
import numpy as np

from humimic_core.parameters import node_parameters
from humimic_core.paths import config_file
from humimic_core.robot_config import RobotConfig, load_robot_config
from humimic_experiments import kinematic
from humimic_experiments.rerun import perception_from_parameters, result_channels
from humimic_retarget.offline.paired_data import jsonl_line
from humimic_retarget.offline.pose_grid import pose_grid

#: largest change of any perceived channel between two frames for a held face to count as settled
STILL = 0.05


def moves(start: Mapping[str, float], goal: Mapping[str, float], caps: Mapping[str, float], fps: float
          ) -> Iterator[Dict[str, float]]:
    """Joint positions of each frame of a straight move from start to goal, no joint faster than its cap."""
    duration = max(abs(goal[j] - start[j]) / caps[j] for j in goal)
    steps = max(1, int(np.ceil(duration * fps)))
    for k in range(1, steps + 1):
        yield {j: start[j] + (goal[j] - start[j]) * k / steps for j in goal}


def babble(config: RobotConfig, out: Path, levels: int = 2, combos: int = 0, seed: int = 0, fps: float = 30.0,
           settle: float = 0.2, hold: float = 1.0, params_file: Optional[Path] = None, images: bool = False,
           twin=None, log=print, pairs: bool = False) -> Dict[str, float]:
    """Babble the twin through the pose grid; writes out/babble.jsonl (and out/images/); returns a summary."""
    from humimic_perception.intrinsics import Intrinsics
    from humimic_perception.sim.face_twin import FaceTwin
    from humimic_perception.sim.neutral_face import prepare

    params_file = Path(params_file or config_file("humimic.yaml"))
    twin = twin or FaceTwin(prepare(), config.servos)
    perception, _ = perception_from_parameters(params_file)
    max_velocity = float(node_parameters(params_file, "retarget").get("max_velocity", 3.0))
    caps = {j: c.velocity for j, c in config.motion_caps(max_velocity, 1.0).items()}
    size = twin.face.size
    intrinsics = Intrinsics.from_fov(size, size, 60.0)
    out.mkdir(parents=True, exist_ok=True)
    if images:
        (out / "images").mkdir(exist_ok=True)
    poses = pose_grid(config, levels, combos, seed, sides_apart=True, pairs=pairs)
    frame, samples, lost = 0, 0, 0
    started = time.perf_counter()

    def look(pose: Mapping[str, float]):
        nonlocal frame
        image = twin.render(pose)
        result = perception.process(image, intrinsics, frame / fps)
        frame += 1
        return image, result

    current = dict(poses[0])
    for _ in range(int(settle * fps) + 10):  # the neutral face first, so perception knows it
        look(current)
    with open(out / "babble.jsonl", "w") as jsonl:
        for index, goal in enumerate(poses):
            for pose in moves(current, goal, caps, fps):
                look(pose)
            current = dict(goal)
            previous: Optional[Dict[str, float]] = None
            for held in range(max(1, int(hold * fps))):
                image, result = look(current)
                channels = result_channels(result)
                still = (channels is not None and previous is not None and previous.keys() == channels.keys()
                         and max(abs(channels[k] - previous[k]) for k in channels) < STILL)
                previous = channels
                if held + 1 >= settle * fps and still:
                    break
            if channels is None:
                lost += 1
                continue
            geometry = kinematic.geometry(result.points[None, :kinematic.MESH_POINTS], result.head_pose.rotation[None])
            extra: Dict[str, object] = {"pose": index, "geometry": {k: float(v[0]) for k, v in geometry.items()}}
            if images:
                name = f"images/{index:05d}.jpg"
                cv2.imwrite(str(out / name), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
                extra["image"] = name
            jsonl.write(jsonl_line(channels, current, **extra) + "\n")
            samples += 1
    perception.close()
    minutes = (time.perf_counter() - started) / 60.0
    summary = {"poses": len(poses), "samples": samples, "no_face": lost, "frames": frame,
               "robot_seconds": frame / fps, "wall_seconds": minutes * 60.0,
               "poses_per_robot_minute": len(poses) / (frame / fps / 60.0), "poses_per_wall_minute": len(poses) / minutes}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"babbled {len(poses)} poses ({samples} samples, {lost} without a face) in {frame} frames: "
        f"{summary['poses_per_robot_minute']:.0f} poses per minute of robot time, "
        f"{summary['poses_per_wall_minute']:.0f} per wall-clock minute here")
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder: babble.jsonl, summary.json, images/")
    parser.add_argument("--robot-config", default=str(config_file("robot_face.yaml")))
    parser.add_argument("--params-file", default=None, help="node parameter file (default config/humimic.yaml)")
    parser.add_argument("--levels", type=int, default=2, help="steps to each side of neutral per joint group")
    parser.add_argument("--pairs", action="store_true", help="also every two joint groups at their range ends")
    parser.add_argument("--combos", type=int, default=200, help="random poses mixing joint groups")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second of the watching camera")
    parser.add_argument("--settle", type=float, default=0.2, help="s each pose is held at least")
    parser.add_argument("--hold", type=float, default=1.0, help="s each pose is held at most")
    parser.add_argument("--images", action="store_true", help="also save each sample's image")
    args = parser.parse_args(argv)
    try:
        babble(load_robot_config(args.robot_config), Path(args.out), args.levels, args.combos, args.seed, args.fps,
               args.settle, args.hold, args.params_file, args.images, pairs=args.pairs)
    except ValueError as exc:
        print(f"humimic-babble: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
