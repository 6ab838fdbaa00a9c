"""Sharing CG-DMER models on the Hugging Face Hub: folder validation, the generated model card, and the push.

A shareable folder is what `model.save_pretrained(d)`, `processor.save_pretrained(d)` (and the pipeline's
`save_pretrained(d)`) write: safetensors weights, `config.json` with `auto_map`, the copied model/processing/
pipeline code, the feature extractor and tokenizer files. `push_model_dir` checks it, renders the model card from
the `MODEL_CARD.md` template and uploads everything in one commit, without writing into the folder.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import math
import re
from pathlib import Path
from typing import Any, Optional, Union

from huggingface_hub import CommitInfo, CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import validate_repo_id

PathLike = Union[str, Path]

TEMPLATE_PATH = Path(__file__).resolve().parent / "resources" / "MODEL_CARD.md"  # top-level MODEL_CARD.md links here
CONFIG_NAME = "config.json"
FEATURE_EXTRACTOR_NAME = "preprocessor_config.json"
PROCESSOR_NAME = "processor_config.json"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model")
SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
# Files that unpickle (execute code) on load: never uploaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
# NumPy files, uploaded only when they hold plain arrays (an object dtype is a pickle inside).
ARRAY_SUFFIXES = (".npy", ".npz")
# What `cgdmer pretrain` writes besides the model (Trainer checkpoints and pickled arguments): left out of the
# upload, so that a pretraining output folder is pushed as it is (patterns of `huggingface_hub`'s upload rules).
TRAINING_FILES = ("checkpoint-*/", "training_args.bin")
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


# ----------------------------------------------------------------------------------------------------------
# Writing a model folder
# ----------------------------------------------------------------------------------------------------------
def save_model_dir(folder: PathLike, model: Any, processor: Any,
                   pipeline_task: Optional[str] = "zero-shot-ecg-classification") -> Path:
    """Save everything a Hub repository needs into `folder`: the model (safetensors, config with `auto_map`,
    model code), the processor (feature extractor, tokenizer, processing code) and, unless `pipeline_task` is
    None, the pipeline (`custom_pipelines` in the config and the pipeline code)."""
    folder = Path(folder)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    if pipeline_task is not None:
        from transformers import pipeline

        pipe = pipeline(pipeline_task, model=model, feature_extractor=processor.feature_extractor,
                        tokenizer=processor.tokenizer)
        pipe.save_pretrained(folder)
    return folder


# ----------------------------------------------------------------------------------------------------------
# Reading and validating a model folder
# ----------------------------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"Could not read {path}: {err}") from None


def _feature_extractor_dict(model_dir: Path) -> Optional[dict[str, Any]]:
    """The saved feature-extractor settings: `preprocessor_config.json`, or the `feature_extractor` entry of a
    transformers-5 `processor_config.json`."""
    if (model_dir / FEATURE_EXTRACTOR_NAME).is_file():
        return _read_json(model_dir / FEATURE_EXTRACTOR_NAME)
    if (model_dir / PROCESSOR_NAME).is_file():
        processor = _read_json(model_dir / PROCESSOR_NAME)
        if isinstance(processor.get("feature_extractor"), dict):
            return processor["feature_extractor"]
    return None


def _auto_map_modules(auto_map: Any) -> set[str]:
    """Module names referenced by an `auto_map` (values like `"modeling_x.Cls"`, `"repo--modeling_x.Cls"` or
    `[slow, fast]` lists)."""
    refs: list[str] = []
    for value in (auto_map or {}).values():
        refs.extend(v for v in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(v, str))
    return {ref.split("--")[-1].rsplit(".", 1)[0] for ref in refs}


def _relative_imports(path: Path) -> set[str]:
    """Sibling modules imported with `from .x import ...` (what transformers copies with remote code)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}


def code_files(model_dir: PathLike) -> list[str]:
    """The `.py` files a `trust_remote_code=True` load imports from this folder: the modules named in the
    `auto_map` of every config and in `custom_pipelines`, plus their `from .x import` siblings. Raises
    `FileNotFoundError` naming a missing one."""
    model_dir = Path(model_dir)
    modules: set[str] = set()
    for name in (CONFIG_NAME, FEATURE_EXTRACTOR_NAME, PROCESSOR_NAME, "tokenizer_config.json"):
        if (model_dir / name).is_file():
            config = _read_json(model_dir / name)
            modules |= _auto_map_modules(config.get("auto_map"))
            for task in (config.get("custom_pipelines") or {}).values():
                modules |= _auto_map_modules({"impl": task.get("impl")})
    found, todo = set(), sorted(modules)
    while todo:
        module = todo.pop()
        if module in found:
            continue
        path = model_dir / f"{module}.py"
        if not path.is_file():
            raise FileNotFoundError(
                f"{model_dir} is not a complete model: {path.name} (named in auto_map/custom_pipelines or imported "
                "by another code file) is missing; save with register_for_auto_class so the code is copied"
            )
        found.add(module)
        todo.extend(_relative_imports(path) - found)
    return sorted(f"{m}.py" for m in found)


def _has_objects(path: Path) -> bool:
    """Whether a `.npy` file, or an array of a `.npz` file, holds Python objects (a pickle inside): what
    `np.load(..., allow_pickle=False)` refuses. A file it cannot read counts as one."""
    import zipfile

    import numpy as np

    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)  # `mmap_mode` reads a .npy header only
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                for name in loaded.files:
                    _ = loaded[name]  # reading a member is what refuses an object array
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # numpy: ValueError for object arrays and pickles
        return True
    return False


def _weight_files(model_dir: Path) -> list[Path]:
    if (model_dir / SAFE_WEIGHTS_INDEX_NAME).is_file():
        index = _read_json(model_dir / SAFE_WEIGHTS_INDEX_NAME)
        return [model_dir / name for name in sorted(set(index.get("weight_map", {}).values()))]
    return [model_dir / SAFE_WEIGHTS_NAME]


def _count_file_parameters(path: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def count_parameters(model_dir: PathLike) -> int:
    """Number of parameters stored in the folder's safetensors files (read from their headers only)."""
    return sum(_count_file_parameters(path) for path in _weight_files(Path(model_dir)))


def validate_model_dir(model_dir: PathLike) -> dict[str, Any]:
    """Check that `model_dir` holds a complete, loadable CG-DMER model and return its `config.json`.

    Complete means: `config.json` of model type `cgdmer` with an `auto_map`; safetensors weights whose headers
    read and whose data cover the file (a truncated file fails here); no pickle files among those uploaded (an
    object-dtype `.npy`/`.npz` is one; the training files of `cgdmer pretrain`, [`TRAINING_FILES`], are not
    uploaded); the feature extractor (`preprocessor_config.json` or `processor_config.json`) agreeing with the
    model's sampling rate, duration and leads; tokenizer files; and every code file that `trust_remote_code=True`
    would import.

    Raises:
        FileNotFoundError: the folder or one of the required files is missing (the message names it).
        ValueError: a file is invalid or inconsistent (the message names it).
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"Model folder not found: {model_dir}")

    def missing(what: str, hint: str) -> FileNotFoundError:
        return FileNotFoundError(f"{model_dir} is not a complete model: {what} is missing ({hint})")

    if not (model_dir / CONFIG_NAME).is_file():
        raise missing(CONFIG_NAME, "save the model with model.save_pretrained(folder)")
    config = _read_json(model_dir / CONFIG_NAME)
    if config.get("model_type") != "cgdmer":
        raise ValueError(f"{model_dir / CONFIG_NAME} is not a CG-DMER config (model_type={config.get('model_type')!r})")
    if not config.get("auto_map"):
        raise ValueError(f"{model_dir / CONFIG_NAME} has no auto_map: save with the cgdmer_hf package imported")

    files = _files_to_upload(model_dir)
    pickles = [p.relative_to(model_dir).as_posix() for p in files if p.suffix in PICKLE_SUFFIXES]
    pickles += [p.relative_to(model_dir).as_posix() for p in files if p.suffix in ARRAY_SUFFIXES and _has_objects(p)]
    if pickles:
        raise ValueError(f"{model_dir} holds pickle files {pickles} (object arrays in .npy/.npz are pickles); only "
                         "safetensors weights and plain arrays are shared (remove them)")
    from safetensors import SafetensorError

    for path in _weight_files(model_dir):
        if not path.is_file():
            raise missing(f"the weights file {path.name}", "save the model with model.save_pretrained(folder)")
        try:
            _count_file_parameters(path)
        except (SafetensorError, OSError) as err:
            raise ValueError(f"Weights file {path} is unreadable (truncated or corrupt): {err}") from None

    fe = _feature_extractor_dict(model_dir)
    if fe is None:
        raise missing(f"the feature extractor ({FEATURE_EXTRACTOR_NAME} or {PROCESSOR_NAME})",
                      "save the processor with processor.save_pretrained(folder)")
    if not any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        raise missing(f"the tokenizer (one of {list(TOKENIZER_FILES)})",
                      "save the processor with processor.save_pretrained(folder)")
    ecg = config.get("ecg_config", {})
    for key in ("sampling_rate", "duration", "lead_names"):
        if key in fe and key in ecg and fe[key] != ecg[key]:
            raise ValueError(
                f"The feature extractor's {key}={fe[key]!r} does not match the model's ecg_config.{key}={ecg[key]!r} "
                f"in {model_dir}: the saved preprocessing would not produce the model's input"
            )
    code_files(model_dir)
    return config


# ----------------------------------------------------------------------------------------------------------
# Evaluation results
# ----------------------------------------------------------------------------------------------------------
def load_results(results: Union[PathLike, dict, list, None]) -> list[dict[str, Any]]:
    """Read evaluation results (a JSON file path, or its parsed content) into normalised rows.

    Accepted JSON: the `results.json` (converted with `cgdmer_hf.evaluation.card_results`) or the
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
        from .evaluation import card_results  # raw `cgdmer evaluate` results: per run -> per task

        rows = card_results(source)
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


# ----------------------------------------------------------------------------------------------------------
# Model card
# ----------------------------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def input_specification(config: dict[str, Any], fe: dict[str, Any], tokenizer: Optional[dict] = None
                        ) -> list[tuple[str, str]]:
    """(property, value) rows describing the exact model input, read from the saved configs."""
    ecg = config.get("ecg_config", {})
    rate = fe.get("sampling_rate", ecg.get("sampling_rate"))
    duration = fe.get("duration", ecg.get("duration"))
    leads = fe.get("lead_names", ecg.get("lead_names")) or []
    num_samples = int(round(rate * duration)) if rate and duration else None
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
    """Render the model card (`README.md`) of a model folder from the `MODEL_CARD.md` Jinja template.

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
        template_path: another Jinja template (default: the top-level `MODEL_CARD.md`).
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


# ----------------------------------------------------------------------------------------------------------
# Push
# ----------------------------------------------------------------------------------------------------------
def _sorted_files(model_dir: Path) -> tuple[list[Path], list[Path]]:
    """The files of the folder to upload, and those left out as training files of `cgdmer pretrain`
    ([`TRAINING_FILES`]); hidden files, caches and a local README.md (replaced by the card) are in neither."""
    from huggingface_hub.utils import filter_repo_objects

    def key(path: Path) -> str:
        return path.relative_to(model_dir).as_posix()

    files = [p for p in sorted(model_dir.rglob("*")) if p.is_file() and not any(
        part.startswith(".") or part == "__pycache__" for part in p.relative_to(model_dir).parts)]
    training = list(filter_repo_objects(files, allow_patterns=list(TRAINING_FILES), key=key))
    kept = [p for p in files if p not in training and key(p) != "README.md"]
    return kept, training


def _files_to_upload(model_dir: Path) -> list[Path]:
    return _sorted_files(model_dir)[0]


def left_out_training_files(model_dir: PathLike) -> list[str]:
    """The top-level entries of a folder that the upload leaves out as training files ([`TRAINING_FILES`]), a
    folder with a trailing `/`."""
    model_dir = Path(model_dir)
    parts = [p.relative_to(model_dir).parts for p in _sorted_files(model_dir)[1]]
    return sorted({part[0] + ("/" if len(part) > 1 else "") for part in parts})


def push_model_dir(
    model_dir: PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: Optional[str] = None,
    commit_message: str = "Upload CG-DMER model",
    results_json: Union[PathLike, dict, list, None] = None,
    token: Optional[str] = None,
    **card_kwargs: Any,
) -> CommitInfo:
    """Upload a saved CG-DMER model folder to the Hub as one commit, with a generated `README.md` model card.

    The folder is validated first (`validate_model_dir`) and never written to: the card is generated in memory
    and replaces any `README.md` of the folder in the upload. Everything goes into a single commit (one
    `create_commit` call), so a failed upload leaves the repository as it was.

    Args:
        model_dir: folder written by `model.save_pretrained` + `processor.save_pretrained` (+ the pipeline's).
        repo_id: `namespace/name` (or `name` in your own namespace); created if needed.
        private: create the repository as private (ignored when it exists already).
        revision: branch to push to (created from `main` if needed); default `main`.
        commit_message: summary of the commit.
        results_json: evaluation results for the card (see `load_results`).
        token: Hub token (default: the saved login / `HF_TOKEN`).
        **card_kwargs: passed to `make_model_card` (license, training_data, ...).

    Returns:
        The `CommitInfo` of the new commit (`.oid` is the revision to pin).

    Raises:
        ValueError / FileNotFoundError: invalid repo id, incomplete or invalid folder, invalid results.
        huggingface_hub.errors.HfHubHTTPError: the Hub refused or failed the upload (nothing was committed).
    """
    model_dir = Path(model_dir)
    try:
        validate_repo_id(repo_id)
    except ValueError as err:
        raise ValueError(f"Invalid repo id {repo_id!r}: {err}") from None
    validate_model_dir(model_dir)
    load_results(results_json)  # fail on bad results before any network call
    files = _files_to_upload(model_dir)
    api = HfApi(token=token)
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        card = make_model_card(model_dir, results_json, repo_id=repo_id, **card_kwargs)
        operations = [CommitOperationAdd(path_in_repo=p.relative_to(model_dir).as_posix(), path_or_fileobj=str(p))
                      for p in files]
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode("utf-8")))
        return api.create_commit(repo_id, operations, commit_message=commit_message, revision=revision)
    except HfHubHTTPError as err:
        err.append_to_message(f"\nPushing {model_dir} to {repo_id} failed; nothing was committed and the local "
                              "folder is unchanged.")
        raise


__all__ = [
    "code_files",
    "count_parameters",
    "input_specification",
    "left_out_training_files",
    "load_results",
    "make_model_card",
    "push_model_dir",
    "save_model_dir",
    "validate_model_dir",
]
