"""Calibration of zero-shot probabilities: reliability, expected calibration error, Brier score, and a Platt fit.

The zero-shot score of a class is `sigmoid(logit)`, `logit = exp(logit_scale) * cos(ecg, class) + logit_bias`
(SigLIP). Those are one-vs-rest probabilities only if they are calibrated; `fit_zero_shot_calibration` fits
`sigmoid(scale * logit + bias)` on validation logits: one pair per label text (`CGDMERModel.zero_shot_label_key`)
that has enough positives and negatives, and one shared pair fitted on every pair pooled, for all other labels.
`calibrate_zero_shot` computes those logits for a model from validation splits and prompt sets; the result is what
`config.zero_shot_calibration` stores and `CGDMERModel.zero_shot_scores` (hence the pipeline) applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from ..modeling_cgdmer import ZERO_SHOT_CENTRE_ECGS, CGDMERModel
from ..data import ecg_batches
from .embeddings import FeatureCache, column
from ..reports import clean_report_or_empty
from .zero_shot import align_prompts, label_keys, zero_shot_labels, zero_shot_logits

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
    """`(scale, bias)` minimising the log loss of `sigmoid(scale * logit + bias)` (L-BFGS, tiny L2 on scale-1),
    with `scale >= 0`: a calibration never reverses the model's ranking. A label the model ranks backwards on the
    validation split gets scale 0, a constant probability near its validation rate (the model knows nothing of it)."""
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

    result = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=[(0.0, None), (None, None)])
    return float(result.x[0]), float(result.x[1])


def fit_zero_shot_calibration(logits: Union[np.ndarray, Sequence[np.ndarray]],
                              labels: Union[np.ndarray, Sequence[np.ndarray]],
                              label_texts: Union[Sequence[Any], Sequence[Sequence[Any]]],
                              min_examples: int = MIN_CLASS_EXAMPLES) -> dict:
    """Fit `sigmoid(scale * logit + bias)` on validation logits `(records, labels)` and multi-hot labels, or on
    lists of such blocks (one per label set; their record counts may differ) with one `label_texts` list per block.

    The label texts (a label's description(s)) are keyed with `CGDMERModel.zero_shot_label_key`; the columns of one
    key are pooled. A key with at least `min_examples` positives and as many negatives gets its own pair; one shared
    pair is fitted on all pairs pooled. Returns the dict `config.zero_shot_calibration` stores.
    """
    blocks = (logits, labels, label_texts) if isinstance(logits, np.ndarray) else None
    blocks = [blocks] if blocks else list(zip(logits, labels, label_texts, strict=True))
    columns: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for z, y, texts in blocks:
        z, y = np.asarray(z, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if z.shape != y.shape or z.ndim != 2 or z.shape[1] != len(texts):
            raise ValueError(f"logits {z.shape} and labels {y.shape} must both be (records, {len(texts)} labels)")
        _check(np.zeros_like(z), y)
        for j, text in enumerate(texts):
            columns.setdefault(CGDMERModel.zero_shot_label_key(text), []).append((z[:, j], y[:, j]))
    pooled = {key: (np.concatenate([z for z, _ in cols]), np.concatenate([y for _, y in cols]))
              for key, cols in columns.items()}
    shared = _platt(np.concatenate([z for z, _ in pooled.values()]), np.concatenate([y for _, y in pooled.values()]))
    per_label = {key: list(_platt(z, y)) for key, (z, y) in pooled.items()
                 if min(int(y.sum()), int(len(y) - y.sum())) >= min_examples}
    return {"method": "platt", "scale": shared[0], "bias": shared[1], "per_label": per_label,
            "fitted_on": {"pairs": int(sum(len(y) for _, y in pooled.values())), "labels": sorted(pooled),
                          "min_examples": int(min_examples)}}


def apply_calibration(logits: np.ndarray, calibration: Mapping[str, Any],
                      label_texts: Optional[Sequence[Any]] = None) -> np.ndarray:
    """Calibrated probabilities of `(records, labels)` logits, as the model applies them
    (`CGDMERModel.apply_zero_shot_calibration`; `label_texts` pick per-label pairs, else the shared pair)."""
    z = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    return CGDMERModel.apply_zero_shot_calibration(z, dict(calibration), label_texts).numpy()


def calibration_summary(probs: np.ndarray, labels: np.ndarray, calibrated: Optional[np.ndarray] = None,
                        bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """ECE, Brier score and reliability curve of test probabilities, and of their calibrated twins when given
    (`ece_calibrated`, `brier_calibrated`, `reliability_calibrated`)."""
    out: dict[str, Any] = {}
    for suffix, p in (("", probs), ("_calibrated", calibrated)):
        if p is not None:
            out.update({f"ece{suffix}": expected_calibration_error(p, labels, bins), f"brier{suffix}":
                        brier_score(p, labels), f"reliability{suffix}": reliability(p, labels, bins)})
    return out


def calibrate_zero_shot(model, tokenizer, sets: Sequence[tuple[Any, Sequence[str], Mapping[str, Sequence[str]]]],
                        features: Optional[FeatureCache] = None, batch_size: int = 64,
                        min_examples: int = MIN_CLASS_EXAMPLES) -> dict:
    """The zero-shot calibration of `model` fitted on validation data only: `sets` holds `(validation split,
    label names, prompts)` triples (e.g. PTB-XL fold 9 of each label set, with the plain class names and with the
    prompts chosen on fold 9); prompts are cleaned as for scoring. ECG features come from `features` (computed
    once per split). Returns the dict for `config.zero_shot_calibration`."""
    features = features if features is not None else FeatureCache()
    core = model.base_model
    blocks = []
    for split, names, prompts in sets:
        aligned = align_prompts(prompts, names)
        ecg = features.get(core, split, "shared", batch_size, normalize=True, name="calibration")
        labels = column(split, "labels").reshape(len(split), -1).astype(np.float32)
        blocks.append((zero_shot_logits(core, ecg, zero_shot_labels(core, tokenizer, aligned)), labels,
                       label_keys(aligned)))
    if not blocks:
        raise ValueError("calibrate_zero_shot needs at least one (validation split, label names, prompts) set")
    return fit_zero_shot_calibration(*map(list, zip(*blocks, strict=True)), min_examples=min_examples)


def fit_zero_shot_centre(model, tokenizer, dataset, max_ecgs: int = ZERO_SHOT_CENTRE_ECGS, batch_size: int = 64
                         ) -> list[float]:
    """Fit `model`'s zero-shot centre (`CGDMERModel.fit_zero_shot_centre`) on a prepared training split: every
    report of `dataset` (cleaned with `clean_report`; repeated ones count as often as they occur, empty ones are
    left out) and the ECGs of its first `max_ecgs` rows. Never fit it on test data; fit any Platt calibration
    after it. Returns the centre."""
    core = model.base_model
    if "report" not in dataset.column_names:
        raise ValueError("fit_zero_shot_centre needs a 'report' column (prepare the data with its reports)")
    rows = dataset.select(range(min(int(max_ecgs), len(dataset))))
    return core.fit_zero_shot_centre([clean_report_or_empty(r) for r in dataset["report"]], tokenizer,
                                     ecg_batches(rows, batch_size, core.device, core.dtype), batch_size)


def reliability_figure(summary: Mapping[str, Any], path: Union[str, Path], title: Optional[str] = None) -> Path:
    """The reliability diagram of a `calibration_summary`: raw and, when measured, calibrated, with their ECE."""
    curves = {f"raw (ECE {summary['ece']:.3f})": summary["reliability"]}
    if "reliability_calibrated" in summary:
        curves[f"calibrated (ECE {summary['ece_calibrated']:.3f})"] = summary["reliability_calibrated"]
    return plot_reliability(curves, path, title)


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


__all__ = ["DEFAULT_BINS", "MIN_CLASS_EXAMPLES", "apply_calibration", "brier_score",
           "calibrate_zero_shot", "calibration_summary", "expected_calibration_error", "fit_zero_shot_calibration",
           "fit_zero_shot_centre", "plot_reliability", "reliability", "reliability_figure"]
