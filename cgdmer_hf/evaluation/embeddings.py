"""ECG embeddings of prepared data sets: `compute_embeddings` (one model, one data set), `FeatureCache` (each data
set's features once per model, whichever label set, task or prompt mode asks), model loading and the embeddings
export of `cgdmer embed`."""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..data import ECG_INPUT_NAMES, check_compatible, ecg_batches, eval_mode

logger = logging.getLogger("cgdmer_hf.evaluation")

EMBEDDING_KINDS = ("representation", "shared")


def compute_embeddings(model, dataset, kind: str = "representation", batch_size: int = 64,
                       normalize: bool = False, device: Optional[Union[str, torch.device]] = None) -> np.ndarray:
    """ECG embeddings `(len(dataset), dim)` float32 of a prepared dataset, in dataset order.

    `kind="representation"`: pooled `[shared; specific]` features (`get_ecg_representation`, for probes);
    `kind="shared"`: the text-aligned embedding (`CGDMERModel.zero_shot_ecg_embeddings`), L2-normalised with
    `normalize=True`.
    """
    if kind not in EMBEDDING_KINDS:
        raise ValueError(f"kind must be one of {EMBEDDING_KINDS}, got {kind!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    core = model.base_model
    check_compatible(core, dataset)
    first = next(core.parameters())
    device = torch.device(device) if device is not None else first.device
    chunks = []
    with eval_mode(core):
        for inputs in ecg_batches(dataset, batch_size, device, first.dtype):
            if kind == "shared":
                out = core.zero_shot_ecg_embeddings(**inputs, normalize=normalize)
            else:
                out = core.get_ecg_representation(**inputs).float()
                out = F.normalize(out, dim=-1) if normalize else out
            chunks.append(out.cpu().numpy())
    dim = core.config.projection_dim if kind == "shared" else core.representation_size
    return np.concatenate(chunks) if chunks else np.zeros((0, dim), dtype=np.float32)


def ecg_fingerprint(dataset) -> str:
    """A digest of a prepared data set's model inputs (every row, in order): two data sets with the same ECGs (e.g.
    PTB-XL fold 10 read with two label sets) have the same fingerprint, whatever their other columns."""
    digest = hashlib.blake2b(digest_size=16)
    columns = dataset.select_columns(list(ECG_INPUT_NAMES)).with_format("numpy")
    for batch in columns.iter(batch_size=512):
        for name in ECG_INPUT_NAMES:
            array = np.ascontiguousarray(batch[name])
            digest.update(f"{name}{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


class FeatureCache:
    """ECG features computed once per model, data set content, kind and batch size, then reused: across the tasks
    and prompt modes of one `evaluate_model` call, and across calls that share the cache (`features=`), e.g. the
    label sets of one benchmark row, which all read PTB-XL fold 10. It keeps the models it has seen (and loads a
    model folder once), so that their features stay theirs."""

    def __init__(self):
        self._models: dict[Any, Any] = {}
        self._features: dict[tuple, np.ndarray] = {}
        self._fingerprints: dict[str, str] = {}

    def load_model(self, model: Any):
        """`load_model(model)`, once per model folder (by resolved path) or model object."""
        key = ("path", str(Path(model).resolve())) if isinstance(model, (str, os.PathLike)) else ("object", id(model))
        if key not in self._models:
            self._models[key] = load_model(model)
        return self._models[key]

    def random_init_like(self, model, seed: int = 0):
        """`random_init_like(model, seed)`, once per model and seed."""
        key = ("random_init", id(model), seed)
        if key not in self._models:
            self._models[("object", id(model))] = model
            self._models[key] = random_init_like(model, seed)
        return self._models[key]

    def _fingerprint(self, dataset) -> str:
        known = getattr(dataset, "_fingerprint", None)
        if known is None:
            return ecg_fingerprint(dataset)
        if known not in self._fingerprints:
            self._fingerprints[known] = ecg_fingerprint(dataset)
        return self._fingerprints[known]

    def get(self, model, dataset, kind: str, batch_size: int = 64, normalize: bool = False,
            name: str = "") -> np.ndarray:
        """`compute_embeddings(model, dataset, kind, batch_size, normalize)`, computed on the first request."""
        self._models.setdefault(("object", id(model)), model)
        key = (id(model), kind, bool(normalize), int(batch_size), self._fingerprint(dataset))
        if key not in self._features:
            start = time.perf_counter()
            self._features[key] = compute_embeddings(model, dataset, kind, batch_size, normalize=normalize)
            logger.info("%s %s features of %d ECGs: %.1f s", name or type(model).__name__, kind, len(dataset),
                        time.perf_counter() - start)
        return self._features[key]


def load_model(model: Any):
    """A `CGDMERModel` from a folder (or the dual encoder of a CG-DMER model object), in eval mode."""
    if isinstance(model, (str, os.PathLike)):
        from ..modeling_cgdmer import CGDMERModel

        path = Path(model)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"No model folder at {path} (config.json missing)")
        model = CGDMERModel.from_pretrained(str(path))
    return model.base_model.eval()


def random_init_like(model, seed: int = 0):
    """A randomly initialised `CGDMERModel` with the configuration of `model` (the probe baseline)."""
    from ..modeling_cgdmer import CGDMERModel

    config = copy.deepcopy(model.base_model.config)
    # random weights: the trained model's zero-shot centre and calibration do not apply (its report bank, texts
    # and counts, does: the random row is scored through it as the trained one is)
    config.zero_shot_centre, config.zero_shot_centre_offset, config.zero_shot_calibration = None, 0.0, None
    torch.manual_seed(seed)
    return CGDMERModel(config).eval()


def export_embeddings(model: Any, dataset, path: Union[str, os.PathLike], kind: str = "representation",
                      normalize: bool = False, batch_size: int = 64) -> Path:
    """Write the ECG embeddings of a prepared dataset to `.npy` (array; record ids in `<name>.record_ids.txt`)
    or `.parquet` (`record_id`, `fold`, `labels`, `embedding` columns)."""
    path = Path(path)
    if path.suffix not in (".npy", ".parquet"):
        raise ValueError(f"--output must end in .npy or .parquet, got {path.name!r}")
    embeddings = compute_embeddings(load_model(model), dataset, kind, batch_size, normalize)
    ids = [str(i) for i in column(dataset, "record_id")] if "record_id" in dataset.column_names else \
        [str(i) for i in range(len(dataset))]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, embeddings)
        path.with_suffix(".record_ids.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
    else:
        from datasets import Dataset

        columns: dict[str, Any] = {"record_id": ids, "embedding": embeddings.tolist()}
        for name in ("fold", "labels"):
            if name in dataset.column_names:
                columns[name] = column(dataset, name).tolist()
        Dataset.from_dict(columns).to_parquet(str(path))
    return path


def column(dataset, name: str) -> np.ndarray:
    """One column of a data set as a numpy array."""
    return np.asarray(dataset.select_columns([name]).with_format("numpy")[name])


__all__ = ["EMBEDDING_KINDS", "FeatureCache", "compute_embeddings", "ecg_fingerprint", "export_embeddings",
           "load_model", "random_init_like"]
