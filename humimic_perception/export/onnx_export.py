"""Export MediaPipe's bundled face detector and face-landmark models to ONNX, idempotently.

Each model `<name>.onnx` gets a sidecar `<name>.json` with the source and converter sha256 and the
I/O contract. An export is skipped while the ONNX file exists and both hashes are unchanged.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import mediapipe
import onnx

from humimic_perception.export import onnx_mediapipe_ops, tflite_to_onnx
from humimic_perception.onnx_models import IMAGE_INPUT, MODELS, ModelSpec, models_dir

@dataclass(frozen=True)
class ExportResult:
    """What export_model did for one model."""

    path: Path
    exported: bool
    seconds: float
    source_sha256: str


def mediapipe_dir() -> Path:
    """The installed mediapipe package (holds the bundled .tflite models)."""
    return Path(mediapipe.__file__).parent


def _sha256(*blobs: bytes) -> str:
    """Hex sha256 of the concatenated blobs."""
    digest = hashlib.sha256()
    for blob in blobs:
        digest.update(blob)
    return digest.hexdigest()


def converter_sha256() -> str:
    """Hash of the converter code: a changed converter re-exports."""
    return _sha256(*(Path(m.__file__).read_bytes() for m in (tflite_to_onnx, onnx_mediapipe_ops)),
                   Path(__file__).read_bytes())


def _contract(spec: ModelSpec, model: onnx.ModelProto, source_sha: str, onnx_sha: str) -> dict:
    """The sidecar: provenance hashes and the I/O contract (shapes read from the exported model)."""
    def dims(value: onnx.ValueInfoProto) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    meanings = dict(spec.outputs.values())
    return {
        "model": spec.onnx_name,
        "source": f"mediapipe=={importlib.metadata.version('mediapipe')}:{spec.source}",
        "source_sha256": source_sha,
        "converter_sha256": converter_sha256(),
        "onnx_sha256": onnx_sha,
        "opset": tflite_to_onnx.OPSET,
        "inputs": [{"name": v.name, "shape": dims(v), "dtype": "float32", "layout": "NHWC", "channels": "RGB",
                    "range": list(spec.input_range)} for v in model.graph.input],
        "outputs": [{"name": v.name, "shape": dims(v), "dtype": "float32", "meaning": meanings[v.name]}
                    for v in model.graph.output],
        "notes": spec.notes,
    }


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file so readers never see a partial file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _up_to_date(target: Path, sidecar: Path, source_sha: str) -> bool:
    """The export exists, is intact and was made from this source by this converter."""
    if not (target.is_file() and sidecar.is_file()):
        return False
    try:
        recorded = json.loads(sidecar.read_text())
    except json.JSONDecodeError:
        return False
    return (recorded.get("source_sha256"), recorded.get("converter_sha256"), recorded.get("onnx_sha256")) == (
        source_sha, converter_sha256(), _sha256(target.read_bytes()))


def export_model(spec: ModelSpec, out_dir: Path, force: bool = False) -> ExportResult:
    """Convert one bundled model into out_dir unless an up-to-date export is there."""
    source = mediapipe_dir() / spec.source
    if not source.is_file():
        raise FileNotFoundError(f"{spec.onnx_name}: source model {source} is missing from the mediapipe wheel")
    source_sha = _sha256(source.read_bytes())
    target, sidecar = out_dir / spec.onnx_name, out_dir / spec.sidecar_name
    if not force and _up_to_date(target, sidecar, source_sha):
        return ExportResult(target, False, 0.0, source_sha)
    start = time.perf_counter()
    model = tflite_to_onnx.convert_tflite(source, IMAGE_INPUT, {k: v[0] for k, v in spec.outputs.items()})
    data = model.SerializeToString()
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(target, data)
    contract = _contract(spec, model, source_sha, _sha256(data))
    _write_atomic(sidecar, (json.dumps(contract, indent=2) + "\n").encode())
    return ExportResult(target, True, time.perf_counter() - start, source_sha)


def export_models(out_dir: Path | None = None, force: bool = False) -> list[ExportResult]:
    """Export the face detector and face-landmark models (default folder: models_dir())."""
    folder = Path(out_dir) if out_dir is not None else models_dir()
    return [export_model(spec, folder, force) for spec in MODELS]
