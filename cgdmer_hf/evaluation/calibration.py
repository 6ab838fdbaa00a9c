"""Calibration of zero-shot probabilities: reliability, expected calibration error, Brier score, and a Platt fit.

The zero-shot score of a class is `sigmoid(logit)`, `logit = exp(logit_scale) * cos(ecg, class) + logit_bias`
(SigLIP). Those are one-vs-rest probabilities only if they are calibrated; `fit_zero_shot_calibration` fits
`sigmoid(scale_c * logit + bias_c)` on a validation split (per class when it has enough positives and negatives,
else one shared pair), and `CGDMERModel` applies what is saved in `config.zero_shot_calibration`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

DEFAULT_BINS = 15
MIN_CLASS_EXAMPLES = 20  # positives and negatives a class needs for a calibration of its own


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if probs.shape != labels.shape:
        raise ValueError(f"probabilities {probs.shape} and labels {labels.shape} must have the same shape")
    if probs.size == 0:
        raise ValueError("no probabilities to calibrate")
    if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1:
        raise ValueError("probabilities must be finite and within [0, 1]")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1 (multi-hot)")
    return probs.ravel(), labels.ravel()


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = DEFAULT_BINS) -> dict[str, list[float]]:
    """Equal-width bins over [0, 1] of every (record, class) pair: mean probability, share of positives, count."""
    p, y = _check(probs, labels)
    index = np.minimum((p * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    safe = np.maximum(counts, 1)
    return {"mean_probability": (np.bincount(index, p, bins) / safe).tolist(),
            "positive_rate": (np.bincount(index, y, bins) / safe).tolist(),
            "count": counts.tolist()}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = DEFAULT_BINS) -> float:
    """Count-weighted mean |share of positives - mean probability| over equal-width bins (all pairs pooled)."""
    curve = reliability(probs, labels, bins)
    counts = np.asarray(curve["count"], dtype=np.float64)
    gaps = np.abs(np.asarray(curve["positive_rate"]) - np.asarray(curve["mean_probability"]))
    return float((gaps * counts).sum() / counts.sum())


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared error of the probabilities against the 0/1 labels (all pairs pooled)."""
    p, y = _check(probs, labels)
    return float(np.mean((p - y) ** 2))


def _platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """`(scale, bias)` minimising the log loss of `sigmoid(scale * logit + bias)` (L-BFGS, tiny L2 on scale-1)."""
    from scipy.optimize import minimize

    z, y = logits.astype(np.float64), labels.astype(np.float64)

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = params
        t = a * z + b
        # log(1 + exp(t)) - y * t, stably
        value = np.logaddexp(0.0, t) - y * t
        p = 0.5 * (1.0 + np.tanh(0.5 * t))
        g = p - y
        reg = 1e-4 * (a - 1.0) ** 2
        return value.mean() + reg, np.array([(g * z).mean() + 2e-4 * (a - 1.0), g.mean()])

    result = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])


def fit_zero_shot_calibration(logits: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                              min_class_examples: int = MIN_CLASS_EXAMPLES) -> dict:
    """Fit `sigmoid(scale * logit + bias)` on validation logits `(records, classes)` and multi-hot labels.

    A class with at least `min_class_examples` positives and as many negatives gets its own `(scale, bias)`; the
    others share one pair fitted on all pairs. Returns the dict `config.zero_shot_calibration` stores.
    """
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if logits.shape != labels.shape or logits.ndim != 2 or logits.shape[1] != len(class_names):
        raise ValueError(f"logits {logits.shape} and labels {labels.shape} must both be (records, "
                         f"{len(class_names)} classes)")
    _check(np.zeros_like(logits), labels)
    shared = _platt(logits.ravel(), labels.ravel())
    per_class = {}
    for j, name in enumerate(class_names):
        positives = int(labels[:, j].sum())
        if min(positives, len(labels) - positives) >= min_class_examples:
            per_class[name] = list(_platt(logits[:, j], labels[:, j]))
    return {"method": "platt", "scale": shared[0], "bias": shared[1], "per_class": per_class,
            "fitted_on": {"records": int(len(labels)), "classes": list(class_names)}}


def apply_calibration(logits: np.ndarray, calibration: dict, class_names: Sequence[str]) -> np.ndarray:
    """Calibrated probabilities of `(records, classes)` logits (numpy twin of the model's own application)."""
    logits = np.asarray(logits, dtype=np.float64)
    params = np.array([calibration["per_class"].get(n, [calibration["scale"], calibration["bias"]])
                       for n in class_names])
    return 1.0 / (1.0 + np.exp(-(logits * params[:, 0] + params[:, 1])))


def plot_reliability(curves: dict[str, dict[str, list[float]]], path: Union[str, Path],
                     title: Optional[str] = None) -> Path:
    """Reliability diagram (one line per curve, e.g. before and after calibration) with the diagonal; PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfectly calibrated")
    for name, curve in curves.items():
        keep = np.asarray(curve["count"]) > 0
        ax.plot(np.asarray(curve["mean_probability"])[keep], np.asarray(curve["positive_rate"])[keep],
                marker="o", markersize=3, label=name)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("share of positives")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
