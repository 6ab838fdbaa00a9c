"""Prepared rows as model batches: the one ECG collator (`collate_ecgs`), a data set's model inputs in batches
(`ecg_batches`), the shape check of a data set against a model (`check_compatible`) and `eval_mode` to run them.

The ECG input names are the feature extractor's `model_input_names` (`ecg_values`, `lead_mask`,
`ecg_attention_mask`): the columns every reader writes and the keyword arguments every CG-DMER model takes.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from ..feature_extraction_cgdmer import CGDMERFeatureExtractor

ECG_INPUT_NAMES: tuple[str, ...] = tuple(CGDMERFeatureExtractor.model_input_names)
_VALUES, _LEADS, _SAMPLES = ECG_INPUT_NAMES


def collate_ecgs(examples: Sequence[Mapping[str, Any]], labels: bool = True) -> dict[str, torch.Tensor]:
    """Stack the ECG inputs of prepared rows (other columns are dropped): `ecg_values` (B, leads, samples)
    float32, `lead_mask` (B, leads) and `ecg_attention_mask` (B, samples) int64. ECGs shorter than the longest in
    the batch are zero-padded and marked as padding in `ecg_attention_mask`; a row without `lead_mask` has every
    lead, one without `ecg_attention_mask` every sample. With `labels` (default) and a `labels` column, the
    multi-hot `labels` (B, classes) float32 too (for `CGDMERForECGClassification` and the `Trainer`)."""
    if any(_VALUES not in example for example in examples):
        raise ValueError("Every example needs 'ecg_values' (leads x samples); prepare the data set with the "
                         "cgdmer_hf.data readers or the CGDMERFeatureExtractor")
    values = [torch.as_tensor(example[_VALUES], dtype=torch.float32) for example in examples]
    if any(v.dim() != 2 for v in values) or len({v.shape[0] for v in values}) != 1:
        raise ValueError("ecg_values must be (leads, samples) arrays with the same number of leads, got shapes "
                         f"{sorted({tuple(v.shape) for v in values})}")
    num_leads, length = values[0].shape[0], max(v.shape[1] for v in values)
    ecg = values[0].new_zeros(len(values), num_leads, length)
    sample_mask = torch.zeros(len(values), length, dtype=torch.long)
    lead_mask = torch.ones(len(values), num_leads, dtype=torch.long)
    for i, (example, value) in enumerate(zip(examples, values)):
        ecg[i, :, : value.shape[1]] = value
        given = example.get(_SAMPLES)
        sample_mask[i, : value.shape[1]] = 1 if given is None else torch.as_tensor(given, dtype=torch.long)
        if example.get(_LEADS) is not None:
            lead_mask[i] = torch.as_tensor(example[_LEADS], dtype=torch.long)
    batch = {_VALUES: ecg, _LEADS: lead_mask, _SAMPLES: sample_mask}
    if labels and "labels" in examples[0]:
        batch["labels"] = torch.as_tensor(np.stack([np.asarray(e["labels"], dtype=np.float32) for e in examples]))
    return batch


def ecg_batches(dataset, batch_size: int, device: Optional[Union[str, torch.device]] = None,
                dtype: Optional[torch.dtype] = None) -> Iterator[dict[str, torch.Tensor]]:
    """The model inputs of a prepared (map-style) data set in order, `batch_size` rows at a time, on `device`;
    `ecg_values` as `dtype` (the model's)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    for batch in dataset.select_columns(list(ECG_INPUT_NAMES)).with_format("torch").iter(batch_size=batch_size):
        inputs = {k: batch[k].to(device) for k in ECG_INPUT_NAMES}
        if dtype is not None:
            inputs[_VALUES] = inputs[_VALUES].to(dtype)
        yield inputs


def check_compatible(model, dataset) -> None:
    """A `ValueError` when the prepared ECGs do not have the shape the model takes."""
    cfg = model.config.ecg_config
    shape = tuple(dataset.features[_VALUES].shape)
    if shape != (cfg.num_leads, cfg.num_samples):
        raise ValueError(f"The data set holds ECGs of shape {shape}, the model takes ({cfg.num_leads}, "
                         f"{cfg.num_samples}) ({cfg.duration} s at {cfg.sampling_rate} Hz); prepare the data with "
                         "the model's feature extractor")


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`model` in eval mode without gradients inside the block; its training flag is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


__all__ = ["ECG_INPUT_NAMES", "check_compatible", "collate_ecgs", "ecg_batches", "eval_mode"]
