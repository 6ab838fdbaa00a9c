"""Macro ROC-AUC through the package's local `evaluate` metric module (`cgdmer_hf/metrics/roc_auc`, offline),
bootstrap confidence intervals, and `score`, the test-split result of one run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

METRIC_PATH = Path(__file__).resolve().parents[1] / "metrics" / "roc_auc"


def _auc_functions():
    from ..metrics.roc_auc.roc_auc import binary_roc_auc, multilabel_roc_auc, roc_curve

    return binary_roc_auc, multilabel_roc_auc, roc_curve


def load_roc_auc_metric(config_name: str = "multilabel"):
    """The package's ROC-AUC metric via `evaluate.load(<local path>)` (works offline)."""
    import evaluate

    return evaluate.load(str(METRIC_PATH), config_name)


def roc_auc(scores: np.ndarray, labels: np.ndarray, label_names: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Macro and per-class ROC-AUC of `(n, classes)` scores through the `evaluate` metric module."""
    scores, labels = _check_scores(scores, labels)
    metric = load_roc_auc_metric("multilabel")
    return metric.compute(predictions=scores.tolist(), references=labels.astype(np.int32).tolist(),
                          label_names=list(label_names) if label_names is not None else None)


def macro_roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Macro AUC over the classes with positives and negatives (the metric module's function, without
    `evaluate`'s bookkeeping: for model selection and bootstrap loops)."""
    _, multilabel, _ = _auc_functions()
    return multilabel(*_check_scores(scores, labels))["roc_auc"]


def bootstrap_ci(scores: np.ndarray, labels: np.ndarray, n_resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> Optional[tuple[float, float]]:
    """Percentile bootstrap confidence interval of the macro AUC over test records (resampled with replacement;
    each resample averages the classes it has positives and negatives for). `None` when `n_resamples` is 0."""
    if n_resamples <= 0:
        return None
    scores, labels = _check_scores(scores, labels)
    _, multilabel, _ = _auc_functions()
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        idx = rng.integers(0, len(scores), len(scores))
        value = multilabel(scores[idx], labels[idx])["roc_auc"]
        if not math.isnan(value):
            values.append(value)
    if not values:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _check_scores(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(f"scores and labels must both be (records, classes); got {scores.shape} and {labels.shape}")
    if len(scores) == 0:
        raise ValueError("No record to score")
    return scores, labels


def score(scores: np.ndarray, labels: np.ndarray, label_names: Sequence[str], bootstrap: int = 0,
          seed: int = 0) -> dict[str, Any]:
    """Test-split result: macro / per-class AUC through `evaluate`, excluded classes and a bootstrap CI."""
    result = roc_auc(scores, labels, label_names)
    ci = bootstrap_ci(scores, labels, bootstrap, seed)
    return {"roc_auc": result["roc_auc"], "ci95": list(ci) if ci else None, "per_class": result["per_class"],
            "excluded_classes": result["excluded_classes"], "num_test": int(len(labels))}


__all__ = ["METRIC_PATH", "bootstrap_ci", "load_roc_auc_metric", "macro_roc_auc", "roc_auc", "score"]
