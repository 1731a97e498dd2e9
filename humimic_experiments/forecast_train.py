"""Train the learned forecaster (humimic_retarget/forecast.py, method ``learned``) on re-run clips,
holding out clips BY PERSON: for each person, a model trained on everyone else (used to measure that
person's clips), then one model on everyone, exported to ONNX.

    python -m humimic_experiments.forecast_train --reruns out/eval/reruns --out out/forecast \
        [--horizon 0.1] [--kind ridge|mlp]

Samples: every frame with a face whose horizon ahead still has the face: inputs = the forecaster's
history features (HistoryFeatures), target = each channel's change over the horizon (the measured
channels interpolated at t + horizon). Cuts of a clip (``NAME_from_START``) are left out of training
(they repeat their clip). Writes <person>.onnx per held-out person, held_out.json (clip -> the model
that never saw its person), forecast.onnx (every person) and training.json (held-out errors).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import onnx
from tqdm import tqdm

from humimic_core.channels import PUBLISHED
from humimic_experiments.anticipation import ClipData, load_clip
from humimic_retarget.offline.fitting import Network, choose_ridge, fit_mlp, rmse
from humimic_retarget.forecast import DEPTH_KEY, HORIZON_KEY, LEARNED_DEPTH, HistoryFeatures, LinearForecaster, \
    feature_names, to_vector
from humimic_retarget.offline.onnx_export import network_to_onnx

#: Clips of the same person as another clip (the rest: one person each; ../shared/media/README.md).
SAME_PERSON = {"synthetic_winks_woman.mp4": "speech_browraise_frown_blinks_woman.mp4"}


def person(label: str) -> str:
    name = label.split("_from_")[0]
    return SAME_PERSON.get(name, name)


def samples(clip: ClipData, horizon: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, target changes, linear-forecast changes) of a clip's frames with a face ``horizon`` on."""
    t = clip.recording.stamps * 1e-9
    values = np.array([to_vector(c) if c else np.full(len(PUBLISHED), np.nan) for c in clip.channels])
    history, linear = HistoryFeatures(horizon), LinearForecaster(horizon)
    xs, ys, ls = [], [], []
    for i, channels in enumerate(clip.channels):
        history(t[i], channels)
        ahead = linear(t[i], channels)
        j = int(np.searchsorted(t, t[i] + horizon))
        if channels is None or j >= t.size or any(c is None for c in clip.channels[i:j + 1]):
            continue
        w = (t[i] + horizon - t[j - 1]) / (t[j] - t[j - 1])
        future = values[j - 1] * (1 - w) + values[j] * w
        now = values[i]
        xs.append(history.features.copy())
        ys.append(np.nan_to_num(future - now))
        ls.append(np.nan_to_num(to_vector(ahead) - now))
    return np.array(xs), np.array(ys), np.array(ls)


def fit(x: np.ndarray, y: np.ndarray, kind: str) -> Network:
    return fit_mlp(x, y, hidden=(32,)) if kind == "mlp" else choose_ridge(x, y)


def export(network: Network, path: Path, horizon: float, persons: Sequence[str]) -> None:
    model = network_to_onnx(network, feature_names(), PUBLISHED, {
        HORIZON_KEY: repr(horizon), DEPTH_KEY: str(LEARNED_DEPTH), "humimic.trained_on": json.dumps(list(persons))})
    onnx.save(model, str(path))


def train(reruns: Path, out: Path, horizon: float = 0.1, kind: str = "ridge", log=print) -> Dict[str, object]:
    clips = [load_clip(p) for p in sorted(reruns.iterdir()) if (p / "metrics.json").is_file()]
    data = {c.label: samples(c, horizon) for c in clips if "_from_" not in c.label}
    data = {k: v for k, v in data.items() if len(v[0])}
    persons = sorted({person(label) for label in data})
    if len(persons) < 2:
        raise ValueError(f"{reruns}: clips of at least two people are needed to hold one out, found {persons}")
    out.mkdir(parents=True, exist_ok=True)
    held_out, errors = {}, {}
    for who in tqdm(persons, desc="held-out people", unit="person"):
        train_labels = [k for k in data if person(k) != who]
        x = np.vstack([data[k][0] for k in train_labels])
        y = np.vstack([data[k][1] for k in train_labels])
        network = fit(x, y, kind)
        path = out / f"{Path(who).stem}.onnx"
        export(network, path, horizon, sorted({person(k) for k in train_labels}))
        for label in data:
            if person(label) == who:
                xt, yt, lt = data[label]
                held_out[label] = str(path.resolve())
                errors[label] = {"model": float(np.mean(rmse(yt, network.predict(xt)))),
                                 "linear": float(np.mean(rmse(yt, lt))), "no_change": float(np.mean(rmse(yt, 0 * yt)))}
    for label in [c.label for c in clips if "_from_" in c.label]:
        name = label.split("_from_")[0]
        if name in held_out:
            held_out[label] = held_out[name]
    x = np.vstack([v[0] for v in data.values()])
    y = np.vstack([v[1] for v in data.values()])
    export(fit(x, y, kind), out / "forecast.onnx", horizon, persons)
    pooled = {k: float(np.mean([e[k] for e in errors.values()])) for k in ("model", "linear", "no_change")}
    report = {"kind": kind, "horizon": horizon, "persons": persons, "samples": int(len(x)),
              "held_out_rmse": errors, "mean_held_out_rmse": pooled}
    (out / "held_out.json").write_text(json.dumps(held_out, indent=2))
    (out / "training.json").write_text(json.dumps(report, indent=2))
    log(f"{kind}, horizon {horizon:g} s, {len(x)} samples of {len(persons)} people; mean held-out RMSE of the "
        f"change (channel units): model {pooled['model']:.4f}, linear {pooled['linear']:.4f}, "
        f"no change {pooled['no_change']:.4f}; models in {out}")
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reruns", required=True, help="re-run recordings (humimic-eval's reruns/ folder)")
    parser.add_argument("--out", required=True, help="output folder for the models")
    parser.add_argument("--horizon", type=float, default=0.1, help="seconds ahead (default 0.1)")
    parser.add_argument("--kind", choices=("ridge", "mlp"), default="ridge")
    args = parser.parse_args(argv)
    try:
        train(Path(args.reruns), Path(args.out), args.horizon, args.kind)
    except (ValueError, FileNotFoundError) as exc:
        print(f"humimic-forecast-train: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
