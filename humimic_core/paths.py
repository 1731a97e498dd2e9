"""Where the package's shared files (config/, launch/, urdf/, rviz/) and caches live."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE = "humimic"
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    """The package's share directory: the source tree when run from it, else the ament index."""
    if (_SOURCE_ROOT / "package.xml").is_file() and (_SOURCE_ROOT / "config").is_dir():
        return _SOURCE_ROOT
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE))


def config_file(name: str) -> Path:
    """A file of the package's config/ folder."""
    return share_dir() / "config" / name


def cache_dir() -> Path:
    """Downloads and generated models: $HUMIMIC_CACHE, else $XDG_CACHE_HOME/humimic (~/.cache/humimic).

    One place whatever runs: the tools from a source checkout and the nodes installed by colcon
    alike (`./run` exports HUMIMIC_CACHE=<checkout>/.cache to keep a checkout self-contained)."""
    env = os.environ.get("HUMIMIC_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / PACKAGE


def media_dir() -> Path:
    """Sample face videos fetched by the bootstrap (tools/fetch_media.py)."""
    return cache_dir() / "media"


def shared_media_dir() -> Path:
    """The real face clips in ../shared/media beside the source tree (may be absent)."""
    return Path(os.environ.get("HUMIMIC_SHARED_MEDIA", _SOURCE_ROOT.parent / "shared" / "media"))
