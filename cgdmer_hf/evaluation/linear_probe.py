"""Linear probes on frozen features: multi-label logistic regression (L-BFGS) with the weight decay chosen on the
validation split."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .metrics import macro_roc_auc

DEFAULT_WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@dataclass
class LinearProbe:
    """A multi-label logistic-regression head on standardised features, fitted by `fit_linear_probe`."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray  # (classes, dim)
    bias: np.ndarray  # (classes,)
    weight_decay: float
    validation_roc_auc: float
    validation_curve: dict[str, float] = field(default_factory=dict)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Independent class probabilities `(n, classes)`."""
        x = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(x @ self.weight.T + self.bias)))


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, weight_decay: float, init: Optional[tuple] = None,
                  max_iter: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    weight = torch.zeros(y.shape[1], x.shape[1], dtype=x.dtype) if init is None else init[0].clone()
    bias = torch.zeros(y.shape[1], dtype=x.dtype) if init is None else init[1].clone()
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-7, tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x @ weight.T + bias, y) + 0.5 * weight_decay * (weight ** 2).sum()
        loss.backward()
        return loss

    threads = torch.get_num_threads()
    if x.numel() < 2_000_000:  # small problems: extra threads only add synchronisation overhead
        torch.set_num_threads(1)
    try:
        with torch.enable_grad():
            optimizer.step(closure)
    finally:
        torch.set_num_threads(threads)
    return weight.detach(), bias.detach()


def fit_linear_probe(train_features: np.ndarray, train_labels: np.ndarray, val_features: np.ndarray,
                     val_labels: np.ndarray, weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
                     max_iter: int = 500) -> LinearProbe:
    """Fit logistic regression heads (L-BFGS, one per weight decay, strongest first and warm-started) on the
    training features and keep the weight decay with the best validation macro AUC (ties: the stronger decay).

    Receives training and validation data only: the test split cannot influence the choice.
    """
    train_x = np.asarray(train_features, dtype=np.float64)
    train_y = np.asarray(train_labels, dtype=np.float64)
    if train_x.ndim != 2 or len(train_x) != len(train_y) or len(train_x) == 0:
        raise ValueError(f"train_features {train_x.shape} and train_labels {train_y.shape} do not match")
    if not weight_decays:
        raise ValueError("weight_decays is empty")
    mean = train_x.mean(0)
    scale = train_x.std(0)
    scale = np.where(scale > 1e-8, scale, 1.0)
    x = torch.from_numpy((train_x - mean) / scale)
    y = torch.from_numpy(train_y)
    val_x = (np.asarray(val_features, dtype=np.float64) - mean) / scale
    best, curve, init = None, {}, None
    for wd in sorted(weight_decays, reverse=True):
        init = _fit_logistic(x, y, float(wd), init, max_iter)
        weight, bias = init[0].numpy(), init[1].numpy()
        auc = macro_roc_auc(val_x @ weight.T + bias, val_labels)
        curve[f"{wd:g}"] = auc
        if best is None or (not math.isnan(auc) and (math.isnan(best[0]) or auc > best[0] + 1e-12)):
            best = (auc, float(wd), weight.copy(), bias.copy())
    auc, wd, weight, bias = best
    return LinearProbe(mean, scale, weight, bias, wd, auc, curve)


__all__ = ["DEFAULT_WEIGHT_DECAYS", "LinearProbe", "fit_linear_probe"]
