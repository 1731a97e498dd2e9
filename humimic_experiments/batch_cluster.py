"""A two-node Ray cluster on this machine for tests and the benchmark: the head in one network
namespace, a worker in another, joined by a veth pair with addresses of the benchmarking range
198.18.0.0/15 on the veth only (no route anywhere else). Needs root (ip netns); everything it
made (the Ray processes in the namespaces, the namespaces and the veth) is removed on exit, on
failure and at interpreter exit.

    with two_node_cluster() as cluster:
        cluster.run([sys.executable, "-m", "humimic_experiments.batch", ..., "--address", cluster.address])
"""
from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Sequence

PORT = 6380


class ClusterUnavailable(RuntimeError):
    """Namespaces or Ray cannot be set up here (not root, no `ip`, no Ray)."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode:
        raise ClusterUnavailable(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")


@dataclass
class Cluster:
    head_ns: str
    worker_ns: str
    head_ip: str
    worker_ip: str
    temp: Path
    token: str

    @property
    def address(self) -> str:
        return f"{self.head_ip}:{PORT}"

    def run(self, cmd: Sequence[str], ns: str = "", timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
        """Run a command in a namespace (default: the head's) with the cluster's token."""
        env = {**kwargs.pop("env", os.environ), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}
        return subprocess.run(["ip", "netns", "exec", ns or self.head_ns, *cmd], timeout=timeout, env=env, **kwargs)

    def pids(self) -> List[int]:
        """Every process in the two namespaces (all started by this cluster)."""
        found = []
        for ns in (self.head_ns, self.worker_ns):
            out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
            found += [int(p) for p in out.split()]
        return found


def _stop(cluster: Cluster) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = cluster.pids()
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while pids and cluster.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
    for ns in (cluster.head_ns, cluster.worker_ns):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    shutil.rmtree(cluster.temp, ignore_errors=True)


@contextmanager
def two_node_cluster(cpus_per_node: int = 1, start_timeout: float = 180) -> Iterator[Cluster]:
    """Start the cluster (raises ClusterUnavailable where it cannot be made); stop it on exit."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        raise ClusterUnavailable("network namespaces need root and iproute2's `ip`")
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ClusterUnavailable("Ray is not installed (requirements-batch.txt)") from None
    tag = f"{os.getpid() % 100000}"
    subnet = f"198.18.{os.getpid() % 250}"
    cluster = Cluster(f"hmhead{tag}", f"hmwork{tag}", f"{subnet}.1", f"{subnet}.2",
                      Path(tempfile.mkdtemp(prefix="hmray-")), secrets.token_hex(32))
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            _stop(cluster)

    atexit.register(stop)
    try:
        _ip("netns", "add", cluster.head_ns)
        _ip("netns", "add", cluster.worker_ns)
        _ip("link", "add", f"hmvh{tag}", "type", "veth", "peer", "name", f"hmvw{tag}")
        for ns, dev, ip in ((cluster.head_ns, f"hmvh{tag}", cluster.head_ip),
                            (cluster.worker_ns, f"hmvw{tag}", cluster.worker_ip)):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        ray_cli = [sys.executable, "-m", "ray.scripts.scripts", "start", f"--num-cpus={cpus_per_node}",
                   "--num-gpus=0", "--disable-usage-stats"]
        head = cluster.run([*ray_cli, "--head", "--include-dashboard=false", f"--port={PORT}",
                            f"--node-ip-address={cluster.head_ip}", f"--temp-dir={cluster.temp / 'head'}"],
                           timeout=start_timeout, capture_output=True, text=True)
        if head.returncode:
            raise RuntimeError(f"ray start --head failed: {head.stderr.strip()[-500:]}")
        worker = cluster.run([*ray_cli, f"--address={cluster.address}", f"--node-ip-address={cluster.worker_ip}",
                              f"--temp-dir={cluster.temp / 'worker'}"],
                             ns=cluster.worker_ns, timeout=start_timeout, capture_output=True, text=True)
        if worker.returncode:
            raise RuntimeError(f"ray start (worker) failed: {worker.stderr.strip()[-500:]}")
        yield cluster
    finally:
        stop()
        atexit.unregister(stop)
