"""The model card: evaluation results as card rows (`load_results`, `card_results`), the exact input
specification, and the card itself rendered from the Jinja template `cgdmer_hf/resources/model_card_template.md`
with every fact read from the saved folder (`make_model_card`)."""

from __future__ import annotations

import importlib.metadata
import json
import math
import re
from pathlib import Path
from typing import Any, Optional, Union

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..configuration_cgdmer import num_samples as samples_of
from .folder import CONFIG_NAME, _feature_extractor_dict, _read_json, _weight_files, code_files, count_parameters

PathLike = Union[str, Path]

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "resources" / "model_card_template.md"  # Jinja

CARD_TAGS = ["ecg", "electrocardiogram", "biosignal", "multimodal", "medical", "cgdmer", "custom_code"]

DEFAULT_TRAINING_DATA = (  # the package's default recipe; `--training-data` describes any other
    "PTB-XL (Wagner et al., *Scientific Data* 2020; PhysioNet, licence CC BY 4.0): 12-lead, 10 s ECGs from "
    "the Physikalisch-Technische Bundesanstalt, recorded 1989-1996, with their free-text reports (mostly German "
    "and English) and SCP-ECG statements. The default recipe of this package pretrains on the ECG-report pairs "
    "of the recommended folds 1-8 (`strat_fold`), validates on fold 9 and holds out fold 10 for testing, "
    "dropping the records that PTB-XL v1.0.3 removed as duplicates. CC BY 4.0 asks for attribution of PTB-XL."
)

DEFAULT_EVALUATION_PROTOCOL = (
    "Protocol of MERL and CG-DMER: PTB-XL official folds (1-8 train, 9 validation, 10 test) with the super (5), "
    "sub (23), form (19) and rhythm (12) label sets, CPSC2018 (9 classes) and Chapman-Shaoxing-Ningbo. Linear "
    "probes on frozen `get_ecg_representation` features are trained on 1 %, 10 % and 100 % of the training labels "
    "(fixed seed), the checkpoint being chosen on the validation split; zero-shot classification compares the "
    "ECG embedding with embeddings of class prompts. The metric is macro ROC-AUC over the classes present in "
    "the test split. A randomly initialised encoder is the baseline of every probe."
)

_NORMALIZATION_TEXT = {
    "zscore": "per lead, over the real (unpadded) samples: subtract the mean, divide by the standard deviation",
    "robust": "per lead, over the real samples: subtract the median, divide by IQR / 1.349",
    "minmax": "per lead, over the real samples: scale to [-1, 1]",
    "none": "none (millivolts after filtering)",
}


def load_results(results: Union[PathLike, dict, list, None]) -> list[dict[str, Any]]:
    """Read evaluation results (a JSON file path, or its parsed content) into normalised rows.

    Accepted JSON: the `results.json` (converted with `card_results`) or the
    `card_results.json` that `cgdmer evaluate` writes, or any `{"results": [ROW, ...]}` or `[ROW, ...]` with
    each ROW::

        {"task": "PTB-XL super, linear probe 10 %",  # required, free text
         "dataset": "PTB-XL",                        # required, free text
         "value": 0.871,                             # required, a finite number ("score" is an alias)
         "metric": "roc_auc",                        # optional, defaults to "roc_auc" (macro ROC-AUC)
         "split": "test",                            # optional, defaults to "test"
         "dataset_config": "super",                  # optional (label set)
         "dataset_type": "ptb-xl",                   # optional Hub dataset id, defaults to a slug of `dataset`
         "task_type": "ecg-classification"}          # optional task id, defaults to "ecg-classification"

    Returns the rows with every optional key filled. Raises `ValueError` naming a malformed row.
    """
    if results is None:
        return []
    source = results
    if isinstance(results, (str, Path)):
        path = Path(results)
        if not path.is_file():
            raise FileNotFoundError(f"Evaluation results file not found: {path}")
        source = _read_json(path)
    rows = source.get("results") if isinstance(source, dict) else source
    if isinstance(rows, list) and rows and isinstance(rows[0], dict) and "encoder" in rows[0]:
        rows = card_results(source)  # raw `cgdmer evaluate` results: per run -> per task
    if not isinstance(rows, list):
        raise ValueError('Evaluation results must be a list of rows or {"results": [rows]}')
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not row.get("task") or not row.get("dataset"):
            raise ValueError(f"Evaluation result {i} needs 'task' and 'dataset' strings, got {row!r}")
        value = row.get("value", row.get("score"))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"Evaluation result {i} ({row['task']}) needs a finite numeric 'value', got {value!r}")
        dataset = str(row["dataset"])
        out.append({
            "task": str(row["task"]),
            "dataset": dataset,
            "value": float(value),
            "metric": str(row.get("metric", "roc_auc")),
            "split": str(row.get("split", "test")),
            "dataset_config": row.get("dataset_config"),
            "dataset_type": str(row.get("dataset_type") or re.sub(r"[^a-z0-9]+", "-", dataset.lower()).strip("-")),
            "task_type": str(row.get("task_type", "ecg-classification")),
        })
    return out



def _eval_results(rows: list[dict[str, Any]]) -> list[EvalResult]:
    return [
        EvalResult(
            task_type=r["task_type"], task_name=r["task"], dataset_type=r["dataset_type"], dataset_name=r["dataset"],
            dataset_config=r["dataset_config"], dataset_split=r["split"], metric_type=r["metric"],
            # The Hub groups results by task type and dataset, so the metric name carries the task.
            metric_name=f"{r['task']} macro ROC-AUC" if r["metric"] == "roc_auc" else f"{r['task']} {r['metric']}",
            metric_value=r["value"],
        )
        for r in rows
    ]



_TASK_TITLES = {"zero-shot": "zero-shot", "linear-probe": "linear probe", "finetune": "fine-tuning"}



def card_results(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for the model card (`cgdmer push --results`) of a `cgdmer evaluate` results dict: the pretrained
    encoder's macro AUC per task and label fraction, averaged over seeds. The data set is named by the reader of
    its label set (`cgdmer_hf.data.dataset_name`), else by its folder."""
    import numpy as np

    from ..data import dataset_name

    label_set = results.get("label_set")
    dataset = dataset_name(label_set) or Path(results.get("data") or "custom").name or "custom"
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



def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)



def input_specification(config: dict[str, Any], fe: dict[str, Any], tokenizer: Optional[dict] = None
                        ) -> list[tuple[str, str]]:
    """(property, value) rows describing the exact model input, read from the saved configs."""
    ecg = config.get("ecg_config", {})
    rate = fe.get("sampling_rate", ecg.get("sampling_rate"))
    duration = fe.get("duration", ecg.get("duration"))
    leads = fe.get("lead_names", ecg.get("lead_names")) or []
    num_samples = samples_of(rate, duration) if rate and duration else None
    rows = [
        ("Sampling rate", f"{_fmt(rate)} Hz; other rates are resampled by the feature extractor (polyphase, "
                          "Kaiser-windowed FIR anti-aliasing)"),
        ("Duration", f"{_fmt(duration)} s = {num_samples} samples per lead; longer ECGs are cropped "
                     f"({fe.get('crop', 'center')}), shorter ones padded with {_fmt(fe.get('padding_value', 0.0))} "
                     "and marked 0 in `ecg_attention_mask`"),
        ("Leads and order", f"{len(leads)} leads: {', '.join(leads)}. Input leads are matched by name (aliases "
                            "such as AVL, lead II, MLII, C1 accepted), never by position; a missing lead is zeros "
                            "with `lead_mask` = 0"),
        ("Units", "millivolts: WFDB input is converted to mV from its header units; arrays are taken as given "
                  "(pass mV)"),
    ]
    if fe.get("notch_frequency"):
        rows.append(("Powerline notch", f"{_fmt(fe['notch_frequency'])} Hz (Q = {_fmt(fe.get('notch_quality'))}), "
                                        "at the input rate, before resampling"))
    else:
        rows.append(("Powerline notch", "none"))
    if fe.get("do_bandpass", False):
        low, high = fe.get("bandpass_low"), fe.get("bandpass_high")
        band = (f"band-pass {_fmt(low)}-{_fmt(high)} Hz" if low and high
                else f"high-pass {_fmt(low)} Hz" if low else f"low-pass {_fmt(high)} Hz")
        rows.append(("Filtering", f"zero-phase (forward-backward) Butterworth {band}, order "
                                  f"{fe.get('filter_order')}, at {_fmt(rate)} Hz after resampling"))
    else:
        rows.append(("Filtering", "none"))
    if "normalization" in fe:
        norm = fe["normalization"]
        rows.append(("Normalisation", f"`{norm}`: {_NORMALIZATION_TEXT.get(norm, norm)}"))
    if "max_nan_gap" in fe:
        rows.append(("Missing samples", f"NaN runs up to {_fmt(fe['max_nan_gap'])} s are linearly interpolated; "
                                        f"longer ones: `on_bad_lead={fe.get('on_bad_lead')!r}`"))
    if "flat_threshold" in fe:
        rows.append(("Flat leads", f"standard deviation below {_fmt(fe['flat_threshold'])} mV: zeros"
                                   + (", `lead_mask` = 0" if fe.get("mask_flat_leads") else "")))
    if ecg.get("patch_size") and rate:
        rows.append(("Tokens", f"patches of {ecg['patch_size']} samples ({_fmt(ecg['patch_size'] / rate)} s) per "
                               f"lead, {ecg.get('token_mode', 'lead_patch')} tokens"))
    rows.append(("Model input", f"`ecg_values` float32 (batch, {len(leads)}, {num_samples}), `lead_mask` "
                                f"(batch, {len(leads)}), `ecg_attention_mask` (batch, {num_samples})"))
    text = config.get("text_config", {})
    if tokenizer is not None or text:
        tok = (tokenizer or {}).get("tokenizer_class", "tokenizer")
        rows.append(("Report text", f"`{tok}`, vocabulary {text.get('vocab_size')}, at most "
                                    f"{text.get('max_position_embeddings')} tokens"))
    return rows



def _tower_text(config: dict[str, Any]) -> tuple[str, str, str]:
    ecg, text = config.get("ecg_config", {}), config.get("text_config", {})
    layout = {"divided": "divided attention (across time within a lead, then across leads at a time slot)",
              "joint": "joint attention over all tokens"}
    tokens = ("lead x patch tokens" if ecg.get("token_mode", "lead_patch") == "lead_patch"
              else "lead-agnostic patch tokens")
    decoder = (f"masked-ECG decoder with {layout.get(ecg.get('decoder_attention', 'joint'), 'joint attention')}"
               + (" and same-time slot pooling" if ecg.get("decoder_slot_pooling") else ""))
    ecg_tower = (f"{ecg.get('num_hidden_layers')}-layer transformer, width {ecg.get('hidden_size')}, "
                 f"{ecg.get('num_attention_heads')} heads, {tokens}, "
                 f"{layout.get(ecg.get('encoder_attention', 'joint'), 'joint attention')}; {decoder}")
    text_tower = (f"{text.get('num_hidden_layers')}-layer BERT-style encoder, width {text.get('hidden_size')}, "
                  f"vocabulary {text.get('vocab_size')}")
    heads = (f"shared encoder {config.get('shared_num_hidden_layers')} layer(s), specific encoders "
             f"{config.get('specific_num_hidden_layers')} layer(s), width {config.get('shared_hidden_size')}"
             + ("" if config.get("disentangle", True) else " (disentanglement off: shared branch only)"))
    return ecg_tower, text_tower, heads



def make_model_card(
    model_dir: PathLike,
    results_json: Union[PathLike, dict, list, None] = None,
    *,
    repo_id: Optional[str] = None,
    revision: Optional[str] = None,
    license: str = "cc-by-4.0",
    training_data: Optional[str] = None,
    evaluation_protocol: Optional[str] = None,
    pipeline_tag: str = "feature-extraction",
    tags: Optional[list[str]] = None,
    template_path: Optional[PathLike] = None,
) -> ModelCard:
    """Render the model card (`README.md`) of a model folder from the Jinja template `resources/model_card_template.md`.

    Every fact about the model (architecture, size, input specification, code files, pipeline) is read from the
    folder, so the card is true to the weights it ships with.

    Args:
        model_dir: a folder written by `save_pretrained` (see `validate_model_dir`).
        results_json: evaluation results, a JSON file or its content (format: `load_results`); they fill the
            card's `model-index` and results table.
        repo_id: Hub id used in the loading examples (default: the folder name).
        revision: commit to pin in the examples (default: a `<commit-sha>` placeholder to fill in).
        license: licence identifier of the weights (default `cc-by-4.0`, the licence of PTB-XL).
        training_data, evaluation_protocol: Markdown paragraphs replacing the default descriptions.
        pipeline_tag: Hub pipeline tag; `feature-extraction` (ECG and report embeddings) by default.
        tags: extra tags besides ecg, electrocardiogram, biosignal, multimodal, medical.
        template_path: another Jinja template (default: `cgdmer_hf/resources/model_card_template.md`).
    """
    model_dir = Path(model_dir)
    config = _read_json(model_dir / CONFIG_NAME)
    fe = _feature_extractor_dict(model_dir) or {}
    tokenizer_config = model_dir / "tokenizer_config.json"
    tokenizer = _read_json(tokenizer_config) if tokenizer_config.is_file() else None
    repo_id = repo_id or model_dir.resolve().name
    rows = load_results(results_json)
    model_name = repo_id.split("/")[-1]
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        license=license,
        tags=CARD_TAGS + [t for t in (tags or []) if t not in CARD_TAGS],
        metrics=["roc_auc"],
        model_name=model_name,
        eval_results=_eval_results(rows) or None,
    )
    pipelines = config.get("custom_pipelines") or {}
    pipeline_task = next(iter(pipelines), None)
    pipeline_impl = pipelines.get(pipeline_task, {}).get("impl", "") if pipeline_task else ""
    ecg_tower, text_tower, heads = _tower_text(config)
    template = Path(template_path) if template_path else TEMPLATE_PATH
    if not template.is_file():
        raise FileNotFoundError(f"Model card template not found: {template}")
    return ModelCard.from_template(
        card_data,
        template_path=str(template),
        model_name=model_name,
        repo_id=repo_id,
        revision=revision or "<commit-sha>",
        package_version=_package_version(),
        architecture=", ".join(config.get("architectures") or ["CGDMERModel"]),
        num_parameters=f"{count_parameters(model_dir):,}" if _weight_files(model_dir)[0].is_file() else "unknown",
        ecg_tower=ecg_tower,
        text_tower=text_tower,
        heads=heads,
        projection_dim=config.get("projection_dim"),
        input_spec=input_specification(config, fe, tokenizer),
        preprocessor_json=json.dumps(fe, indent=2, sort_keys=True) if fe else "",
        pipeline_task=pipeline_task,
        pipeline_file=pipeline_impl.rsplit(".", 1)[0] + ".py",
        code_files=", ".join(f"`{f}`" for f in code_files(model_dir)) or "(none)",
        training_data=training_data or DEFAULT_TRAINING_DATA,
        evaluation_protocol=evaluation_protocol or DEFAULT_EVALUATION_PROTOCOL,
        results=[{**r, "value": f"{r['value']:.4f}",
                  "dataset": r["dataset"] + (f" ({r['dataset_config']})" if r["dataset_config"] else "")}
                 for r in rows],
        results_source=Path(results_json).name if isinstance(results_json, (str, Path)) else None,
    )



def _package_version() -> str:
    try:
        return importlib.metadata.version("cgdmer_hf")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"

