"""The pipeline across two hosts (network namespaces of humimic_experiments.two_hosts): perception
on the workstation, camera, retarget, driver, emulated bus and recorder on the robot's computer.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

from humimic_bringup.graph import ProcessSpec, imitation_graph
from humimic_bringup.runner import Pipeline, command
from humimic_core.paths import config_file
from humimic_core.topics import ACTION_UNITS, CAMERA_INFO, JOINT_COMMANDS, WRITTEN_GOALS, absolute
from humimic_experiments.record_node import PUBLISHER_SEEN
from humimic_experiments.two_hosts import Host


def on_host(spec: ProcessSpec, host: Host) -> ProcessSpec:
    """The process run inside the host's namespace (`ip netns exec`)."""
    return ProcessSpec(spec.name, "ip", package="iproute2", ros_node=False,
                       arguments=["netns", "exec", host.namespace, *command(spec)])


def network_environment(base: Mapping[str, str]) -> Dict[str, str]:
    """The environment for nodes that talk across hosts: the two-host Fast DDS profile (UDP only),
    discovery beyond localhost."""
    env = {k: v for k, v in base.items() if k != "ROS_LOCALHOST_ONLY"}
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(config_file("fastdds_two_hosts.xml"))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SUBNET"
    return env


#: the node that runs on the workstation; every other process runs on the robot's computer
WORKSTATION_NODES = ("face_perception",)
#: what run_split records (not the images: compressing them would load the machine measured)
RECORDED = tuple(absolute(t) for t in (CAMERA_INFO, ACTION_UNITS, JOINT_COMMANDS, WRITTEN_GOALS))


def run_split(video: str, out: Path, hosts: Optional[Tuple[Host, Host]], single: Optional[Host] = None,
              timeout: float = 120.0, realtime: bool = True) -> Path:
    """Imitate `video` with perception on hosts[0] and camera, retarget, driver, emulated bus and
    recorder on hosts[1] (or everything on `single`, with the usual one-machine profile); the
    recording (made on the robot's host); RuntimeError when a process fails. realtime=False: the
    camera sends each frame when the last one's action units came back (no frame dropped)."""
    recording = out / "recording"
    specs = imitation_graph({"video": video, "serial_port": str(out / "servo_bus"), "record": str(recording),
                             "realtime": str(realtime).lower()}, include_external=False)
    specs = [s.fallback if s.fallback is not None else s for s in specs]  # humimic-record: no rosbag2 here
    next(s for s in specs if s.name == "recorder").parameters["topics"] = list(RECORDED)
    if hosts is not None:
        placed = [on_host(s, hosts[0] if s.name in WORKSTATION_NODES else hosts[1]) for s in specs]
        env = network_environment(os.environ)
    else:
        placed = [on_host(s, single) for s in specs]
        env = dict(os.environ)
    camera = [s for s in placed if s.name == "camera"]
    with Pipeline([s for s in placed if s.name != "camera"], out / "logs", env) as nodes:
        # across hosts discovery takes its time: the camera waits for its own subscribers, and here the
        # recorder must also see the other topics' publishers, or it loses their first messages (the
        # recorder runs under `ip netns exec` here, so Pipeline.wait_for_recorder does not know it)
        awaited = [f"{t}: {PUBLISHER_SEEN}" for t in RECORDED if t != absolute(CAMERA_INFO)]
        if not nodes.wait_for_lines("recorder", awaited, timeout):
            raise RuntimeError(f"the recorder did not see every topic's publisher in {timeout:.0f} s "
                               f"(logs: {out / 'logs'})")
        with Pipeline(camera, out / "logs", env) as source:
            if source.wait("camera", timeout) is None:
                raise RuntimeError(f"the camera did not finish {video} in {timeout:.0f} s (logs: {out / 'logs'})")
            time.sleep(1.0)  # the last frame's commands reach the bus
        failed = nodes.failed() or source.failed()
    if failed:
        raise RuntimeError(f"processes failed: {failed} (logs: {out / 'logs'})")
    return recording
