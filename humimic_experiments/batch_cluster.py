"""A two-node Ray cluster on this machine for tests and the benchmark: the head in one network
namespace, a worker in another, joined by a veth pair with addresses of the benchmarking range
198.18.0.0/15 on the veth only (humimic_experiments.two_hosts). Needs root (ip netns); everything
it made (the Ray processes in the namespaces, the namespaces and the veth) is removed on exit and
on failure.

    with two_node_cluster() as cluster:
        cluster.run([sys.executable, "-m", "humimic_experiments.batch", ..., "--address", cluster.address])
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from humimic_experiments.two_hosts import two_hosts, unavailable

PORT = 6380


class ClusterUnavailable(RuntimeError):
    """Namespaces or Ray cannot be set up here (not root, no `ip`, no Ray)."""


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


@contextmanager
def two_node_cluster(cpus_per_node: int = 1, start_timeout: float = 180) -> Iterator[Cluster]:
    """Start the cluster (raises ClusterUnavailable where it cannot be made); stop it on exit."""
    reason = unavailable()
    if reason:
        raise ClusterUnavailable(reason)
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ClusterUnavailable("Ray is not installed (requirements-batch.txt)") from None
    temp = Path(tempfile.mkdtemp(prefix="hmray-"))
    try:
        with two_hosts(f"ray{os.getpid() % 100000}") as (head, worker):
            cluster = Cluster(head.namespace, worker.namespace, head.address, worker.address, temp,
                              secrets.token_hex(32))
            ray_cli = [sys.executable, "-m", "ray.scripts.scripts", "start", f"--num-cpus={cpus_per_node}",
                       "--num-gpus=0", "--disable-usage-stats"]
            started = cluster.run([*ray_cli, "--head", "--include-dashboard=false", f"--port={PORT}",
                                   f"--node-ip-address={cluster.head_ip}", f"--temp-dir={temp / 'head'}"],
                                  timeout=start_timeout, capture_output=True, text=True)
            if started.returncode:
                raise RuntimeError(f"ray start --head failed: {started.stderr.strip()[-500:]}")
            started = cluster.run([*ray_cli, f"--address={cluster.address}", f"--node-ip-address={cluster.worker_ip}",
                                   f"--temp-dir={temp / 'worker'}"],
                                  ns=cluster.worker_ns, timeout=start_timeout, capture_output=True, text=True)
            if started.returncode:
                raise RuntimeError(f"ray start (worker) failed: {started.stderr.strip()[-500:]}")
            yield cluster
    finally:
        shutil.rmtree(temp, ignore_errors=True)
