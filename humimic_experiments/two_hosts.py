"""Two hosts on one machine: two network namespaces joined by a veth pair, for running the
pipeline across a network (perception on one "host", the rest on the other) in tests and
benchmarks. Needs root and `ip` (iproute2). Addresses are from the benchmarking range
198.18.0.0/15 (RFC 2544) on the veth only; each namespace's default route is its end of the
veth (so DDS multicast discovery takes it), so traffic only passes between the two namespaces.
On leaving the context (always) any process still in the namespaces is stopped (SIGTERM, then
SIGKILL) and the namespaces are deleted, which removes the veth pair too.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

from humimic_core.graph import ProcessSpec
from humimic_core.paths import config_file
from humimic_experiments.bag_io import deserialize, read_messages
from humimic_experiments.session import stamp_ns

#: the two hosts' addresses (a /30 of the RFC 2544 benchmarking range)
ADDRESSES = ("198.18.0.1", "198.18.0.2")
PREFIX = 30


@dataclass(frozen=True)
class Host:
    namespace: str
    interface: str
    address: str


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode:
        raise OSError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def unavailable() -> Optional[str]:
    """Why two namespaces cannot be made here (None when they can)."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    try:
        with two_hosts("probe"):
            return None
    except OSError as exc:
        return f"cannot make network namespaces: {exc}"


@contextmanager
def two_hosts(tag: str = "") -> Iterator[Tuple[Host, Host]]:
    """Two namespaces `hm<tag>a`, `hm<tag>b` joined by a veth pair; deleted on exit."""
    tag = tag or str(os.getpid())
    hosts = tuple(Host(f"hm{tag}{side}", f"hm{tag}{side}"[:15], address) for side, address in zip("ab", ADDRESSES))
    made = []
    try:
        for host in hosts:
            _ip("netns", "add", host.namespace)
            made.append(host.namespace)
        a, b = hosts
        _ip("link", "add", a.interface, "netns", a.namespace, "type", "veth", "peer", "name", b.interface,
            "netns", b.namespace)
        for host in hosts:
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/{PREFIX}", "dev", host.interface)
            _ip("-n", host.namespace, "link", "set", "lo", "up")
            _ip("-n", host.namespace, "link", "set", host.interface, "up")
            _ip("-n", host.namespace, "route", "add", "default", "dev", host.interface)
        yield hosts
    finally:
        _stop_processes(made)
        for namespace in made:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def _pids(namespaces: List[str]) -> List[int]:
    return [int(pid) for ns in namespaces
            for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()]


def _stop_processes(namespaces: List[str], grace: float = 5.0) -> None:
    """SIGTERM to every process left in the namespaces, SIGKILL to those alive after `grace` s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _pids(namespaces)
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while pids and _pids(namespaces) and time.monotonic() < deadline:
            time.sleep(0.1)


def add_delay(host: Host, milliseconds: float) -> Optional[str]:
    """Delay every packet leaving `host` (netem); why not, where the kernel has no netem."""
    done = subprocess.run(["ip", "netns", "exec", host.namespace, "tc", "qdisc", "add", "dev", host.interface,
                           "root", "netem", "delay", f"{milliseconds}ms"], capture_output=True, text=True)
    return done.stderr.strip() or "tc failed" if done.returncode else None


def netem_available() -> bool:
    """Whether `tc ... netem` works here (a kernel without sch_netem refuses it)."""
    try:
        with two_hosts("netem") as (host, _):
            return add_delay(host, 1.0) is None
    except OSError:
        return False


def on_host(spec: ProcessSpec, host: Host) -> ProcessSpec:
    """The process run inside the host's namespace (`ip netns exec`)."""
    from humimic_core.runner import command

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
RECORDED = ("/camera/camera_info", "/face/action_units", "/joint_commands", "/driver/written_goals")


def run_split(video: str, out: Path, hosts: Optional[Tuple[Host, Host]], single: Optional[Host] = None,
              timeout: float = 120.0) -> Path:
    """Imitate `video` with perception on hosts[0] and camera, retarget, driver, emulated bus and
    recorder on hosts[1] (or everything on `single`, with the usual one-machine profile); the
    recording (made on the robot's host); RuntimeError when a process fails."""
    from humimic_core.graph import imitation_graph
    from humimic_core.runner import Pipeline

    recording = out / "recording"
    specs = imitation_graph({"video": video, "serial_port": str(out / "servo_bus"), "record": str(recording)},
                            include_external=False)
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
        with Pipeline(camera, out / "logs", env) as source:
            if source.wait("camera", timeout) is None:
                raise RuntimeError(f"the camera did not finish {video} in {timeout:.0f} s (logs: {out / 'logs'})")
            time.sleep(1.0)  # the last frame's commands reach the bus
        failed = nodes.failed() or source.failed()
    if failed:
        raise RuntimeError(f"processes failed: {failed} (logs: {out / 'logs'})")
    return recording



def latencies_ms(recording: Path) -> Dict[str, List[float]]:
    """topic -> ms from the camera stamp to the recorder's receipt (on the robot's host, the camera's
    clock), for the messages of frames with a face: perception's action units and the driver's
    bus writes (/driver/written_goals, as the demo's monitor sees them)."""
    frames = {stamp_ns(deserialize(m)) for m in read_messages(recording, ["/camera/camera_info"])}
    out: Dict[str, List[float]] = {"/face/action_units": [], "/driver/written_goals": []}
    for m in read_messages(recording, list(out)):
        msg = deserialize(m)
        if len(msg.name) and stamp_ns(msg) in frames:
            out[m.topic].append((m.timestamp - stamp_ns(msg)) * 1e-6)
    return out
