"""The ./run script: a ROS domain per checkout, so two checkouts on one machine never cross-talk."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from humimic_core.paths import share_dir


def domain_of(checkout: Path) -> int:
    """The domain ./run derives from a checkout's path (the script's formula, independently)."""
    return int(hashlib.sha256(str(checkout).encode()).hexdigest()[:8], 16) % 101 + 1


def run_domain(checkout: Path, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "ROS_DOMAIN_ID"}
    done = subprocess.run(["bash", str(checkout / "run"), "domain"], capture_output=True, text=True,
                          env={**base, **env}, timeout=30, check=True)
    return done.stdout.strip()


def checkout(folder: Path) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(share_dir() / "run", folder / "run")
    return folder


def test_each_checkout_gets_its_own_stable_domain(tmp_path):
    first = checkout(tmp_path / "humimic")
    # a second checkout whose path gives another domain (1 in 101 paths share one: ROS_DOMAIN_ID then)
    second = next(tmp_path / f"humimic-{k}" for k in range(1000)
                  if domain_of(tmp_path / f"humimic-{k}") != domain_of(first))
    checkout(second)
    a, b = run_domain(first), run_domain(second)
    assert a == f"ROS_DOMAIN_ID={domain_of(first)}" and b == f"ROS_DOMAIN_ID={domain_of(second)}" and a != b
    assert run_domain(first) == a, "stable over runs"
    assert 1 <= domain_of(first) <= 101


def test_an_exported_domain_wins(tmp_path):
    assert run_domain(checkout(tmp_path / "humimic"), ROS_DOMAIN_ID="42") == "ROS_DOMAIN_ID=42"
