"""Two hosts on one machine: two network namespaces joined by a veth pair, for running the
pipeline across a network (perception on one "host", the rest on the other: humimic_bringup.two_hosts)
in tests and benchmarks. Needs root and `ip` (iproute2). Addresses are from the benchmarking range
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
from typing import Dict, Iterator, List, Optional, Tuple

from humimic_core.topics import ACTION_UNITS, CAMERA_INFO, WRITTEN_GOALS, absolute
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


def latencies_ms(recording: Path) -> Dict[str, List[float]]:
    """topic -> ms from the camera stamp to the recorder's receipt (on the robot's host, the camera's
    clock), for the messages of frames with a face: perception's action units and the driver's
    bus writes (/driver/written_goals, as the demo's monitor sees them)."""
    frames = {stamp_ns(deserialize(m)) for m in read_messages(recording, [absolute(CAMERA_INFO)])}
    out: Dict[str, List[float]] = {absolute(ACTION_UNITS): [], absolute(WRITTEN_GOALS): []}
    for m in read_messages(recording, list(out)):
        msg = deserialize(m)
        if len(msg.name) and stamp_ns(msg) in frames:
            out[m.topic].append((m.timestamp - stamp_ns(msg)) * 1e-6)
    return out
