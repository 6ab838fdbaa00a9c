"""Evaluation: zero-shot classification, linear probing and fine-tuning, scored by macro ROC-AUC.

The protocol is MERL's / CG-DMER's: PTB-XL strat_fold 1-8 train, 9 validation, 10 test; linear probes on frozen
`[shared; specific]` features at 1 %, 10 % and 100 % of the training labels with fixed seeds; every choice (weight
decay, fine-tuning checkpoint, prompts) is made on the validation split. The test split is read once, at the end,
by `score`; no function that selects anything receives it. A randomly initialised encoder of the same
configuration goes through the same probe in every table.

ROC-AUCs are computed by the local `evaluate` metric module `cgdmer_hf/metrics/roc_auc` (offline), macro-averaged
over the classes that have positives (and negatives) in the test split; the others are listed as excluded.

    >>> from cgdmer_hf.evaluation import evaluate_model
    >>> results = evaluate_model("path/to/model", "path/to/prepared_dataset", output_dir="eval/")

One module per job: `metrics` (ROC-AUC, bootstrap CIs), `embeddings` (ECG features, `FeatureCache`, export),
`zero_shot` (the model's zero-shot scoring on prepared data, prompt choice), `calibration` (ECE, Brier score,
reliability diagrams, the Platt fit `calibrate_zero_shot` saved as `config.zero_shot_calibration`), `retrieval`
(ECG <-> report recall@k), `linear_probe`, `finetune`, `harness` (`evaluate_model`) and `report` (results files,
tables, ROC plots). Data folders are read by `cgdmer_hf.data`, the
model-card rows made by `cgdmer_hf.hub.card_results`.
"""

from ..data import ECG_INPUT_NAMES, check_compatible, load_data_folder, model_feature_extractor
from ..hub import card_results  # the model-card rows, made by the hub module
from .calibration import (
    apply_calibration,
    brier_score,
    calibrate_zero_shot,
    calibration_summary,
    expected_calibration_error,
    fit_zero_shot_calibration,
    fit_zero_shot_centre,
    plot_reliability,
    reliability,
    reliability_figure,
)
from .embeddings import EMBEDDING_KINDS, FeatureCache, compute_embeddings, export_embeddings, load_model, random_init_like
from .finetune import FinetuneSettings, classifier_scores, ecg_collate, finetune_classifier
from .harness import (
    DEFAULT_FRACTIONS,
    DEFAULT_SEEDS,
    SPLIT_NAMES,
    TASKS,
    EvaluationData,
    EvaluationSettings,
    as_evaluation_data,
    evaluate_model,
)
from .linear_probe import DEFAULT_WEIGHT_DECAYS, LinearProbe, fit_linear_probe
from .metrics import METRIC_PATH, bootstrap_ci, load_roc_auc_metric, macro_roc_auc, roc_auc, score
from .report import markdown_tables, plot_roc_curves, write_results
from .retrieval import recall_at_k, retrieval_recall, retrieval_rows
from .zero_shot import align_prompts, label_keys, tune_prompts, zero_shot_labels, zero_shot_logits, zero_shot_scores

ECG_COLUMNS = ECG_INPUT_NAMES  # the name of earlier versions


__all__ = [
    "DEFAULT_FRACTIONS",
    "DEFAULT_SEEDS",
    "DEFAULT_WEIGHT_DECAYS",
    "ECG_COLUMNS",
    "EMBEDDING_KINDS",
    "METRIC_PATH",
    "SPLIT_NAMES",
    "TASKS",
    "EvaluationData",
    "EvaluationSettings",
    "FeatureCache",
    "FinetuneSettings",
    "LinearProbe",
    "align_prompts",
    "apply_calibration",
    "as_evaluation_data",
    "bootstrap_ci",
    "brier_score",
    "calibrate_zero_shot",
    "calibration_summary",
    "card_results",
    "check_compatible",
    "classifier_scores",
    "compute_embeddings",
    "ecg_collate",
    "evaluate_model",
    "expected_calibration_error",
    "export_embeddings",
    "finetune_classifier",
    "fit_linear_probe",
    "fit_zero_shot_calibration",
    "fit_zero_shot_centre",
    "label_keys",
    "load_data_folder",
    "load_model",
    "load_roc_auc_metric",
    "macro_roc_auc",
    "markdown_tables",
    "model_feature_extractor",
    "plot_reliability",
    "plot_roc_curves",
    "random_init_like",
    "recall_at_k",
    "reliability",
    "reliability_figure",
    "retrieval_recall",
    "retrieval_rows",
    "roc_auc",
    "score",
    "tune_prompts",
    "write_results",
    "zero_shot_labels",
    "zero_shot_logits",
    "zero_shot_scores",
]
