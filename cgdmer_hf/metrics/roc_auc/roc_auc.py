"""ROC-AUC for binary and multi-label classification, as a local `evaluate` metric (loads offline).

    >>> import evaluate
    >>> metric = evaluate.load("path/to/cgdmer_hf/metrics/roc_auc")  # the "multilabel" config by default
    >>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]], references=[[1, 0], [0, 1], [0, 1]],
    ...                label_names=["NORM", "MI"])

The AUC is the Mann-Whitney U statistic: `(sum of the ranks of the positives - n_pos (n_pos + 1) / 2) /
(n_pos n_neg)`, with tied scores given their average rank (scipy's `rankdata`), which equals the trapezoidal
area under the ROC curve. A class with no positive or no negative reference has no AUC: it is reported in
`excluded_classes` and left out of the macro average.
"""

from __future__ import annotations

from typing import Optional, Sequence

import datasets
import evaluate
import numpy as np
from scipy.stats import rankdata

_DESCRIPTION = """Area under the ROC curve. `multilabel` (default): macro average over classes of the per-class
AUCs, classes without both positives and negatives left out and listed; `binary`: one score column."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: scores, `(n_samples,)` (binary) or `(n_samples, n_classes)` (multilabel); higher = more likely.
    references: 0/1 labels of the same shape.
    label_names (`list[str]`, *optional*): class names for `per_class` and `excluded_classes` (default: indices).
Returns:
    roc_auc (`float`): the AUC (binary) or the macro-averaged AUC over the classes that have both positives and
        negatives (`nan` if none has).
    per_class (`dict[str, float | None]`, multilabel): the AUC of each class, `None` where it is undefined.
    excluded_classes (`list[str]`, multilabel): classes left out of the macro average, with no positive (or no
        negative) reference.
    num_classes_averaged (`int`, multilabel): the number of classes in the macro average.
"""

_CITATION = """@article{hanley1982meaning, title={The meaning and use of the area under a receiver operating
characteristic (ROC) curve}, author={Hanley, James A and McNeil, Barbara J}, journal={Radiology}, volume={143},
number={1}, pages={29--36}, year={1982}}"""


def binary_roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUC of one score column against 0/1 labels (ties count one half); `nan` without positives or negatives."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel() > 0.5
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in length: {scores.shape[0]} vs {labels.shape[0]}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def multilabel_roc_auc(scores: np.ndarray, labels: np.ndarray, label_names: Optional[Sequence[str]] = None
                       ) -> dict:
    """Macro and per-class AUC of `(n_samples, n_classes)` scores; see the module docstring."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or labels.shape != scores.shape:
        raise ValueError(f"predictions and references must both be (n_samples, n_classes); got {scores.shape} "
                         f"and {labels.shape}")
    names = [str(i) for i in range(scores.shape[1])] if label_names is None else [str(n) for n in label_names]
    if len(names) != scores.shape[1]:
        raise ValueError(f"{len(names)} label_names for {scores.shape[1]} classes")
    per_class = {name: binary_roc_auc(scores[:, j], labels[:, j]) for j, name in enumerate(names)}
    defined = [v for v in per_class.values() if not np.isnan(v)]
    return {
        "roc_auc": float(np.mean(defined)) if defined else float("nan"),
        "per_class": {k: (None if np.isnan(v) else v) for k, v in per_class.items()},
        "excluded_classes": [k for k, v in per_class.items() if np.isnan(v)],
        "num_classes_averaged": len(defined),
    }


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates) at every distinct threshold, from (0, 0) to (1, 1)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel() > 0.5
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("a ROC curve needs both positive and negative labels")
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), labels.size - 1]
    tps = np.cumsum(labels)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    return np.r_[0.0, fps / n_neg], np.r_[0.0, tps / n_pos]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RocAuc(evaluate.Metric):
    """ROC-AUC (Mann-Whitney U), binary or multi-label with a macro average over the classes present."""

    def _info(self) -> evaluate.MetricInfo:
        if self.config_name == "binary":
            features = datasets.Features({"predictions": datasets.Value("float64"),
                                          "references": datasets.Value("int32")})
        elif self.config_name in ("default", "multilabel"):
            features = datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64")),
                                          "references": datasets.Sequence(datasets.Value("int32"))})
        else:
            raise ValueError(f"Unknown roc_auc config {self.config_name!r}; use 'multilabel' or 'binary'")
        return evaluate.MetricInfo(description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
                                   features=features)

    def _compute(self, predictions=None, references=None, label_names: Optional[Sequence[str]] = None) -> dict:
        if self.config_name == "binary":
            return {"roc_auc": binary_roc_auc(np.asarray(predictions), np.asarray(references))}
        return multilabel_roc_auc(np.asarray(predictions), np.asarray(references), label_names)
