"""Fitting a mapping from paired samples (numpy only): ridge regression and a small ReLU MLP.

Both come out as a Network of plain layers ``x @ W + b`` (ReLU between them) working on raw
units - input standardisation is folded into the weights - plus, for the MLP, a linear skip
``x @ W_skip`` added to its output: the MLP learns what the ridge part leaves, so it starts
from (and early stopping keeps it near) the linear fit. The ONNX export is MatMul/Add/Relu, and
numpy and ONNX Runtime compute the same thing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

Layer = Tuple[np.ndarray, np.ndarray]
#: Ridge strengths tried by choose_ridge (per sample, on standardised inputs).
RIDGE_ALPHAS = (1e-6, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 0.3, 1.0)


@dataclass
class Network:
    kind: str
    layers: List[Layer]
    skip: Optional[np.ndarray] = None  # [inputs, outputs], added to the last layer's output

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        y = x
        for i, (w, b) in enumerate(self.layers):
            y = y @ w + b
            if i < len(self.layers) - 1:
                y = np.maximum(y, 0.0)
        return y if self.skip is None else y + x @ self.skip


def _scale(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(std > 1e-12, std, 1.0)


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> Network:
    """Least squares with an L2 penalty ``alpha`` per sample on standardised inputs; intercept free."""
    mx, sx = _scale(x)
    xs = (x - mx) / sx
    my = y.mean(axis=0)
    w = np.linalg.solve(xs.T @ xs + alpha * len(x) * np.eye(x.shape[1]), xs.T @ (y - my))
    w = w / sx[:, None]
    return Network("ridge", [(w, my - mx @ w)])


def block_split(n: int, holdout: float, blocks: int = 20) -> Tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: the samples cut into ``blocks`` contiguous runs, every k-th run held out
    (neighbouring frames of a recording are near copies; a random split would flatter the error)."""
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout must be between 0 and 1, got {holdout}")
    run = np.minimum(np.arange(n) * blocks // max(n, 1), blocks - 1)
    every = max(2, round(1.0 / holdout))
    test = run % every == every - 1
    return np.flatnonzero(~test), np.flatnonzero(test)


def rmse(y: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Root mean square error per output column."""
    return np.sqrt(np.mean((np.asarray(y) - predicted) ** 2, axis=0))


def choose_ridge(x: np.ndarray, y: np.ndarray, alphas: Sequence[float] = RIDGE_ALPHAS) -> Network:
    """Ridge with the alpha of least error on a block split of the samples, refitted on all of them."""
    train, val = block_split(len(x), 0.2)
    scores = [float(np.mean(rmse(y[val], fit_ridge(x[train], y[train], a).predict(x[val])))) for a in alphas]
    return fit_ridge(x, y, alphas[int(np.argmin(scores))])


def fit_mlp(x: np.ndarray, y: np.ndarray, hidden: Sequence[int] = (32,), epochs: int = 400,
            learning_rate: float = 3e-3, weight_decay: float = 1e-4, batch: int = 128, seed: int = 0,
            patience: int = 60) -> Network:
    """A ReLU MLP on top of a ridge fit, trained with Adam on the ridge's residuals (mean squared
    error); the epoch of least error on a held-back block split (15 %) is kept."""
    rng = np.random.default_rng(seed)
    train, val = block_split(len(x), 0.15, blocks=60)
    linear = choose_ridge(x[train], y[train])
    mx, sx = _scale(x)
    residual = y - linear.predict(x)
    my, sy = _scale(residual)
    xs, ys = (x - mx) / sx, (residual - my) / sy
    sizes = [x.shape[1], *hidden, y.shape[1]]
    params = []
    for a, b in zip(sizes, sizes[1:]):
        params += [rng.normal(0.0, np.sqrt(2.0 / a), (a, b)), np.zeros(b)]
    params[-2] *= 0.1  # start near the ridge fit
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    best, best_loss, since, step = [p.copy() for p in params], np.inf, 0, 0
    net = Network("mlp", [])
    for _ in range(epochs):
        order = rng.permutation(train)
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            step += 1
            for i, g in enumerate(_gradients(params, xs[idx], ys[idx])):
                if i % 2 == 0:
                    g = g + weight_decay * params[i]
                m, v = moments[i]
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                params[i] -= learning_rate * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
        net.layers = list(zip(params[0::2], params[1::2]))
        loss = float(np.mean((net.predict(xs[val]) - ys[val]) ** 2))
        if loss < best_loss - 1e-6:
            best, best_loss, since = [p.copy() for p in params], loss, 0
        else:
            since += 1
            if since >= patience:
                break
    layers = [(w.copy(), b.copy()) for w, b in zip(best[0::2], best[1::2])]
    w0, b0 = layers[0]
    layers[0] = (w0 / sx[:, None], b0 - (mx / sx) @ w0)
    wn, bn = layers[-1]
    skip, bias = linear.layers[0]
    layers[-1] = (wn * sy, bn * sy + my + bias)
    return Network("mlp", layers, skip)


def _gradients(params: List[np.ndarray], x: np.ndarray, y: np.ndarray) -> List[np.ndarray]:
    """Gradients of the mean squared error for [W0, b0, W1, b1, ...]."""
    activations = [x]
    n_layers = len(params) // 2
    for i in range(n_layers):
        z = activations[-1] @ params[2 * i] + params[2 * i + 1]
        activations.append(np.maximum(z, 0.0) if i < n_layers - 1 else z)
    delta = 2.0 * (activations[-1] - y) / y.size
    grads: List[np.ndarray] = [np.empty(0)] * len(params)
    for i in reversed(range(n_layers)):
        grads[2 * i] = activations[i].T @ delta
        grads[2 * i + 1] = delta.sum(axis=0)
        if i:
            delta = (delta @ params[2 * i].T) * (activations[i] > 0)
    return grads
