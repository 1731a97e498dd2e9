"""humimic-batch: the same per-item bags as single-process re-runs (Ray, a process pool, a two-node
Ray cluster in network namespaces), resuming a killed batch, a corrupt item among good ones, the
dataset with the robot's face twin."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import yaml

from humimic_core.paths import config_file
from humimic_experiments import batch
from humimic_experiments.batch import Settings, find_items, run_batch
from humimic_experiments.bag_io import segments
from humimic_experiments.rerun import rerun

ROOT = Path(__file__).resolve().parent.parent


def settings(**changes) -> Settings:
    texts = {k: config_file(f).read_text() for k, f in
             (("params", "humimic.yaml"), ("robot", "robot_face.yaml"), ("pairing", "fidelity.yaml"))}
    return Settings(**texts, **changes)


def bag_hashes(rerun_folder: Path) -> dict:
    """file name -> sha256 of every file of a re-run's bag (metadata.yaml and its storage files,
    not the re-run's metrics.json beside them, which holds timings)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for bag in segments(rerun_folder) for p in sorted(bag.iterdir())
            if p.name == "metadata.yaml" or p.suffix in (".mcap", ".db3")}


def reference_hashes(items, tmp: Path) -> dict:
    """Single-process re-runs (humimic_experiments.rerun, as humimic-rerun --no-images) of the items."""
    out = {}
    for item in items:
        rerun(item.path, tmp / item.name, write_images=False, start_frame=item.start)
        out[item.name] = bag_hashes(tmp / item.name)
    return out


def batch_hashes(out: Path) -> dict:
    return {p.name: bag_hashes(p / batch.RERUN) for p in sorted((out / "items").iterdir())}


def test_inputs_folders_cuts_and_refusals(sample_media, tmp_path):
    (tmp_path / "clips").mkdir()
    for name in ("b.mp4", "a.MOV", "notes.txt"):
        (tmp_path / "clips" / name).write_bytes(b"x")
    items = find_items([str(tmp_path / "clips"), "single_face.mp4@10"])
    assert [(i.name, i.start) for i in items] == [("a.MOV", 0), ("b.mp4", 0), ("single_face.mp4_from_10", 10)]
    with pytest.raises(ValueError, match="no_such.mp4"):
        find_items(["no_such.mp4"])
    with pytest.raises(ValueError, match="item name"):
        find_items(["single_face.mp4", str(sample_media / "single_face.mp4")])
    with pytest.raises(ValueError, match="without videos"):
        find_items([str(tmp_path)])


def test_without_ray_the_process_pool_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as where it is not installed
    assert "--executor process" in batch.executor_available("ray")
    assert batch.executor_available("process") is None


def test_the_settings_hash_follows_input_content_and_settings(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"one")
    item, versions = batch.Item("v.mp4", str(video)), batch.versions()
    first = batch.settings_hash(item, settings(), versions)
    assert batch.settings_hash(item, settings(), versions) == first
    assert batch.settings_hash(item, settings(levels=3), versions) != first
    assert batch.settings_hash(batch.Item("v.mp4", str(video), 5), settings(), versions) != first
    assert batch.settings_hash(item, settings(), {**versions, "models": "other"}) != first
    video.write_bytes(b"two")
    assert batch.settings_hash(item, settings(), versions) != first


@pytest.mark.timeout(600)
def test_ray_batch_over_all_media_gives_the_bags_of_single_process_reruns(sample_media, shared_media, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (requirements-batch.txt)")
    specs = [str(p) for p in sorted(sample_media.iterdir()) if p.suffix in (".mp4", ".mov")]
    specs += [str(p) for p in sorted(shared_media.glob("*.mp4"))]
    items = find_items(specs)
    summary = run_batch(specs, tmp_path / "out", settings(dataset=False), "ray", cores=2)
    assert summary["failed"] == 0 and summary["done"] == len(items) >= 14
    assert batch_hashes(tmp_path / "out") == reference_hashes(items, tmp_path / "ref")
    pooled = summary["pooled"]
    assert pooled["frames"] == sum(s["frames"] for s in summary["sessions"])
    assert pooled["groups"]["jaw"]["r"] > 0.5 and pooled["groups"]["neck_yaw"]["r"] > 0.8
    assert "pooled" in (tmp_path / "out" / "summary.md").read_text()


def _batch_cli(args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "humimic_experiments.batch", *args], cwd=ROOT,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def test_a_killed_batch_resumes_without_redoing_finished_items(sample_media, tmp_path):
    out = tmp_path / "out"
    args = ["single_face.mp4", "WolfgangLanger_Pexels.mp4", "--out", str(out), "--executor", "serial"]
    proc = _batch_cli(args, env={**os.environ, "TMPDIR": str(tmp_path)})  # the killed item's work folder there
    first = out / "items" / "single_face.mp4" / batch.ITEM_FILE
    try:
        deadline = time.monotonic() + 240
        while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.exists(), proc.communicate()[0] if proc.poll() is not None else "first item not done in 240 s"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # mid-way through the second (472 frames, seconds)
        proc.wait()
    assert not (out / "items" / "WolfgangLanger_Pexels.mp4").exists()  # nothing half-written
    (out / "items" / ".tmp-WolfgangLanger_Pexels.mp4-dead").mkdir()  # as a kill during a commit leaves it
    done_before = first.stat()

    logged = []
    summary = run_batch(args[:2], out, settings(), "serial", log=logged.append)
    assert "1 unchanged and skipped, 1 to run" in logged[0]
    assert summary["done"] == 2 and summary["failed"] == 0
    assert first.stat().st_mtime_ns == done_before.st_mtime_ns and first.stat().st_ino == done_before.st_ino
    assert sorted(p.name for p in (out / "items").iterdir()) == ["WolfgangLanger_Pexels.mp4", "single_face.mp4"]
    manifest = json.loads((out / "dataset" / "manifest.json").read_text())
    assert [s["session"] for s in manifest["sessions"]] == ["single_face.mp4", "WolfgangLanger_Pexels.mp4"]
    records = (out / "dataset" / "dataset.jsonl").read_text().splitlines()
    assert len(records) == sum(s["records"] for s in manifest["sessions"]) > 72
    assert all((out / "dataset" / json.loads(r)["image"]).is_file() for r in records[::50])

    logged.clear()  # other settings: the item is done again
    run_batch(["single_face.mp4"], out, settings(levels=3), "serial", log=logged.append)
    assert "0 unchanged and skipped, 1 to run" in logged[0]
    assert first.stat().st_ino != done_before.st_ino


def test_a_corrupt_item_is_reported_and_the_others_complete(sample_media, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    # fixed noise: fresh random bytes now and then decode as one h263 frame, and the item is "done"
    (clips / "corrupt.mp4").write_bytes(random.Random(0).randbytes(50_000))
    (clips / "single_face.mp4").symlink_to(sample_media / "single_face.mp4")
    (clips / "no_face.mp4").symlink_to(sample_media / "no_face.mp4")
    out = tmp_path / "out"
    proc = _batch_cli([str(clips), "--out", str(out), "--executor", "process", "--cores", "2"])
    printed = proc.communicate(timeout=280)[0]
    assert proc.returncode == 1, printed
    assert "corrupt.mp4 failed: FrameSourceError: cannot open video file" in printed
    summary = json.loads((out / "summary.json").read_text())
    status = {s["name"]: s["status"] for s in summary["sessions"]}
    assert status == {"single_face.mp4": "done", "no_face.mp4": "done", "corrupt.mp4": "failed"}
    assert sorted(p.name for p in (out / "items").iterdir()) == ["no_face.mp4", "single_face.mp4"]
    reference = reference_hashes(find_items([str(clips / "single_face.mp4")]), tmp_path / "ref")
    assert batch_hashes(out)["single_face.mp4"] == reference["single_face.mp4"]
    manifest = json.loads((out / "dataset" / "manifest.json").read_text())
    assert {s["session"]: s["records"] for s in manifest["sessions"]} == {"no_face.mp4": 0, "single_face.mp4": 72}


@pytest.mark.timeout(600)
def test_a_two_node_ray_cluster_in_network_namespaces_runs_items_on_both_nodes(sample_media, tmp_path):
    """Ray's start-up is slow on 2 cores: one small batch (4 items of 52-95 frames)."""
    pytest.importorskip("ray", reason="Ray is not installed (requirements-batch.txt)")
    from humimic_experiments.batch_cluster import ClusterUnavailable, two_node_cluster

    specs = ["single_face.mp4", "single_face.mp4@10", "single_face.mp4@20", "no_face.mp4"]
    out = tmp_path / "out"
    try:
        with two_node_cluster() as cluster:
            ran = cluster.run([sys.executable, "-m", "humimic_experiments.batch", *specs, "--out", str(out),
                               "--address", cluster.address], cwd=ROOT, capture_output=True, text=True,
                              timeout=400)
            assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    except ClusterUnavailable as exc:
        pytest.skip(f"no two-node cluster here: {exc}")
    records = [json.loads((p / batch.ITEM_FILE).read_text()) for p in (out / "items").iterdir()]
    assert len(records) == 4
    assert {r["node_ip"] for r in records} == {cluster.head_ip, cluster.worker_ip}
    assert len({r["node"] for r in records}) == 2
    assert batch_hashes(out) == reference_hashes(find_items(specs), tmp_path / "ref")
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert cluster.head_ns not in namespaces and cluster.worker_ns not in namespaces  # cleaned up


def test_items_request_a_gpu_where_the_cluster_has_one(sample_media, tmp_path):
    """A local Ray instance that declares one GPU (this machine has none: onnxruntime's "auto" then
    runs perception on the CPU, so the bag is the single-process one)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (requirements-batch.txt)")
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        run_batch(["single_face.mp4@40"], tmp_path / "gpu", settings(dataset=False), "ray")
        run_batch(["single_face.mp4@40"], tmp_path / "cpu", settings(dataset=False, gpu=False), "ray")
    finally:
        ray.shutdown()
    item = "single_face.mp4_from_40"
    assert json.loads((tmp_path / "gpu" / "items" / item / batch.ITEM_FILE).read_text())["gpu_ids"] == ["0"]
    assert json.loads((tmp_path / "cpu" / "items" / item / batch.ITEM_FILE).read_text())["gpu_ids"] == []
    assert batch_hashes(tmp_path / "gpu") == batch_hashes(tmp_path / "cpu")


def test_a_recording_folder_is_re_run_and_exported(sample_media, tmp_path):
    """A recording (here a re-run with images) among the inputs: re-run from its camera frames,
    its dataset images read from it."""
    sessions = tmp_path / "sessions"
    rerun(sample_media / "single_face.mp4", sessions / "s01", write_images=True, start_frame=40)
    out = tmp_path / "out"
    summary = run_batch([str(sessions)], out, settings(), "serial")
    assert [(s["name"], s["status"], s["frames"], s["dataset_records"]) for s in summary["sessions"]] == \
        [("s01", "done", 32, 32)]
    records = (out / "dataset" / "dataset.jsonl").read_text().splitlines()
    assert len(records) == 32 and (out / "dataset" / json.loads(records[0])["image"]).is_file()


def test_the_dataset_gains_the_robot_face_twin(sample_media, tmp_path):
    """humimic-batch --robot-face on a short clip: every record of the merged dataset holds the
    face twin's render of the robot's joints for that frame and the text of what the robot-face
    perception reads on it."""
    from humimic_core.channels import CODES
    from humimic_experiments.describe import describe

    out = tmp_path / "out"
    summary = run_batch(["single_face.mp4@56"], out, settings(robot_face=True), "serial")
    assert [(s["status"], s["dataset_records"]) for s in summary["sessions"]] == [("done", 16)]
    records = [json.loads(line) for line in (out / "dataset" / "dataset.jsonl").read_text().splitlines()]
    assert len(records) == 16
    for record in records:
        robot = record["robot_face"]
        assert robot["source"] == "twin" and set(CODES) <= set(robot["action_units"])
        assert robot["text"] == describe(robot["action_units"], 5, 0.5, head=robot["head"])
        image = cv2.imread(str(out / "dataset" / robot["image"]))
        assert image.shape == (512, 512, 3) and robot["image"] != record["image"]


def test_the_settings_hash_follows_the_twin_face_with_robot_face(tmp_path):
    """With the robot's face in the dataset, the twin's face image is an input too: replacing it (same
    path) must redo the items; without robot_face it is no input."""
    video, face = tmp_path / "v.mp4", tmp_path / "face.png"
    video.write_bytes(b"one")
    face.write_bytes(b"a face")
    item, versions = batch.Item("v.mp4", str(video)), batch.versions()
    document = yaml.safe_load(settings().params)
    document["face_twin"]["ros__parameters"]["neutral_face"] = str(face)
    params = yaml.safe_dump(document)
    assert batch.twin_face_source(params) == face
    with_face = dataclasses.replace(settings(robot_face=True), params=params)
    without = dataclasses.replace(with_face, robot_face=False)
    first, plain = batch.settings_hash(item, with_face, versions), batch.settings_hash(item, without, versions)
    face.write_bytes(b"another face")
    assert batch.settings_hash(item, with_face, versions) != first
    assert batch.settings_hash(item, without, versions) == plain
