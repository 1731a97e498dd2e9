"""Benchmark the face perception step: ONNX backend against the MediaPipe reference, same frames, one process.

Frames of a real clip are resized to 640x480 and fed to both backends in alternate blocks of 20
(each tracking on its own; each frame copied just before its step, so that it is in the cache as
after the node's message conversion), each wrapped in the full perception step
(humimic_perception.perception.FacePerception: landmarks, head pose, action units, gaze).
Printed per backend: median (and mean) milliseconds per stage (the ONNX backend's own stages:
detect, track = ROIs from landmarks, crop, landmarks = model and mesh), the whole step and frames
per second, on one CPU thread (process pinned to one core, onnxruntime with 1 intra-op thread) and
on all cores; then the ratio of the ONNX step to the reference's landmarks alone, per block of
frames (the issue's target: reference landmarks / ONNX step >= 1.2 on one thread, tracking mode);
``--runs N`` repeats the one-thread comparison with fresh backends and gives the median of the N
ratios. Last, the multi-face throughput of OnnxLandmarks.process_all (faces per second) on a 2x2
mosaic of clip frames (all faces in one landmark-model call), with the landmark model alone on
those faces' crops batched (one call) and looped (one call per face), and, when onnxruntime offers
CUDA, the same on the GPU. ``--models`` first times each face model alone on one thread (as
exported, float RGB input, against the live session: uint8 BGR input and the CPU rewrites) and
prints where the live session's time goes per operator type (onnxruntime's profiler).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List

import cv2
import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from humimic_core.paths import media_dir  # noqa: E402
from humimic_perception.intrinsics import NOMINAL_HFOV_DEG, Intrinsics  # noqa: E402
from humimic_perception.landmarks import make_backend  # noqa: E402
from humimic_perception.landmarks_onnx import roi_from_face  # noqa: E402
from humimic_perception.onnx_cpu_rewrites import optimize_for_cpu  # noqa: E402
from humimic_perception.onnx_image_input import uint8_bgr_input  # noqa: E402
from humimic_perception.onnx_models import FACE_DETECTOR, FACE_LANDMARKS, ModelSpec, models_dir  # noqa: E402
from humimic_perception.onnx_session import CUDA, create_session, session_options  # noqa: E402
from humimic_perception.perception import FacePerception  # noqa: E402

SIZE = (640, 480)
WARMUP = 10
#: Frames each backend processes in turn: blocks rather than single frames, so that one backend's
#: idle threads never share the pinned core with the other's work, yet both see the same load.
BLOCK = 20
MOSAIC = 2  # multi-face frame: MOSAIC x MOSAIC frames of the clip, one face each


def read_frames(path: Path, limit: int) -> List[np.ndarray]:
    """Up to `limit` frames of a clip, resized to 640x480."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA))
    capture.release()
    if len(frames) <= WARMUP:
        raise SystemExit(f"cannot read more than {WARMUP} frames from {path}")
    return frames


def run(frames: List[np.ndarray], threads: int) -> Dict[str, Dict[str, List[float]]]:
    """Per-frame ms of every stage and of the whole step, for both backends."""
    intrinsics = Intrinsics.from_fov(*SIZE, NOMINAL_HFOV_DEG)
    pipelines = {"onnx": FacePerception(make_backend("onnx", threads=threads, device="cpu")),
                 "mediapipe": FacePerception(make_backend("mediapipe"))}
    samples: Dict[str, Dict[str, List[float]]] = {name: defaultdict(list) for name in pipelines}
    for block in range(0, len(frames), BLOCK):
        for name, pipeline in pipelines.items():
            for index in range(block, min(block + BLOCK, len(frames))):
                frame = frames[index].copy()  # fresh in the cache, as after the node's message conversion
                start = time.perf_counter()
                result = pipeline.process(frame, intrinsics)
                step = (time.perf_counter() - start) * 1e3
                if index < WARMUP:
                    continue
                stages = samples[name]
                stages["step"].append(step)
                stages["face found"].append(float(result.landmarks is not None))
                for stage, ms in result.timings_ms.items():
                    stages[stage].append(ms)
                for stage, ms in getattr(pipeline.backend, "timings_ms", {}).items():
                    stages["  " + stage].append(ms)
    samples["onnx"]["detector runs"] = [float(pipelines["onnx"].backend.detector.runs)]
    for pipeline in pipelines.values():
        pipeline.close()
    return samples


def block_medians(values: List[float]) -> List[float]:
    """Median of each block of frames (the first block without its warm-up frames)."""
    first = BLOCK - WARMUP
    blocks = [values[:first]] + [values[i:i + BLOCK] for i in range(first, len(values), BLOCK)]
    return [float(np.median(block)) for block in blocks if block]


def report(title: str, samples: Dict[str, Dict[str, List[float]]]) -> float:
    """Print one table (median ms per frame, mean in brackets) and the ratio of the reference's
    landmarks to the ONNX step per block of frames (both measured close in time, so that the load
    of other processes cancels out); returns the median of those block ratios."""
    frames = len(samples["onnx"]["step"])
    print(f"\n{title}: {frames} frames after {WARMUP} warm-up; median ms per frame (mean)")
    keys = list(dict.fromkeys(k for stages in samples.values() for k in stages))
    print(f"  {'stage':<16}" + "".join(f"{name:>20}" for name in samples))
    for key in keys:
        cells = []
        for stages in samples.values():
            values = stages.get(key)
            if not values:
                cells.append(f"{'':>20}")
            elif key in ("detector runs", "face found"):
                cells.append(f"{sum(values) if key == 'detector runs' else np.mean(values):>20.3g}")
            else:
                cells.append(f"{np.median(values):>11.3f} ({np.mean(values):6.3f})")
        print(f"  {key:<16}" + "".join(cells))
    steps = {name: np.median(stages["step"]) for name, stages in samples.items()}
    print(f"  {'fps':<16}" + "".join(f"{1e3 / step:>20.0f}" for step in steps.values()))
    ratios = np.divide(block_medians(samples["mediapipe"]["landmarks"]), block_medians(samples["onnx"]["step"]))
    speedup = float(np.median(ratios))
    print(f"  ONNX step / mediapipe step: {steps['onnx'] / steps['mediapipe']:.2f}; mediapipe landmarks / "
          f"ONNX step: {speedup:.2f} (median of {len(ratios)} blocks, range {ratios.min():.2f}-{ratios.max():.2f}; "
          "target >= 1.2)")
    return speedup


def mosaic(frames: List[np.ndarray]) -> np.ndarray:
    """A MOSAIC x MOSAIC tiling of frames spread over the clip: one face per tile."""
    step = len(frames) // (MOSAIC * MOSAIC)
    tiles = [frames[i * step] for i in range(MOSAIC * MOSAIC)]
    return np.vstack([np.hstack(tiles[row * MOSAIC:(row + 1) * MOSAIC]) for row in range(MOSAIC)])


def multi_face(image: np.ndarray, device: str, threads: int, repeats: int) -> None:
    """Faces per second of OnnxLandmarks.process_all on a multi-face frame, tracking."""
    backend = make_backend("onnx", max_faces=MOSAIC * MOSAIC, device=device, threads=threads)
    found = backend.process_all(image)
    faces = len(found)
    seconds = timed(lambda: backend.process_all(image), repeats)
    print(f"  multi-face {image.shape[1]}x{image.shape[0]} ({device}, {threads} threads): "
          f"{faces} faces, {seconds * 1e3:.2f} ms per frame, {faces / seconds:.0f} faces/s")
    size = backend.crop_size
    crops = np.stack([cv2.warpAffine(image, roi_from_face(face).to_image(size), (size, size),
                                     flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
                      for face in found])
    name = backend.session.get_inputs()[0].name
    batched = timed(lambda: backend.session.run(None, {name: crops}), repeats)
    looped = timed(lambda: [backend.session.run(None, {name: crops[k:k + 1]}) for k in range(faces)], repeats)
    print(f"    landmark model alone on the {faces} crops: batched {batched * 1e3:.2f} ms ({faces / batched:.0f} "
          f"faces/s), looped {looped * 1e3:.2f} ms ({faces / looped:.0f} faces/s)")
    backend.close()


def timed(call: Callable[[], object], repeats: int) -> float:
    """Mean seconds per call, after one warm-up call."""
    call()
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


def op_profile(spec: ModelSpec, image: np.ndarray, repeats: int) -> Dict[str, List[float]]:
    """Per operator type: [microseconds per call of the model, nodes] of the live CPU session."""
    options = session_options(1)
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as folder:
        options.profile_file_prefix = str(Path(folder) / "profile")
        model = optimize_for_cpu(uint8_bgr_input(onnx.load(str(models_dir() / spec.onnx_name)), spec.input_range))
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        for _ in range(repeats):
            session.run(None, {"image": image})
        events = json.loads(Path(session.end_profiling()).read_text())
    ops: Dict[str, List[float]] = defaultdict(lambda: [0.0, 0.0])
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            ops[event["args"]["op_name"]][0] += event["dur"] / repeats
            ops[event["args"]["op_name"]][1] += 1 / repeats
    return ops


def models_alone(frame: np.ndarray, repeats: int) -> None:
    """Each face model alone, one thread: as exported against the live session (alternating), then the
    live session's kernel time per operator type."""
    backend = make_backend("onnx", threads=1, device="cpu")
    face = backend.process_all(frame)[0]
    backend.close()
    crop = cv2.warpAffine(frame, roi_from_face(face).to_image(192), (192, 192),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    print("\neach model alone, one thread (ms per call, median of 15 alternating rounds)")
    for spec, image in ((FACE_DETECTOR, cv2.resize(frame, (128, 128))), (FACE_LANDMARKS, crop)):
        path = models_dir() / spec.onnx_name
        low, high = spec.input_range
        rgb = image[None, :, :, ::-1].astype(np.float32) * np.float32((high - low) / 255) + np.float32(low)
        exported = ort.InferenceSession(str(path), session_options(1), providers=["CPUExecutionProvider"])
        live = create_session(path, "cpu", 1, spec.input_range)
        rounds = np.array([(timed(lambda: exported.run(None, {"image": rgb}), repeats),
                            timed(lambda: live.run(None, {"image": image[None]}), repeats)) for _ in range(15)]) * 1e3
        before, after = np.median(rounds, axis=0)
        print(f"  {spec.onnx_name}: as exported {before:.3f}, live session {after:.3f} "
              f"({np.median(rounds[:, 0] / rounds[:, 1]):.2f}x)")
        ops = op_profile(spec, image[None], repeats)
        total = sum(us for us, _ in ops.values())
        print(f"    kernel time per operator type (profiler on, {total:.0f} us per call, "
              f"{sum(n for _, n in ops.values()):.0f} operators; small operators read high):")
        for op, (us, nodes) in sorted(ops.items(), key=lambda item: -item[1][0])[:8]:
            print(f"      {op:<16}{us:8.0f} us {100 * us / total:5.1f}% {nodes:5.0f} nodes")


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=media_dir() / "WolfgangLanger_Pexels.mp4")
    parser.add_argument("--frames", type=int, default=460, help="frames read from the clip")
    parser.add_argument("--runs", type=int, default=1, help="one-thread comparisons (the result is their median)")
    parser.add_argument("--models", action="store_true", help="also time and profile each model alone first")
    args = parser.parse_args(argv)
    frames = read_frames(args.clip, args.frames)
    faces = mosaic(frames)
    print(f"{args.clip.name}: {len(frames)} frames at {SIZE[0]}x{SIZE[1]}; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}; onnxruntime {ort.__version__} {ort.get_available_providers()}")
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})  # backends built from here on keep their threads on this core
    if args.models:
        models_alone(frames[WARMUP], 20)
    speedups = [report(f"one CPU thread (process pinned to one core), run {index + 1} of {args.runs}",
                       run(frames, threads=1)) for index in range(max(1, args.runs))]
    multi_face(faces, "cpu", 1, 30)
    os.sched_setaffinity(0, cpus)
    report(f"all cores ({len(cpus)} onnxruntime threads)", run(frames, threads=len(cpus)))
    multi_face(faces, "cpu", len(cpus), 30)
    if CUDA in ort.get_available_providers():
        multi_face(faces, "cuda", 0, 200)
    print(f"\nresult: the ONNX perception step is {np.median(speedups):.2f}x as fast as the reference's landmarks "
          f"alone (one thread, tracking mode; target 1.2x; median of {len(speedups)} run(s): "
          f"{', '.join(f'{s:.2f}' for s in speedups)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
