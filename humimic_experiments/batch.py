"""Many sessions at once: the offline re-run, the kinematic fidelity figures and the dataset export of
every video or recording of a folder (or a list), on Ray (every core of this machine by default, or
an existing cluster with --address), a plain process pool (--executor process) or one process
(--executor serial); then one summary table (per session and pooled) and one merged dataset.

    python -m humimic_experiments.batch VIDEOS_OR_FOLDERS... --out out/batch [--executor ray|process|serial]

Per item, everything is made in a temporary folder on the worker and sent back to this process,
which writes it into ``<out>/items/.tmp-*`` and renames that to ``<out>/items/<name>``: an item's
folder is complete or absent. ``item.json`` holds the settings hash (the inputs' content, the
params/robot/pairing files, the options, package versions, the humimic sources and the ONNX
models); a later batch skips an item whose hash is unchanged. A failing item is reported with its
reason; the others go on. Inputs are read by path on the workers (on a cluster: the same path on
every node); the outputs come back through Ray.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import yaml
from tqdm import tqdm

from humimic_core.paths import cache_dir, config_file, media_dir, shared_media_dir
from humimic_core.robot_config import load_robot_config
from humimic_core.topics import CAMERA_IMAGE, JOINT_STATES, absolute
from humimic_experiments import evaluate, kinematic
from humimic_experiments.bag_io import segments

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
EXECUTORS = ("ray", "process", "serial")
ITEM_FILE, RERUN, DATASET = "item.json", "rerun", "dataset"
SEGMENTS_FILE = "segments.npz"


@dataclass(frozen=True)
class Item:
    name: str   # the item's folder name in <out>/items
    path: str   # video file or recording folder, as the workers open it
    start: int = 0


@dataclass(frozen=True)
class Settings:
    """What an item's outputs depend on besides its input: the config files' text and the options."""

    params: str
    robot: str
    pairing: str
    images: bool = False    # camera images in the re-run bag
    dataset: bool = True
    levels: int = 5
    threshold: float = 0.5
    words: bool = False
    robot_face: bool = False  # dataset: the robot's face (face twin) with each record
    gpu: bool = True        # perception may run on a GPU (params' device "auto": CUDA where there is one)


def _is_recording(path: Path) -> bool:
    try:
        return bool(segments(path))
    except FileNotFoundError:
        return False


def find_items(specs: Sequence[str]) -> List[Item]:
    """The items of videos, recording folders and folders of them (NAME@START as humimic-eval);
    raises ValueError naming an input that does not exist or two items of one name."""
    items: List[Item] = []
    for spec in specs:
        clip = evaluate.resolve_clip(spec)
        if clip is None:
            raise ValueError(f"input {spec!r}: not a path, nor in {shared_media_dir()} or {media_dir()}")
        if clip.path.is_dir() and not _is_recording(clip.path):
            found = [p for p in sorted(clip.path.iterdir())
                     if p.suffix.lower() in VIDEO_SUFFIXES or (p.is_dir() and _is_recording(p))]
            if not found:
                raise ValueError(f"input {spec!r}: a folder without videos ({', '.join(VIDEO_SUFFIXES)}) "
                                 f"or recordings")
            items += [Item(p.name, str(p.resolve())) for p in found]
        else:
            name = clip.path.name + (f"_from_{clip.start}" if clip.start else "")
            items.append(Item(name, str(clip.path.resolve()), clip.start))
    names = [i.name for i in items]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"two inputs give the item name(s) {', '.join(twice)}: rename or give them separately")
    return items


def _digest(h: "hashlib._Hash", path: Path) -> None:
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(str(p.relative_to(path)).encode() + b"\0")
            _digest(h, p)
        return
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def versions() -> Dict[str, str]:
    """Versions the outputs depend on: packages, a digest of the humimic sources and of the ONNX models."""
    from importlib.metadata import version

    import cv2
    import onnxruntime

    root = Path(__file__).resolve().parent.parent
    code, models = hashlib.sha256(), hashlib.sha256()
    for p in sorted(root.glob("humimic_*/**/*.py")):  # every package of the source tree
        code.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    for p in sorted((cache_dir() / "models").glob("*.onnx")):
        models.update(p.name.encode() + b"\0")
        _digest(models, p)
    return {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
            "onnxruntime": onnxruntime.__version__, "rosbags": version("rosbags"),
            "humimic_sources": code.hexdigest()[:16], "models": models.hexdigest()[:16]}


def twin_face_source(params_text: str) -> Path:
    """The image or video the face twin of a parameter file's text starts from (its ``neutral_face``)."""
    from humimic_perception.sim.neutral_face import resolve_source

    document = yaml.safe_load(params_text) or {}
    node = (document.get("face_twin") or {}).get("ros__parameters") or {}
    return resolve_source(str(node.get("neutral_face", "")))


def settings_hash(item: Item, settings: Settings, versions_: Dict[str, str]) -> str:
    """sha256 of the item's input content (and the face twin's face, with ``robot_face``), its start
    frame, the settings and the versions."""
    h = hashlib.sha256()
    _digest(h, Path(item.path))
    face = twin_face_source(settings.params) if settings.robot_face else None
    if face is not None and face.is_file():  # the twin's face is an input of the robot-face images
        _digest(h, face)
    h.update(json.dumps({"start": item.start, "settings": asdict(settings), "versions": versions_},
                        sort_keys=True).encode())
    return h.hexdigest()


def _announced_frames(path: Path, start: int) -> int:
    if path.is_dir():
        from humimic_experiments.bag_io import topic_summary

        return topic_summary(path).get(absolute(CAMERA_IMAGE), ("", 0))[1] - start
    import cv2

    return max(int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT)) - start, 0)


def source_frames(path: Path, start: int) -> Iterator[Tuple[int, np.ndarray]]:
    """(stamp, image) of the frames the re-run saw, decoded again (for the dataset's images)."""
    import itertools

    from humimic_experiments.rerun import recording_frames, video_frames

    _, frames = recording_frames(path) if path.is_dir() else video_frames(path)
    return ((f.stamp, f.image) for f in itertools.islice(frames, start, None))


def _where() -> Dict[str, str]:
    """Where an item runs: the Ray node id, its address and the GPUs Ray gave it (else the host
    name), host, process."""
    node, ip, gpus = "", "", []
    try:
        import ray

        if ray.is_initialized():
            node, ip = ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()
            gpus = [str(g) for g in ray.get_gpu_ids()]
    except ImportError:
        pass
    return {"node": node or socket.gethostname(), "node_ip": ip, "gpu_ids": gpus, "host": socket.gethostname(),
            "pid": str(os.getpid())}


def no_face_figures(frames: int) -> Dict[str, Any]:
    """evaluate.measure's figures of a clip without a face (no pair, no blink)."""
    return {"frames": frames, "frames_with_face": 0, "max_lag_frames": 0, "robot_topic": absolute(JOINT_STATES),
            **kinematic.correlation_table({}, 0), "blinks": {"count": 0, "events": []},
            "winks": {"count": 0, "one_lid": 0, "events": []}}


def run_item(item: Item, settings: Settings) -> Dict[str, Any]:
    """Re-run, measure and export one item in a temporary folder; returns its files (path -> bytes)
    and figures, or status "failed" with the reason. Never raises for a bad item."""
    from humimic_experiments.dataset import export_dataset, twin_camera
    from humimic_experiments.rerun import rerun

    t0, where, stderr = time.perf_counter(), _where(), io.StringIO()
    try:  # the stages' progress bars and warnings go to `stderr`: the warnings come back in the result
        with tempfile.TemporaryDirectory(prefix="humimic-batch-") as tmp, contextlib.redirect_stderr(stderr):
            tmp_path, source = Path(tmp), Path(item.path)
            for name in ("params", "robot", "pairing"):
                (tmp_path / f"{name}.yaml").write_text(getattr(settings, name))
            config = load_robot_config(tmp_path / "robot.yaml")
            work = tmp_path / "out"
            metrics = rerun(source, work / RERUN, tmp_path / "params.yaml", config, write_images=settings.images,
                            start_frame=item.start)
            pairing, _ = evaluate.pairing_for(tmp_path / "params.yaml", config, tmp_path / "pairing.yaml")
            if metrics["frames_with_face"]:
                figures, pair_segments = evaluate.measure(evaluate.load_recording(work / RERUN), pairing, config)
            else:  # nothing to measure: the clip's row is empty
                figures, pair_segments = no_face_figures(metrics["frames"]), {}
            index = {p: i for i, p in enumerate(pairing.pairs)}
            np.savez(work / SEGMENTS_FILE, **{f"{index[p]}_{j}_{k}": a for p, s in pair_segments.items()
                                              for j, pair_ in enumerate(s) for k, a in enumerate(pair_)})
            records = None
            if settings.dataset:
                frames = None if settings.images else source_frames(source, item.start)
                twin = twin_camera(tmp_path / "params.yaml", config) if settings.robot_face else None
                try:
                    records = export_dataset(work / RERUN, work / DATASET, settings.levels, settings.threshold,
                                             settings.words, frames=frames, twin=twin)
                finally:
                    if twin is not None:
                        twin.close()
            announced = _announced_frames(source, item.start)
            figures.update(status="done", drops=max(announced - metrics["frames"], 0), dataset_records=records,
                           processing_ms=metrics["processing_ms"])
            (work / "fidelity.json").write_text(json.dumps(figures, indent=2, default=float))
            files = {str(p.relative_to(work)): p.read_bytes() for p in sorted(work.rglob("*")) if p.is_file()}
        return {"status": "done", "files": files, "frames": metrics["frames"], "seconds": time.perf_counter() - t0,
                "warnings": [line for line in stderr.getvalue().splitlines() if "warning" in line], **where}
    except Exception as exc:  # noqa: BLE001 - a bad item is reported, the batch goes on
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - t0,
                **where}


def _replace_folder(tmp: Path, final: Path) -> None:
    """Move the finished folder tmp to final by renames, so a reader sees the old or the new one whole."""
    if final.exists():
        old = final.with_name(f".old-{final.name}-{uuid.uuid4().hex[:8]}")
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)


def commit(out: Path, item: Item, digest: str, result: Dict[str, Any]) -> Dict[str, Any]:
    """Write a done item's files into a temporary folder, then rename it to ``items/<name>``."""
    items = out / "items"
    tmp = items / f".tmp-{item.name}-{uuid.uuid4().hex[:8]}"
    for rel, data in result["files"].items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(data)
    record = {"name": item.name, "source": item.path, "start_frame": item.start, "settings_hash": digest,
              **{k: v for k, v in result.items() if k != "files"}}
    (tmp / ITEM_FILE).write_text(json.dumps(record, indent=2))
    _replace_folder(tmp, items / item.name)
    return record


def done_record(out: Path, item: Item, digest: str) -> Optional[Dict[str, Any]]:
    """The item's record when its folder holds results of the same settings hash."""
    try:
        record = json.loads((out / "items" / item.name / ITEM_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("settings_hash") == digest else None


def _serial(items: Sequence[Item], settings: Settings, cores: int, **_: Any) -> Iterator[Tuple[Item, Dict[str, Any]]]:
    for item in items:
        yield item, run_item(item, settings)


def _process(items: Sequence[Item], settings: Settings, cores: int, **_: Any) -> Iterator[Tuple[Item, Dict[str, Any]]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=cores, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_item, item, settings): item for item in items}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result()
            except Exception as exc:  # noqa: BLE001 - a worker that died
                yield futures[future], {"status": "failed", "reason": f"worker died: {type(exc).__name__}: {exc}"}


def _ray(items: Sequence[Item], settings: Settings, cores: int, address: Optional[str] = None,
         **_: Any) -> Iterator[Tuple[Item, Dict[str, Any]]]:
    import ray

    started = not ray.is_initialized()
    if started:
        options: Dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "configure_logging": False}
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=cores, **options)
    try:
        gpus = 1 if settings.gpu and ray.cluster_resources().get("GPU", 0) > 0 else 0
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(run_item)
        refs = {task.remote(item, settings): item for item in items}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            item = refs.pop(ready[0])  # no reference left once written: Ray frees the outputs
            try:
                result = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - a worker or node that died
                result = {"status": "failed", "reason": f"task lost: {type(exc).__name__}: {exc}"}
            del ready
            yield item, result
    finally:
        if started:
            ray.shutdown()


_EXECUTORS = {"serial": _serial, "process": _process, "ray": _ray}


def executor_available(name: str) -> Optional[str]:
    """None when the executor can run here, else why not (one line)."""
    if name == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            return ("Ray is not installed: pip install -r requirements-batch.txt (or the humimic[batch] extra), "
                    "or use --executor process for a plain process pool")
    return None


def run_batch(specs: Sequence[str], out: str | Path, settings: Settings, executor: str = "ray",
              cores: int = 0, address: Optional[str] = None, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run every item not already done with the same settings; write the summary and the merged
    dataset; returns the summary."""
    out = Path(out)
    items = find_items(specs)
    why = executor_available(executor)
    if why:
        raise ValueError(why)
    (out / "items").mkdir(parents=True, exist_ok=True)
    for leftover in [*(out / "items").glob(".*-*"), *out.glob(".*-dataset-*")]:  # a killed batch's unfinished folders
        shutil.rmtree(leftover, ignore_errors=True)
    versions_ = versions()
    digests = {item: settings_hash(item, settings, versions_) for item in items}
    records = {item: done_record(out, item, digests[item]) for item in items}
    todo = [item for item in items if records[item] is None]
    log(f"humimic-batch: {len(items)} item(s), {len(items) - len(todo)} unchanged and skipped, {len(todo)} to run "
        f"({executor})")
    cores = cores or os.cpu_count() or 1
    failures: Dict[str, str] = {}
    with tqdm(total=len(todo), unit="item", desc="batch", disable=False) as bar:
        for item, result in _EXECUTORS[executor](todo, settings, cores, address=address):
            if result["status"] == "done":
                records[item] = commit(out, item, digests[item], result)
            else:
                failures[item.name] = result["reason"]
                bar.write(f"humimic-batch: {item.name} failed: {result['reason']}")
            bar.update(1)
            bar.set_postfix(failed=len(failures))
    summary = summarise(out, items, records, failures, settings, versions_)
    log(summary["table"])
    return summary


def _load_segments(folder: Path, pairs: Sequence[Any]) -> Dict[Any, List[Tuple[np.ndarray, np.ndarray]]]:
    found: Dict[Any, Dict[int, List[np.ndarray]]] = {}
    with np.load(folder / SEGMENTS_FILE) as data:
        for key in data.files:
            pair, j, k = (int(v) for v in key.split("_"))
            found.setdefault(pairs[pair], {}).setdefault(j, [None, None])[k] = data[key]
    return {p: [tuple(s[j]) for j in sorted(s)] for p, s in found.items()}


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def summarise(out: Path, items: Sequence[Item], records: Dict[Item, Optional[Dict[str, Any]]],
              failures: Dict[str, str], settings: Settings, versions_: Dict[str, str]) -> Dict[str, Any]:
    """summary.json / summary.md (per session and pooled) and the merged dataset of the done items."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("params", "robot", "pairing"):
            (Path(tmp) / f"{name}.yaml").write_text(getattr(settings, name))
        config = load_robot_config(Path(tmp) / "robot.yaml")
        pairing, mirror = evaluate.pairing_for(Path(tmp) / "params.yaml", config, Path(tmp) / "pairing.yaml")
    done = [(item, r) for item, r in records.items() if r is not None]
    results, rows, sessions = [], [], []
    for item, record in done:
        folder = out / "items" / item.name
        figures = json.loads((folder / "fidelity.json").read_text())
        results.append((figures, _load_segments(folder, pairing.pairs)))
        rows.append((item.name, figures))
        sessions.append({"name": item.name, "status": "done", "frames": figures["frames"],
                         "frames_with_face": figures["frames_with_face"], "drops": figures["drops"],
                         "dataset_records": figures["dataset_records"], "seconds": record.get("seconds"),
                         "node": record.get("node"), "host": record.get("host"),
                         "settings_hash": record["settings_hash"]})
    for name, reason in failures.items():
        sessions.append({"name": name, "status": "failed", "reason": reason})
    table = "no item done"
    total: Dict[str, Any] = {}
    if results:
        lag = max(f["max_lag_frames"] for f, _ in results)
        total = evaluate.pooled(results, lag, pairing.blinks["reach"])
        total["drops"] = sum(f["drops"] for f, _ in results)
        table = evaluate.format_markdown(evaluate.table_rows(rows + [("pooled", total)], pairing.columns()))
    lines = ["| session | status | frames | with face | drops | records | node | s |", "|---" * 8 + "|"]
    for s in sessions:
        if s["status"] == "done":
            lines.append(f"| {s['name']} | done | {s['frames']} | {s['frames_with_face']} | {s['drops']} | "
                         f"{s['dataset_records'] if s['dataset_records'] is not None else '–'} | {s['node'][:12]} | "
                         f"{s['seconds']:.1f} |")
        else:
            lines.append(f"| {s['name']} | **failed**: {s['reason']} | | | | | | |")
    pairing_kind = "mirrored" if mirror else "same-side"
    text = "\n".join(lines) + f"\n\nKinematic fidelity (as humimic-eval; {pairing_kind} pairing)\n\n{table}"
    summary = {"sessions": sessions, "pooled": total, "failed": len(failures), "done": len(done),
               "versions": versions_, "table": text}
    _atomic_write(out / "summary.json", json.dumps(summary, indent=2, default=float))
    _atomic_write(out / "summary.md", text + "\n")
    if settings.dataset:
        merge_datasets(out, done, versions_)
    return summary


def merge_datasets(out: Path, done: Iterable[Tuple[Item, Dict[str, Any]]], versions_: Dict[str, str]) -> None:
    """<out>/dataset: every item's records (image paths under images/<item>/, "session" added, images
    hard-linked) and manifest.json (source, settings hash, versions); swapped in whole."""
    tmp = out / f".tmp-dataset-{uuid.uuid4().hex[:8]}"
    (tmp / "images").mkdir(parents=True)
    manifest: Dict[str, Any] = {"versions": versions_, "sessions": []}
    with open(tmp / "dataset.jsonl", "w") as merged:
        for item, record in done:
            source = out / "items" / item.name / DATASET
            count = 0
            if (source / "images").is_dir():  # absent when no frame had a face
                shutil.copytree(source / "images", tmp / "images" / item.name, copy_function=_link)
            if (source / "dataset.jsonl").is_file():
                for line in (source / "dataset.jsonl").read_text().splitlines():
                    entry = json.loads(line)
                    for part in (entry, entry.get("robot_face") or {}):
                        if part:
                            part["image"] = f"images/{item.name}/{Path(part['image']).name}"
                    merged.write(json.dumps({"session": item.name, **entry}) + "\n")
                    count += 1
            manifest["sessions"].append({"session": item.name, "source": item.path, "start_frame": item.start,
                                         "settings_hash": record["settings_hash"], "records": count})
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    _replace_folder(tmp, out / DATASET)


def _link(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", help="videos, recording folders, or folders of them; NAME@START "
                                                  "starts a video at frame START")
    parser.add_argument("--out", required=True, help="output folder: items/<name>/, summary.md/json, dataset/")
    parser.add_argument("--executor", choices=EXECUTORS, default="ray",
                        help="ray (default: a local Ray instance, or --address), process (a plain process pool), "
                             "serial (this process)")
    parser.add_argument("--address", default=None, help="an existing Ray cluster (host:port, or auto)")
    parser.add_argument("--cores", type=int, default=0, help="local workers (default: every core)")
    parser.add_argument("--params-file", default=str(config_file("humimic.yaml")), help="node parameter file")
    parser.add_argument("--robot-config", default=str(config_file("robot_face.yaml")), help="robot config YAML")
    parser.add_argument("--pairing", default=str(config_file("fidelity.yaml")), help="joint/signal pairing YAML")
    parser.add_argument("--images", action="store_true", help="keep camera images in the re-run bags")
    parser.add_argument("--no-dataset", action="store_true", help="no dataset export")
    parser.add_argument("--levels", type=int, default=5, help="dataset text: intensity steps")
    parser.add_argument("--threshold", type=float, default=0.5, help="dataset text: AU threshold")
    parser.add_argument("--words", action="store_true", help="dataset text: intensity in words")
    parser.add_argument("--robot-face", action="store_true",
                        help="dataset: with each record the robot's face (the face twin rendering its joints) and "
                             "the expression the robot-face perception reads on it")
    parser.add_argument("--cpu-only", action="store_true", help="never request a GPU for an item")
    args = parser.parse_args(argv)
    try:
        if args.cores < 0:
            raise ValueError(f"--cores must be >= 0, got {args.cores}")
        if args.address and args.executor != "ray":
            raise ValueError(f"--address is a Ray cluster: it needs --executor ray, not {args.executor}")
        texts = {}
        for key, path in (("params", args.params_file), ("robot", args.robot_config), ("pairing", args.pairing)):
            try:
                texts[key] = Path(path).read_text()
            except OSError as exc:
                raise ValueError(f"cannot read {path}: {exc.strerror}") from None
        load_robot_config(args.robot_config)
        settings = Settings(**texts, images=args.images, dataset=not args.no_dataset, levels=args.levels,
                            threshold=args.threshold, words=args.words, robot_face=args.robot_face,
                            gpu=not args.cpu_only)
        summary = run_batch(args.inputs, args.out, settings, args.executor, args.cores, args.address)
    except ValueError as exc:
        print(f"humimic-batch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"humimic-batch: interrupted; the finished items are kept in {args.out}: run again to resume",
              file=sys.stderr)
        return 130
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
