"""Evaluation harness: zero-shot classification, linear probing and fine-tuning, scored by macro ROC-AUC.

The protocol is MERL's / CG-DMER's (DESIGN.md section 5): PTB-XL strat_fold 1-8 train, 9 validation, 10 test;
linear probes on frozen `[shared; specific]` features at 1 %, 10 % and 100 % of the training labels with fixed
seeds; every choice (weight decay, fine-tuning checkpoint, prompts) is made on the validation split. The test
split is read once, at the end, by `score`; no function that selects anything receives it. A randomly
initialised encoder of the same configuration goes through the same probe in every table.

ROC-AUCs are computed by the local `evaluate` metric module `cgdmer_hf/metrics/roc_auc` (offline), macro-averaged
over the classes that have positives (and negatives) in the test split; the others are listed as excluded.

    >>> from cgdmer_hf.evaluation import evaluate_model
    >>> results = evaluate_model("path/to/model", "path/to/prepared_dataset", output_dir="eval/")
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger("cgdmer_hf.evaluation")

METRIC_PATH = Path(__file__).resolve().parent / "metrics" / "roc_auc"
TASKS = ("zero-shot", "linear-probe", "finetune")
DEFAULT_FRACTIONS = (0.01, 0.1, 1.0)
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
EMBEDDING_KINDS = ("representation", "shared")
ECG_COLUMNS = ("ecg_values", "lead_mask", "ecg_attention_mask")
SPLIT_NAMES = ("train", "validation", "test")


# ----------------------------------------------------------------------------------------------------------
# Metric
# ----------------------------------------------------------------------------------------------------------
def _auc_functions():
    from .metrics.roc_auc.roc_auc import binary_roc_auc, multilabel_roc_auc, roc_curve

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


# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------
@dataclass
class EvaluationData:
    """Train / validation / test splits of a labelled data set, with its label names and label set."""

    splits: Any  # datasets.DatasetDict
    label_names: list[str]
    label_set: Optional[str]
    source: str = ""

    def split(self, name: str):
        if name not in self.splits:
            raise ValueError(f"{self.source or 'The data set'} has no {name!r} split (splits: {list(self.splits)})")
        if len(self.splits[name]) == 0:
            raise ValueError(f"The {name!r} split of {self.source or 'the data set'} is empty")
        return self.splits[name]

    def labels(self, name: str) -> np.ndarray:
        return _column(self.split(name), "labels").reshape(len(self.split(name)), -1).astype(np.float32)


def _column(dataset, name: str) -> np.ndarray:
    return np.asarray(dataset.select_columns([name]).with_format("numpy")[name])


def as_evaluation_data(data: Any, label_set: Optional[str] = None, feature_extractor=None,
                       cache_dir: Optional[str] = None) -> EvaluationData:
    """Evaluation splits from a `DatasetDict`, a `Dataset` (split by its `fold` column), a `save_to_disk` folder of
    either, or a data folder in an official layout (PTB-XL, PhysioNet/CinC), read with `feature_extractor`."""
    from datasets import Dataset, DatasetDict

    from .data import label_names as read_label_names
    from .data import label_set as read_label_set
    from .data import split_by_fold

    source = ""
    if isinstance(data, (str, os.PathLike)):
        source = os.fspath(data)
        data = load_data_folder(data, label_set, feature_extractor, cache_dir)
    if isinstance(data, Dataset):
        data = split_by_fold(data)
    if not isinstance(data, DatasetDict) or not len(data):
        raise ValueError(f"Expected a datasets.Dataset or DatasetDict of prepared ECGs, got {type(data).__name__}")
    first = next(iter(data.values()))
    missing = [c for c in (*ECG_COLUMNS, "labels") if c not in first.column_names]
    if missing:
        raise ValueError(f"The data set {source} lacks the column(s) {missing}; prepare it with `cgdmer prepare`")
    try:
        names = read_label_names(first)
    except ValueError:
        names = None
    if not names:
        raise ValueError(f"The data set {source} carries no label names (was it made by cgdmer_hf.data?)")
    found_set = read_label_set(first)
    if label_set is not None and found_set is not None and label_set != found_set:
        raise ValueError(f"--label-set {label_set!r} differs from the data set's label set {found_set!r}")
    return EvaluationData(data, list(names), found_set or label_set, source)


def load_data_folder(path: Union[str, os.PathLike], label_set: Optional[str] = None, feature_extractor=None,
                     cache_dir: Optional[str] = None, require_labels: bool = True):
    """A `save_to_disk` folder (`Dataset` or `DatasetDict`), or a data folder in an official layout read with
    `feature_extractor` (the model's, so that preprocessing matches). `require_labels`: refuse unlabelled layouts."""
    from datasets import load_from_disk

    from .data import DEFAULT_LABEL_SETS, LOADERS, detect_layout

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Data folder not found: {path}")
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return load_from_disk(str(path))
    layout = detect_layout(path)
    kwargs: dict[str, Any] = {"feature_extractor": feature_extractor, "cache_dir": cache_dir}
    if DEFAULT_LABEL_SETS.get(layout) is not None:
        kwargs["label_set"] = label_set or DEFAULT_LABEL_SETS[layout]
    elif require_labels:
        raise ValueError(f"{path} is a {layout} folder without diagnostic labels; evaluation needs a labelled "
                         "data set (PTB-XL or PhysioNet/CinC)")
    elif label_set:
        raise ValueError(f"A {layout} folder has no label set; drop the label set {label_set!r}")
    return LOADERS[layout](path, **kwargs)


def check_compatible(model, dataset) -> None:
    """A `ValueError` when the prepared ECGs do not have the shape the model takes."""
    cfg = model.config.ecg_config
    shape = tuple(dataset.features["ecg_values"].shape)
    if shape != (cfg.num_leads, cfg.num_samples):
        raise ValueError(f"The data set holds ECGs of shape {shape}, the model takes ({cfg.num_leads}, "
                         f"{cfg.num_samples}) ({cfg.duration} s at {cfg.sampling_rate} Hz); prepare the data with "
                         "the model's feature extractor")


# ----------------------------------------------------------------------------------------------------------
# Embeddings
# ----------------------------------------------------------------------------------------------------------
def _dual_encoder(model):
    from .pipeline_cgdmer import _dual_encoder as find

    return find(model)


@torch.no_grad()
def compute_embeddings(model, dataset, kind: str = "representation", batch_size: int = 64,
                       normalize: bool = False, device: Optional[Union[str, torch.device]] = None) -> np.ndarray:
    """ECG embeddings `(len(dataset), dim)` float32 of a prepared dataset, in dataset order.

    `kind="representation"`: pooled `[shared; specific]` features (`get_ecg_representation`, for probes);
    `kind="shared"`: the text-aligned embedding (`get_ecg_features`), L2-normalised with `normalize=True`.
    """
    if kind not in EMBEDDING_KINDS:
        raise ValueError(f"kind must be one of {EMBEDDING_KINDS}, got {kind!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    core = _dual_encoder(model)
    check_compatible(core, dataset)
    was_training = core.training
    core.eval()
    device = torch.device(device) if device is not None else next(core.parameters()).device
    dtype = next(core.parameters()).dtype
    chunks = []
    for batch in dataset.select_columns(list(ECG_COLUMNS)).with_format("torch").iter(batch_size=batch_size):
        inputs = {k: batch[k].to(device) for k in ECG_COLUMNS}
        inputs["ecg_values"] = inputs["ecg_values"].to(dtype)
        out = core.get_ecg_features(**inputs).pooler_output if kind == "shared" \
            else core.get_ecg_representation(**inputs)
        out = out.float()
        chunks.append((F.normalize(out, dim=-1) if normalize else out).cpu().numpy())
    core.train(was_training)
    dim = core.config.projection_dim if kind == "shared" else core.representation_size
    return np.concatenate(chunks) if chunks else np.zeros((0, dim), dtype=np.float32)


# ----------------------------------------------------------------------------------------------------------
# Zero-shot
# ----------------------------------------------------------------------------------------------------------
def _clean_prompts(prompts: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Prompts go through the same `clean_report` as the pretraining reports."""
    from .reports import clean_report

    return {label: [clean_report(d) for d in ([descs] if isinstance(descs, str) else descs)]
            for label, descs in prompts.items()}


def label_embeddings(model, tokenizer, prompts: Mapping[str, Sequence[str]]) -> torch.Tensor:
    """`(classes, projection_dim)` normalised prompt-ensemble embeddings (the pipeline's computation)."""
    from .pipeline_cgdmer import ZeroShotECGClassificationPipeline, build_prompts

    core = _dual_encoder(model)
    was_training = core.training
    core.eval()
    try:
        pipe = ZeroShotECGClassificationPipeline(model=core, tokenizer=tokenizer, device=_device(core))
        return pipe.label_embeddings(build_prompts(_clean_prompts(prompts)))
    finally:
        core.train(was_training)


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def zero_shot_scores(model, ecg_embeddings: np.ndarray, text_embeddings: torch.Tensor) -> np.ndarray:
    """`sigmoid(model.similarity_logits(ecg, text))` for normalised ECG and label embeddings: `(n, classes)`."""
    core = _dual_encoder(model)
    ecg = torch.as_tensor(ecg_embeddings, dtype=torch.float32, device=text_embeddings.device)
    return torch.sigmoid(core.similarity_logits(ecg, text_embeddings.float()).float()).cpu().numpy()


def align_prompts(prompts: Mapping[str, Sequence[str]], label_names: Sequence[str]) -> dict[str, list[str]]:
    """Prompts in `label_names` order; a `ValueError` names classes without prompts."""
    missing = [name for name in label_names if name not in prompts]
    if missing:
        raise ValueError(f"The prompt set has no descriptions for the class(es) {missing}")
    return {name: list(prompts[name]) if not isinstance(prompts[name], str) else [prompts[name]]
            for name in label_names}


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


# ----------------------------------------------------------------------------------------------------------
# Linear probe
# ----------------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------------
# Fine-tuning
# ----------------------------------------------------------------------------------------------------------
def ecg_collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Batch prepared rows for `CGDMERForECGClassification` (other columns are dropped)."""
    batch = {
        "ecg_values": torch.as_tensor(np.stack([np.asarray(f["ecg_values"], dtype=np.float32) for f in features])),
        "lead_mask": torch.as_tensor(np.stack([np.asarray(f["lead_mask"]) for f in features]).astype(np.int64)),
    }
    if "ecg_attention_mask" in features[0]:
        batch["ecg_attention_mask"] = torch.as_tensor(
            np.stack([np.asarray(f["ecg_attention_mask"]) for f in features]).astype(np.int64))
    if "labels" in features[0]:
        batch["labels"] = torch.as_tensor(np.stack([np.asarray(f["labels"], dtype=np.float32) for f in features]))
    return batch


@dataclass
class FinetuneSettings:
    epochs: float = 10.0
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    batch_size: int = 32
    warmup_ratio: float = 0.1
    bf16: bool = False


def finetune_classifier(model, train_dataset, val_dataset, label_names: Sequence[str], seed: int,
                        settings: FinetuneSettings, work_dir: Union[str, Path]):
    """Fine-tune a `CGDMERForECGClassification` with the Trainer; the checkpoint with the best validation macro
    AUC is kept (`load_best_model_at_end`). Receives training and validation data only. Returns the model and
    the best validation AUC."""
    from transformers import Trainer, TrainingArguments

    def compute_metrics(prediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return {"roc_auc": macro_roc_auc(logits, prediction.label_ids)}

    # transformers >= 5.2x takes the warm-up fraction as a float `warmup_steps`; older 5.x as `warmup_ratio`.
    warmup = ({"warmup_ratio": settings.warmup_ratio} if "warmup_ratio" in TrainingArguments.__dataclass_fields__
              else {"warmup_steps": settings.warmup_ratio})
    args = TrainingArguments(
        output_dir=str(work_dir),
        num_train_epochs=settings.epochs,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        **warmup,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="roc_auc",
        greater_is_better=True,
        save_total_limit=1,
        save_only_model=True,
        label_names=["labels"],
        remove_unused_columns=False,
        report_to=[],
        seed=seed,
        data_seed=seed,
        bf16=settings.bf16,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=val_dataset,
                      data_collator=ecg_collate, compute_metrics=compute_metrics)
    trainer.train()
    best = trainer.state.best_metric
    return trainer.model, (float(best) if best is not None else float("nan"))


@torch.no_grad()
def classifier_scores(model, dataset, batch_size: int = 64) -> np.ndarray:
    """Sigmoid probabilities `(n, classes)` of a `CGDMERForECGClassification` on a prepared dataset."""
    model.eval()
    device, dtype = _device(model), next(model.parameters()).dtype
    out = []
    for batch in dataset.select_columns(list(ECG_COLUMNS)).with_format("torch").iter(batch_size=batch_size):
        inputs = {k: batch[k].to(device) for k in ECG_COLUMNS}
        inputs["ecg_values"] = inputs["ecg_values"].to(dtype)
        out.append(torch.sigmoid(model(**inputs).logits.float()).cpu().numpy())
    return np.concatenate(out)


# ----------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------
def load_model(model: Any):
    """A `CGDMERModel` from a folder (or the dual encoder of a CG-DMER model object), in eval mode."""
    if isinstance(model, (str, os.PathLike)):
        from .modeling_cgdmer import CGDMERModel

        path = Path(model)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"No model folder at {path} (config.json missing)")
        model = CGDMERModel.from_pretrained(str(path))
    return _dual_encoder(model).eval()


def random_init_like(model, seed: int = 0):
    """A randomly initialised `CGDMERModel` with the configuration of `model` (the probe baseline)."""
    from .modeling_cgdmer import CGDMERModel

    torch.manual_seed(seed)
    return CGDMERModel(_dual_encoder(model).config).eval()


def _classifier_from(encoder, label_names: Sequence[str], seed: int):
    """A `CGDMERForECGClassification` whose ECG side is a copy of `encoder` (new head, seeded)."""
    from .modeling_cgdmer import CGDMERForECGClassification

    config = encoder.config.__class__.from_dict(encoder.config.to_dict())
    config.num_labels = len(label_names)
    config.id2label = dict(enumerate(label_names))
    config.label2id = {name: i for i, name in enumerate(label_names)}
    config.problem_type = "multi_label_classification"
    config.freeze_backbone = False
    torch.manual_seed(seed)
    classifier = CGDMERForECGClassification(config)
    state = {k: v for k, v in encoder.state_dict().items() if k in classifier.cgdmer.state_dict()}
    missing, _ = classifier.cgdmer.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(f"Could not copy the ECG encoder into the classifier (missing {missing[:5]})")
    return classifier


# ----------------------------------------------------------------------------------------------------------
# The harness
# ----------------------------------------------------------------------------------------------------------
@dataclass
class EvaluationSettings:
    """What `evaluate_model` runs. `bootstrap`: resamples for 95 % CIs (0 = none)."""

    tasks: tuple[str, ...] = ("zero-shot", "linear-probe")
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    weight_decays: tuple[float, ...] = DEFAULT_WEIGHT_DECAYS
    random_baseline: bool = True
    random_seed: int = 0
    prompts: Optional[str] = None
    tune_prompts: bool = False
    batch_size: int = 64
    bootstrap: int = 1000
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    plots: bool = True
    keep_test_scores: bool = False  # return every test score array (`test_scores`, not written to results.json)

    def __post_init__(self):
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"Unknown task(s) {unknown or self.tasks}; choose from {TASKS}")
        bad = [f for f in self.fractions if not 0.0 < float(f) <= 1.0]
        if bad or not self.fractions:
            raise ValueError(f"fractions must be in (0, 1], got {list(self.fractions)}")
        if not self.seeds:
            raise ValueError("seeds is empty")
        if self.prompts is not None:
            from .prompts import load_prompt_set

            load_prompt_set(self.prompts)  # fail before any model or data is loaded


def score(scores: np.ndarray, labels: np.ndarray, label_names: Sequence[str], bootstrap: int = 0,
          seed: int = 0) -> dict[str, Any]:
    """Test-split result: macro / per-class AUC through `evaluate`, excluded classes and a bootstrap CI."""
    result = roc_auc(scores, labels, label_names)
    ci = bootstrap_ci(scores, labels, bootstrap, seed)
    return {"roc_auc": result["roc_auc"], "ci95": list(ci) if ci else None, "per_class": result["per_class"],
            "excluded_classes": result["excluded_classes"], "num_test": int(len(labels))}


class _Harness:
    """Runs the tasks over the pretrained and (optionally) random-initialised encoders; features are computed once
    per encoder, split and kind. Only `_test` reads the test labels, after every choice is made."""

    def __init__(self, model, data: EvaluationData, settings: EvaluationSettings, tokenizer):
        self.data, self.settings, self.tokenizer = data, settings, tokenizer
        self.curves: list[tuple[str, np.ndarray, np.ndarray]] = []
        self.encoders = {"pretrained": model}
        if settings.random_baseline:
            self.encoders["random_init"] = random_init_like(model, settings.random_seed)
        self._features: dict[tuple[str, str, str], np.ndarray] = {}
        self.test_scores: dict[str, np.ndarray] = {}

    def features(self, encoder: str, split: str, kind: str) -> np.ndarray:
        key = (encoder, split, kind)
        if key not in self._features:
            start = time.perf_counter()
            self._features[key] = compute_embeddings(self.encoders[encoder], self.data.split(split), kind,
                                                     self.settings.batch_size, normalize=kind == "shared")
            logger.info("%s %s features of %s: %.1f s", encoder, kind, split, time.perf_counter() - start)
        return self._features[key]

    def _test(self, name: str, scores: np.ndarray, seed: int = 0) -> dict[str, Any]:
        """Score on the test split (the only place it is read); ROC curves are kept for the first seed."""
        labels = self.data.labels("test")
        if self.settings.keep_test_scores:
            self.test_scores[name] = np.asarray(scores, dtype=np.float32)
        if seed == self.settings.seeds[0]:
            self.curves.append((name, scores, labels))
        return score(scores, labels, self.data.label_names, self.settings.bootstrap, seed)

    # -- zero-shot ---------------------------------------------------------------------------------------------
    def zero_shot_prompts(self) -> tuple[str, dict[str, list[str]]]:
        """The prompt set's name and its prompts in label order; errors name a missing tokenizer, a label set
        without a prompt set or classes without prompts."""
        from .prompts import load_prompt_set, prompt_set_for_label_set

        if self.tokenizer is None:
            raise ValueError("Zero-shot evaluation needs the report tokenizer: save it in the model folder or pass "
                             "tokenizer=")
        name = self.settings.prompts or prompt_set_for_label_set(self.data.label_set)
        return name, align_prompts(load_prompt_set(name), self.data.label_names)

    def zero_shot(self) -> list[dict[str, Any]]:
        name, prompts = self.zero_shot_prompts()
        rows = []
        for encoder, model in self.encoders.items():
            used, chosen = prompts, None
            if self.settings.tune_prompts:
                used, chosen = tune_prompts(model, self.tokenizer, prompts, self.features(encoder, "validation",
                                            "shared"), self.data.labels("validation"))  # fmt: skip
            text = label_embeddings(model, self.tokenizer, used)
            scores = zero_shot_scores(model, self.features(encoder, "test", "shared"), text)
            row = {"task": "zero-shot", "encoder": encoder, "prompts": name, **self._test(f"zero-shot_{encoder}",
                                                                                        scores)}
            if chosen is not None:
                row["selection"] = {"prompts_per_class": chosen}
            rows.append(row)
        return rows

    # -- linear probe -------------------------------------------------------------------------------------------
    def _subsets(self) -> list[tuple[float, int, list[int]]]:
        from .data import train_fraction

        n = len(self.data.split("train"))
        return [(float(f), int(s), train_fraction(range(n), float(f), int(s)))
                for f in self.settings.fractions for s in self.settings.seeds]

    def linear_probe(self) -> list[dict[str, Any]]:
        rows = []
        train_y, val_y = self.data.labels("train"), self.data.labels("validation")
        for encoder in self.encoders:
            train_x = self.features(encoder, "train", "representation")
            val_x = self.features(encoder, "validation", "representation")
            for fraction, seed, idx in self._subsets():
                probe = fit_linear_probe(train_x[idx], train_y[idx], val_x, val_y, self.settings.weight_decays)
                scores = probe.predict_proba(self.features(encoder, "test", "representation"))
                rows.append({"task": "linear-probe", "encoder": encoder, "fraction": fraction, "seed": seed,
                             "num_train": len(idx),
                             "selection": {"weight_decay": probe.weight_decay,
                                           "validation_roc_auc": probe.validation_roc_auc,
                                           "validation_curve": probe.validation_curve},
                             **self._test(f"linear-probe_{encoder}_{_pct(fraction)}_seed{seed}", scores, seed)})
        return rows

    # -- fine-tuning ---------------------------------------------------------------------------------------------
    def finetune(self) -> list[dict[str, Any]]:
        rows = []
        train, val, test = (self.data.split(s) for s in SPLIT_NAMES)
        with tempfile.TemporaryDirectory(prefix="cgdmer-finetune-") as work:
            for encoder, model in self.encoders.items():
                for fraction, seed, idx in self._subsets():
                    classifier = _classifier_from(model, self.data.label_names, seed)
                    run_dir = Path(work) / f"{encoder}_{_pct(fraction)}_{seed}"
                    classifier, val_auc = finetune_classifier(classifier, train.select(idx), val,
                                                              self.data.label_names, seed, self.settings.finetune,
                                                              run_dir)  # fmt: skip
                    shutil.rmtree(run_dir, ignore_errors=True)
                    scores = classifier_scores(classifier, test, self.settings.batch_size)
                    rows.append({"task": "finetune", "encoder": encoder, "fraction": fraction, "seed": seed,
                                 "num_train": len(idx), "selection": {"validation_roc_auc": val_auc,
                                                                      "checkpoint": "best validation epoch"},
                                 **self._test(f"finetune_{encoder}_{_pct(fraction)}_seed{seed}", scores, seed)})
        return rows


def _pct(fraction: float) -> str:
    return f"{fraction * 100:g}pct"


def _load_tokenizer(model_dir: Optional[Union[str, os.PathLike]]):
    if model_dir is None:
        return None
    from transformers import AutoTokenizer

    path = Path(model_dir)
    if not any((path / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
        return None
    return AutoTokenizer.from_pretrained(str(path))


def model_feature_extractor(model_dir: Optional[Union[str, os.PathLike]]):
    """The `CGDMERFeatureExtractor` saved in a model folder (`None` if there is none)."""
    if model_dir is None or not any((Path(model_dir) / name).exists()
                                    for name in ("preprocessor_config.json", "processor_config.json")):
        return None
    from .feature_extraction_cgdmer import CGDMERFeatureExtractor

    return CGDMERFeatureExtractor.from_pretrained(str(model_dir))


def evaluate_model(model: Any, data: Any, output_dir: Optional[Union[str, os.PathLike]] = None,
                   settings: Optional[EvaluationSettings] = None, tokenizer=None, label_set: Optional[str] = None,
                   cache_dir: Optional[str] = None, **kwargs: Any) -> dict[str, Any]:
    """Run the evaluation tasks and (with `output_dir`) write `results.json`, `results.md` and ROC-curve PNGs.

    Args:
        model: a model folder (config + weights, with its tokenizer and feature extractor for zero-shot and raw
            data) or a CG-DMER model object.
        data: a prepared `DatasetDict`/`Dataset`, its `save_to_disk` folder, or a PTB-XL / CinC folder.
        settings: an `EvaluationSettings`; or pass its fields as keyword arguments.
        tokenizer: the report tokenizer (default: the one saved with the model).
        label_set: the label set to read raw data with (default: the layout's default).

    Returns:
        The results dict that `results.json` holds.
    """
    settings = settings or EvaluationSettings(**kwargs)
    model_dir = model if isinstance(model, (str, os.PathLike)) else None
    encoder = load_model(model)
    data = as_evaluation_data(data, label_set, model_feature_extractor(model_dir), cache_dir)
    for name in SPLIT_NAMES if set(settings.tasks) - {"zero-shot"} else ("test",):
        check_compatible(encoder, data.split(name))
    if "zero-shot" in settings.tasks and tokenizer is None:
        tokenizer = _load_tokenizer(model_dir)
    harness = _Harness(encoder, data, settings, tokenizer)
    if "zero-shot" in settings.tasks:
        harness.zero_shot_prompts()  # fail before any feature is computed
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for task, run in (("zero-shot", harness.zero_shot), ("linear-probe", harness.linear_probe),
                      ("finetune", harness.finetune)):
        if task in settings.tasks:
            rows.extend(run())
            logger.info("%s done after %.0f s", task, time.perf_counter() - start)
    results = {
        "model": os.fspath(model_dir) if model_dir else type(model).__name__,
        "data": data.source,
        "label_set": data.label_set,
        "label_names": data.label_names,
        "splits": {name: len(split) for name, split in data.splits.items()},
        "test_label_counts": dict(zip(data.label_names, data.labels("test").sum(0).astype(int).tolist())),
        "settings": _jsonable(asdict(settings)),
        "results": rows,
        "seconds": round(time.perf_counter() - start, 1),
    }
    if output_dir is not None:
        write_results(results, harness.curves if settings.plots else [], output_dir)
    if settings.keep_test_scores:
        results["test_scores"] = {"labels": data.labels("test").astype(np.float32), **harness.test_scores}
    return results


# ----------------------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _mean_std(values: Sequence[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def markdown_tables(results: dict[str, Any]) -> str:
    """Markdown tables of a results dict: one table per task (encoders x label fractions, mean ± std over seeds)
    and per-class AUCs of the pretrained encoder."""
    rows = results["results"]
    lines = [f"# Evaluation of {results['model']}", "",
             f"Data: {results['data'] or '-'}; label set: {results['label_set'] or '-'} "
             f"({len(results['label_names'])} classes); splits: "
             + ", ".join(f"{k} {v}" for k, v in results["splits"].items()), "",
             "Macro ROC-AUC on the test split over the classes with positives there; every choice made on the "
             "validation split. Mean ± sample std over seeds; [95 % bootstrap CI] for single runs.", ""]
    zero = [r for r in rows if r["task"] == "zero-shot"]
    if zero:
        lines += ["## Zero-shot", "", "| encoder | prompts | macro ROC-AUC | 95 % CI |", "|---|---|---|---|"]
        for r in zero:
            ci = f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]" if r.get("ci95") else "-"
            lines.append(f"| {r['encoder']} | {r['prompts']} | {_fmt(r['roc_auc'])} | {ci} |")
        lines.append("")
    for task, title in (("linear-probe", "Linear probe (frozen features)"), ("finetune", "Fine-tuning")):
        task_rows = [r for r in rows if r["task"] == task]
        if not task_rows:
            continue
        fractions = sorted({r["fraction"] for r in task_rows})
        header = " | ".join(f"{_pct(f).replace('pct', ' %')} ({_train_sizes(task_rows, f)})" for f in fractions)
        lines += [f"## {title}", "", f"| encoder | {header} |", "|---" * (len(fractions) + 1) + "|"]
        for encoder in dict.fromkeys(r["encoder"] for r in task_rows):
            cells = []
            for f in fractions:
                runs = [r for r in task_rows if r["encoder"] == encoder and r["fraction"] == f]
                cell = _mean_std([r["roc_auc"] for r in runs])
                if len(runs) == 1 and runs[0].get("ci95"):
                    cell += f" [{runs[0]['ci95'][0]:.3f}, {runs[0]['ci95'][1]:.3f}]"
                cells.append(cell)
            lines.append(f"| {encoder} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _per_class_table(rows, results["label_names"])
    excluded = sorted({c for r in rows for c in r.get("excluded_classes", [])})
    if excluded:
        lines += [f"Classes without positives (or negatives) in the test split, left out of the macro average: "
                  f"{', '.join(excluded)}.", ""]
    return "\n".join(lines)


def _train_sizes(rows: Sequence[dict[str, Any]], fraction: float) -> str:
    sizes = sorted({r["num_train"] for r in rows if r["fraction"] == fraction})
    return "n=" + "/".join(str(s) for s in sizes)


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _per_class_table(rows: Sequence[dict[str, Any]], label_names: Sequence[str]) -> list[str]:
    """Per-class test AUC of the pretrained encoder: zero-shot and the largest-fraction probe / fine-tune
    (mean over seeds)."""
    columns = []
    for task in ("zero-shot", "linear-probe", "finetune"):
        task_rows = [r for r in rows if r["task"] == task and r["encoder"] == "pretrained"]
        if not task_rows:
            continue
        if task != "zero-shot":
            top = max(r["fraction"] for r in task_rows)
            task_rows = [r for r in task_rows if r["fraction"] == top]
            title = f"{task} {_pct(top).replace('pct', ' %')}"
        else:
            title = task
        columns.append((title, task_rows))
    if not columns:
        return []
    lines = ["## Per-class ROC-AUC (pretrained encoder)", "",
             "| class | " + " | ".join(t for t, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name in label_names:
        cells = [_mean_std([r["per_class"].get(name) for r in task_rows]) for _, task_rows in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def plot_roc_curves(name: str, scores: np.ndarray, labels: np.ndarray, label_names: Sequence[str],
                    path: Union[str, Path]) -> None:
    """One PNG with the test ROC curve of every class that has positives and negatives."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    binary, _, curve = _auc_functions()
    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=100)
    for j, label in enumerate(label_names):
        y = labels[:, j]
        if y.min() == y.max():
            continue
        fpr, tpr = curve(scores[:, j], y)
        ax.plot(fpr, tpr, lw=1.2, label=f"{label} ({binary(scores[:, j], y):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01),
           title=name.replace("_", " ").replace("pct", " %"))
    ax.legend(fontsize=7, loc="lower right", ncol=1 if len(label_names) <= 12 else 2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


_DATASET_NAMES = {"super": "PTB-XL", "sub": "PTB-XL", "form": "PTB-XL", "rhythm": "PTB-XL", "diagnostic": "PTB-XL",
                  "all": "PTB-XL", "cpsc2018": "CPSC2018", "chapman": "Chapman-Shaoxing-Ningbo",
                  "cinc2021": "PhysioNet/CinC 2021"}  # fmt: skip
_TASK_TITLES = {"zero-shot": "zero-shot", "linear-probe": "linear probe", "finetune": "fine-tuning"}


def card_results(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for the model card (`cgdmer push --results`): the pretrained encoder's macro AUC per task and label
    fraction, averaged over seeds."""
    label_set = results.get("label_set")
    dataset = _DATASET_NAMES.get(label_set, Path(results.get("data") or "custom").name or "custom")
    groups: dict[tuple[str, Optional[float]], list[float]] = {}
    for row in results["results"]:
        if row["encoder"] == "pretrained" and row.get("roc_auc") is not None and not math.isnan(row["roc_auc"]):
            groups.setdefault((row["task"], row.get("fraction")), []).append(row["roc_auc"])
    rows = []
    for (task, fraction), values in groups.items():
        title = f"{dataset} {label_set or ''}, {_TASK_TITLES[task]}".replace(" ,", ",")
        if fraction is not None:
            title += f" {fraction * 100:g} %"
        rows.append({"task": title, "dataset": dataset, "value": float(np.mean(values)), "metric": "roc_auc",
                     "split": "test", "dataset_config": label_set, "num_runs": len(values)})
    return rows


def write_results(results: dict[str, Any], curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
                  output_dir: Union[str, os.PathLike]) -> dict[str, Path]:
    """Write `results.json`, `results.md`, `card_results.json` (for `cgdmer push --results`) and
    `roc/<run>.png`; returns the paths written."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "results.md", "card": out / "card_results.json"}
    paths["json"].write_text(json.dumps(_jsonable(results), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["card"].write_text(json.dumps({"results": card_results(results)}, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown_tables(_jsonable(results)), encoding="utf-8")
    if curves:
        (out / "roc").mkdir(exist_ok=True)
        for name, scores, labels in curves:
            plot_roc_curves(name, scores, labels, results["label_names"], out / "roc" / f"{name}.png")
    return paths


# ----------------------------------------------------------------------------------------------------------
# Embeddings export
# ----------------------------------------------------------------------------------------------------------
def export_embeddings(model: Any, dataset, path: Union[str, os.PathLike], kind: str = "representation",
                      normalize: bool = False, batch_size: int = 64) -> Path:
    """Write the ECG embeddings of a prepared dataset to `.npy` (array; record ids in `<name>.record_ids.txt`)
    or `.parquet` (`record_id`, `fold`, `labels`, `embedding` columns)."""
    path = Path(path)
    if path.suffix not in (".npy", ".parquet"):
        raise ValueError(f"--output must end in .npy or .parquet, got {path.name!r}")
    embeddings = compute_embeddings(load_model(model), dataset, kind, batch_size, normalize)
    ids = [str(i) for i in _column(dataset, "record_id")] if "record_id" in dataset.column_names else \
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
                columns[name] = _column(dataset, name).tolist()
        Dataset.from_dict(columns).to_parquet(str(path))
    return path


__all__ = [
    "EvaluationData",
    "EvaluationSettings",
    "FinetuneSettings",
    "LinearProbe",
    "as_evaluation_data",
    "bootstrap_ci",
    "card_results",
    "compute_embeddings",
    "evaluate_model",
    "export_embeddings",
    "fit_linear_probe",
    "finetune_classifier",
    "label_embeddings",
    "load_data_folder",
    "load_roc_auc_metric",
    "model_feature_extractor",
    "macro_roc_auc",
    "markdown_tables",
    "roc_auc",
    "score",
    "tune_prompts",
    "write_results",
    "zero_shot_scores",
]
