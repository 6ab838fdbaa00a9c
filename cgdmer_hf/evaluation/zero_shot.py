"""Zero-shot classification in the harness: the model's own zero-shot functions (`CGDMERModel.
zero_shot_label_embeddings`, `zero_shot_scores`, as the pipeline uses them) on prepared data, and the per-class
prompt choice on the validation split (`tune_prompts`)."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch

from ..data import eval_mode
from ..prompts import align_prompts, clean_prompts
from .metrics import _auc_functions


def label_embeddings(model, tokenizer, prompts: Mapping[str, Sequence[str]], use_report_bank: bool = True
                     ) -> torch.Tensor:
    """`(classes, projection_dim)` normalised prompt-ensemble embeddings of the prompts (cleaned with
    `clean_report` like the pretraining reports), as the zero-shot pipeline computes them (through the model's
    report bank when it has one and `use_report_bank`)."""
    core = model.base_model
    with eval_mode(core):
        return core.zero_shot_label_embeddings(clean_prompts(prompts), tokenizer, use_report_bank=use_report_bank)


def label_keys(prompts: Mapping[str, Sequence[str]]) -> list[str]:
    """The calibration key (`CGDMERModel.zero_shot_label_key`) of each label's cleaned descriptions, in order."""
    from ..modeling_cgdmer import CGDMERModel

    return [CGDMERModel.zero_shot_label_key(descriptions) for _, descriptions in clean_prompts(prompts)]


def _pairwise(model, method: str, ecg_embeddings: np.ndarray, text_embeddings: torch.Tensor, **kwargs) -> np.ndarray:
    ecg = torch.as_tensor(ecg_embeddings, dtype=torch.float32, device=text_embeddings.device)
    with torch.no_grad():
        return getattr(model.base_model, method)(ecg, text_embeddings.float(), **kwargs).cpu().numpy()


def zero_shot_scores(model, ecg_embeddings: np.ndarray, text_embeddings: torch.Tensor) -> np.ndarray:
    """`sigmoid(model.zero_shot_logits(ecg, text))` (centred when the model has a centre) for normalised ECG and
    label embeddings: `(n, classes)`, uncalibrated (never the model's stored calibration: the harness measures and
    fits calibrations itself)."""
    return _pairwise(model, "zero_shot_scores", ecg_embeddings, text_embeddings, calibrated=False)


def zero_shot_logits(model, ecg_embeddings: np.ndarray, text_embeddings: torch.Tensor) -> np.ndarray:
    """`model.zero_shot_logits(ecg, text)` (float32; centred when the model has a centre) for normalised ECG and
    label embeddings: `(n, classes)`."""
    return _pairwise(model, "zero_shot_logits", ecg_embeddings, text_embeddings)


def tune_prompts(model, tokenizer, prompts: Mapping[str, Sequence[str]], val_embeddings: np.ndarray,
                 val_labels: np.ndarray) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Choose, per class, the whole ensemble or one of its descriptions by validation AUC (ties keep the
    ensemble). Receives validation data only. Returns the tuned prompts and what was chosen per class."""
    binary, _, _ = _auc_functions()
    tuned, chosen = {}, {}
    for j, (label, descriptions) in enumerate(prompts.items()):
        candidates = [list(descriptions)] + ([[d] for d in descriptions] if len(descriptions) > 1 else [])
        texts = label_embeddings(model, tokenizer, {f"{i}": c for i, c in enumerate(candidates)})
        scores = zero_shot_scores(model, val_embeddings, texts)
        aucs = [binary(scores[:, i], val_labels[:, j]) for i in range(len(candidates))]
        best = 0 if all(math.isnan(a) for a in aucs) else int(np.nanargmax(aucs))
        tuned[label] = candidates[best]
        chosen[label] = "ensemble" if best == 0 else candidates[best][0]
    return tuned, chosen


__all__ = ["align_prompts", "label_embeddings", "label_keys", "tune_prompts", "zero_shot_logits", "zero_shot_scores"]
