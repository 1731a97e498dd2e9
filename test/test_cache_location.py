"""One cache location for the tools run from a source checkout and the nodes installed by colcon
(issue 12 item 4: the README's steps wrote into the checkout, installed nodes read ~/.cache)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOW = "from humimic_core.paths import cache_dir, media_dir; print(cache_dir()); print(media_dir())"


def cache_seen(python_path: Path, env: dict) -> list:
    done = subprocess.run([sys.executable, "-c", SHOW], capture_output=True, text=True, check=True,
                          env={**env, "PYTHONPATH": str(python_path)}, cwd="/")
    return done.stdout.split()


def test_source_checkout_and_installed_package_share_the_cache(tmp_path):
    installed = tmp_path / "install" / "lib" / "python3" / "site-packages"  # as colcon lays it out
    shutil.copytree(ROOT / "humimic_core", installed / "humimic_core")
    env = {k: v for k, v in os.environ.items() if k not in ("HUMIMIC_CACHE", "PYTHONPATH")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    from_source, from_install = cache_seen(ROOT, env), cache_seen(installed, env)
    assert from_source == from_install == [str(tmp_path / "xdg" / "humimic"), str(tmp_path / "xdg" / "humimic" / "media")]
    env.pop("XDG_CACHE_HOME")
    env["HOME"] = str(tmp_path / "home")
    assert cache_seen(ROOT, env)[0] == cache_seen(installed, env)[0] == str(tmp_path / "home" / ".cache" / "humimic")
    env["HUMIMIC_CACHE"] = str(tmp_path / "mine")
    assert cache_seen(ROOT, env)[0] == cache_seen(installed, env)[0] == str(tmp_path / "mine")


def test_run_keeps_a_checkout_self_contained():
    assert 'export HUMIMIC_CACHE=${HUMIMIC_CACHE:-$ROOT/.cache}' in (ROOT / "run").read_text()
