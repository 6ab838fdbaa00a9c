"""The evaluation harness: `evaluate_model` runs zero-shot classification, linear probes and fine-tuning of an
encoder and of a randomly initialised one on the train / validation / test splits of a labelled data set.

The protocol is MERL's / CG-DMER's: PTB-XL strat_fold 1-8 train, 9 validation, 10 test; linear probes on frozen
`[shared; specific]` features at 1 %, 10 % and 100 % of the training labels with fixed seeds; every choice
(weight decay, fine-tuning checkpoint, prompts) is made on the validation split. The test split is read once, at the
end, by `score`; no function that selects anything receives it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..data import ECG_INPUT_NAMES, check_compatible, load_data_folder, model_feature_extractor
from .embeddings import FeatureCache, column
from .finetune import FinetuneSettings, _classifier_from, classifier_scores, finetune_classifier
from .linear_probe import DEFAULT_WEIGHT_DECAYS, fit_linear_probe
from .metrics import score
from .report import _jsonable, _pct, write_results
from .zero_shot import align_prompts, label_keys, tune_prompts, zero_shot_labels, zero_shot_logits, zero_shot_scores

logger = logging.getLogger("cgdmer_hf.evaluation")

TASKS = ("zero-shot", "linear-probe", "finetune")
DEFAULT_FRACTIONS = (0.01, 0.1, 1.0)
DEFAULT_SEEDS = (0, 1, 2)
SPLIT_NAMES = ("train", "validation", "test")


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
        return column(self.split(name), "labels").reshape(len(self.split(name)), -1).astype(np.float32)


def as_evaluation_data(data: Any, label_set: Optional[str] = None, feature_extractor=None,
                       cache_dir: Optional[str] = None) -> EvaluationData:
    """Evaluation splits from a `DatasetDict`, a `Dataset` (split by its `fold` column), a `save_to_disk` folder of
    either, or a data folder in an official layout (PTB-XL, PhysioNet/CinC), read with `feature_extractor`."""
    from datasets import Dataset, DatasetDict

    from ..data import label_names as read_label_names
    from ..data import label_set as read_label_set
    from ..data import split_by_fold

    source = ""
    if isinstance(data, (str, os.PathLike)):
        source = os.fspath(data)
        data = load_data_folder(data, label_set, feature_extractor, cache_dir)
    if isinstance(data, Dataset):
        data = split_by_fold(data)
    if not isinstance(data, DatasetDict) or not len(data):
        raise ValueError(f"Expected a datasets.Dataset or DatasetDict of prepared ECGs, got {type(data).__name__}")
    first = next(iter(data.values()))
    missing = [c for c in (*ECG_INPUT_NAMES, "labels") if c not in first.column_names]
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


@dataclass
class EvaluationSettings:
    """What `evaluate_model` runs. `bootstrap`: resamples for 95 % CIs (0 = none).

    `prompts`: a prompt set name or JSON file, or `"plain"` (`PLAIN_NAMES`): each class described by its plain
    English name alone (`prompts.plain_prompt_set`); default: the shipped set of the label set.
    `calibration`: measure the calibration of the zero-shot probabilities on the test split (ECE over 15 bins,
    Brier score; a reliability PNG with `plots`): `True` also fits a Platt calibration on the validation split
    (when there is one) with the prompts used and measures the calibrated probabilities; a dict (a fitted
    `zero_shot_calibration`) is applied to the pretrained encoder instead (the random-init one is fitted on
    validation). Each zero-shot row then has a `calibration` entry."""

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
    calibration: Union[bool, dict, None] = None
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
        from ..prompts import PLAIN_NAMES, load_prompt_set

        if self.prompts is not None and self.prompts != PLAIN_NAMES:
            load_prompt_set(self.prompts)  # fail before any model or data is loaded
        if not isinstance(self.calibration, (bool, dict, type(None))):
            raise TypeError(f"calibration must be True, False, None or a fitted calibration dict, got "
                            f"{type(self.calibration).__name__}")


class _Harness:
    """Runs the tasks over the pretrained and (optionally) random-initialised encoders; features are computed once
    per encoder, ECG content and kind (`FeatureCache`, shared across calls when the caller passes one). Only
    `_test` reads the test labels, after every choice is made."""

    def __init__(self, model, data: EvaluationData, settings: EvaluationSettings, tokenizer,
                 features: Optional[FeatureCache] = None):
        self.data, self.settings, self.tokenizer = data, settings, tokenizer
        self.cache = features if features is not None else FeatureCache()
        self.curves: list[tuple[str, np.ndarray, np.ndarray]] = []
        self.encoders = {"pretrained": model}
        if settings.random_baseline:
            self.encoders["random_init"] = self.cache.random_init_like(model, settings.random_seed)
        self.test_scores: dict[str, np.ndarray] = {}
        self.reliability: dict[str, dict[str, Any]] = {}

    def features(self, encoder: str, split: str, kind: str) -> np.ndarray:
        """The features of a split, from the cache (computed once per encoder and ECG content)."""
        return self.cache.get(self.encoders[encoder], self.data.split(split), kind, self.settings.batch_size,
                              normalize=kind == "shared", name=f"{encoder} {split}")

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
        from ..prompts import PLAIN_NAMES, load_prompt_set, plain_prompt_set, prompt_set_for_label_set

        if self.tokenizer is None:
            raise ValueError("Zero-shot evaluation needs the report tokenizer: save it in the model folder or pass "
                             "tokenizer=")
        name = self.settings.prompts or prompt_set_for_label_set(self.data.label_set)
        prompts = plain_prompt_set(self.data.label_set) if name == PLAIN_NAMES else load_prompt_set(name)
        return name, align_prompts(prompts, self.data.label_names)

    def zero_shot(self) -> list[dict[str, Any]]:
        name, prompts = self.zero_shot_prompts()
        rows = []
        for encoder, model in self.encoders.items():
            used, chosen = prompts, None
            if self.settings.tune_prompts:
                used, chosen = tune_prompts(model, self.tokenizer, prompts, self.features(encoder, "validation",
                                            "shared"), self.data.labels("validation"))  # fmt: skip
            labels = zero_shot_labels(model, self.tokenizer, used)
            scores = zero_shot_scores(model, self.features(encoder, "test", "shared"), labels)
            row = {"task": "zero-shot", "encoder": encoder, "prompts": name, **self._test(f"zero-shot_{encoder}",
                                                                                        scores)}
            if chosen is not None:
                row["selection"] = {"prompts_per_class": chosen}
            if self.settings.calibration:
                row["calibration"] = self._test_calibration(encoder, used, labels, scores)
            rows.append(row)
        return rows

    def _zero_shot_calibration(self, encoder: str, prompts: dict[str, list[str]], labels) -> Optional[dict]:
        """The calibration to measure: the given one (pretrained encoder), else a fit on the validation split
        (`None` without one)."""
        from .calibration import fit_zero_shot_calibration

        given = self.settings.calibration
        if isinstance(given, dict) and encoder == "pretrained":
            return given
        if len(self.data.splits.get("validation", ())) == 0:
            return None
        logits = zero_shot_logits(self.encoders[encoder], self.features(encoder, "validation", "shared"), labels)
        return fit_zero_shot_calibration(logits, self.data.labels("validation"), label_keys(prompts))

    def _test_calibration(self, encoder: str, prompts: dict[str, list[str]], labels, scores: np.ndarray
                          ) -> dict[str, Any]:
        """ECE, Brier score and reliability of the test scores, raw and calibrated (reads the test split, after
        the calibration is fitted on validation)."""
        from .calibration import apply_calibration, calibration_summary

        fit = self._zero_shot_calibration(encoder, prompts, labels)
        calibrated = None if fit is None else apply_calibration(
            zero_shot_logits(self.encoders[encoder], self.features(encoder, "test", "shared"), labels), fit,
            label_keys(prompts))
        summary = calibration_summary(scores, self.data.labels("test"), calibrated)
        summary["fitted_on"] = None if fit is None else ("given" if fit is self.settings.calibration else "validation")
        self.reliability[f"zero-shot_{encoder}"] = summary
        return summary

    # -- linear probe -------------------------------------------------------------------------------------------
    def _subsets(self) -> list[tuple[float, int, list[int]]]:
        from ..data import train_fraction

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


def write_reliability_plots(summaries: dict[str, dict[str, Any]], output_dir: Union[str, os.PathLike]
                            ) -> list[Path]:
    """`reliability/<name>.png` (before and, when fitted, after calibration) of each `calibration_summary`."""
    from .calibration import reliability_figure

    return [reliability_figure(summary, Path(output_dir) / "reliability" / f"{name}.png", name)
            for name, summary in summaries.items()]


def _load_tokenizer(model_dir: Optional[Union[str, os.PathLike]]):
    if model_dir is None:
        return None
    from transformers import AutoTokenizer

    path = Path(model_dir)
    if not any((path / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
        return None
    return AutoTokenizer.from_pretrained(str(path))


def evaluate_model(model: Any, data: Any, output_dir: Optional[Union[str, os.PathLike]] = None,
                   settings: Optional[EvaluationSettings] = None, tokenizer=None, label_set: Optional[str] = None,
                   cache_dir: Optional[str] = None, features: Optional[FeatureCache] = None,
                   **kwargs: Any) -> dict[str, Any]:
    """Run the evaluation tasks and (with `output_dir`) write `results.json`, `results.md` and ROC-curve PNGs.

    Args:
        model: a model folder (config + weights, with its tokenizer and feature extractor for zero-shot and raw
            data) or a CG-DMER model object.
        data: a prepared `DatasetDict`/`Dataset`, its `save_to_disk` folder, or a PTB-XL / CinC folder.
        settings: an `EvaluationSettings`; or pass its fields as keyword arguments.
        tokenizer: the report tokenizer (default: the one saved with the model).
        label_set: the label set to read raw data with (default: the layout's default).
        cache_dir: the `datasets` cache folder for a raw data folder.
        features: a `FeatureCache` shared by several calls (e.g. one per label set of the same records): each
            model folder is loaded and each split embedded once (default: a cache for this call).

    Returns:
        The results dict that `results.json` holds.
    """
    settings = settings or EvaluationSettings(**kwargs)
    model_dir = model if isinstance(model, (str, os.PathLike)) else None
    features = features if features is not None else FeatureCache()
    encoder = features.load_model(model)
    data = as_evaluation_data(data, label_set, model_feature_extractor(model_dir), cache_dir)
    for name in SPLIT_NAMES if set(settings.tasks) - {"zero-shot"} else ("test",):
        check_compatible(encoder, data.split(name))
    if "zero-shot" in settings.tasks and tokenizer is None:
        tokenizer = _load_tokenizer(model_dir)
    harness = _Harness(encoder, data, settings, tokenizer, features)
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
        if settings.plots:
            write_reliability_plots(harness.reliability, output_dir)
    if settings.keep_test_scores:
        results["test_scores"] = {"labels": data.labels("test").astype(np.float32), **harness.test_scores}
    return results


__all__ = ["DEFAULT_FRACTIONS", "DEFAULT_SEEDS", "SPLIT_NAMES", "TASKS", "EvaluationData", "EvaluationSettings",
           "as_evaluation_data", "evaluate_model"]
