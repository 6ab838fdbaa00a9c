"""Zero-shot classification in the harness: the model's own zero-shot functions (`CGDMERModel.zero_shot_labels`,
`zero_shot_scores`, as the pipeline uses them) on prepared data, and the per-class
prompt choice on the validation split (`tune_prompts`)."""

from __future__ import annotations

import math
from typing import Mapping, Sequence, Union

import numpy as np
import torch

from ..data import eval_mode
from ..modeling_cgdmer import ZeroShotLabels
from ..prompts import align_prompts, clean_prompts
from .metrics import _auc_functions

Labels = Union[ZeroShotLabels, torch.Tensor]  # `zero_shot_labels`, or normalised label embeddings


def zero_shot_labels(model, tokenizer, prompts: Mapping[str, Sequence[str]], use_report_bank: bool = True
                     ) -> ZeroShotLabels:
    """The labels of the prompts (cleaned with `clean_report` like the pretraining reports) as the zero-shot
    pipeline scores them (`CGDMERModel.zero_shot_labels`: normalised prompt-ensemble embeddings, and report bank
    weights when the model has a bank and `use_report_bank`)."""
    core = model.base_model
    with eval_mode(core):
        return core.zero_shot_labels(clean_prompts(prompts), tokenizer, use_report_bank=use_report_bank)


def label_keys(prompts: Mapping[str, Sequence[str]]) -> list[str]:
    """The calibration key (`CGDMERModel.zero_shot_label_key`) of each label's cleaned descriptions, in order."""
    from ..modeling_cgdmer import CGDMERModel

    return [CGDMERModel.zero_shot_label_key(descriptions) for _, descriptions in clean_prompts(prompts)]


def _pairwise(model, method: str, ecg_embeddings: np.ndarray, labels: Labels, **kwargs) -> np.ndarray:
    device = labels.device if isinstance(labels, torch.Tensor) else labels.embeds.device
    ecg = torch.as_tensor(ecg_embeddings, dtype=torch.float32, device=device)
    with torch.no_grad():
        return getattr(model.base_model, method)(ecg, labels, **kwargs).cpu().numpy()


def zero_shot_scores(model, ecg_embeddings: np.ndarray, labels: Labels) -> np.ndarray:
    """`sigmoid(model.zero_shot_logits(ecg, labels))` for normalised ECG embeddings and labels (`zero_shot_labels`,
    or normalised label embeddings): `(n, classes)`, uncalibrated (never the model's stored calibration: the
    harness measures and fits calibrations itself)."""
    return _pairwise(model, "zero_shot_scores", ecg_embeddings, labels, calibrated=False)


def zero_shot_logits(model, ecg_embeddings: np.ndarray, labels: Labels) -> np.ndarray:
    """`model.zero_shot_logits(ecg, labels)` (float32) for normalised ECG embeddings and labels
    (`zero_shot_labels`, or normalised label embeddings): `(n, classes)`."""
    return _pairwise(model, "zero_shot_logits", ecg_embeddings, labels)


def tune_prompts(model, tokenizer, prompts: Mapping[str, Sequence[str]], val_embeddings: np.ndarray,
                 val_labels: np.ndarray) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Choose, per class, the whole ensemble or one of its descriptions by validation AUC (ties keep the
    ensemble). Receives validation data only. Returns the tuned prompts and what was chosen per class."""
    binary, _, _ = _auc_functions()
    tuned, chosen = {}, {}
    for j, (label, descriptions) in enumerate(prompts.items()):
        candidates = [list(descriptions)] + ([[d] for d in descriptions] if len(descriptions) > 1 else [])
        texts = zero_shot_labels(model, tokenizer, {f"{i}": c for i, c in enumerate(candidates)})
        scores = zero_shot_scores(model, val_embeddings, texts)
        aucs = [binary(scores[:, i], val_labels[:, j]) for i in range(len(candidates))]
        best = 0 if all(math.isnan(a) for a in aucs) else int(np.nanargmax(aucs))
        tuned[label] = candidates[best]
        chosen[label] = "ensemble" if best == 0 else candidates[best][0]
    return tuned, chosen


__all__ = ["align_prompts", "label_keys", "tune_prompts", "zero_shot_labels", "zero_shot_logits", "zero_shot_scores"]
