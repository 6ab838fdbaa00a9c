"""`cgdmer pretrain --data DATA --output-dir OUT [--preset small] [--config run.json|run.yaml] ...`: CG-DMER
pretraining with `transformers.Trainer` (`cgdmer_hf.training.pretrain`).

Every option can also come from a JSON or YAML file (`--config`), keyed by the option name (`max_steps` or
`max-steps`); options given on the command line win. Multi-process: `torchrun --nproc_per_node N -m cgdmer_hf.cli
pretrain ...` (or the `cgdmer` script path instead of `-m cgdmer_hf.cli`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

HELP = ("Pretrain CG-DMER on ECG-report pairs with the transformers Trainer (DDP/FSDP through torchrun) and save a "
        "complete model folder.")

# Option defaults; `None` on the parser means "not given", so a config file can fill it.
DEFAULTS: dict[str, Any] = {
    "data": None, "data_dir": None, "eval_data": None, "output_dir": None, "preset": "small",
    "tokenizer": "train", "max_steps": 1000, "batch_size": 32, "eval_batch_size": None,
    "gradient_accumulation_steps": 1, "learning_rate": 3e-4, "lr_scheduler": "cosine", "warmup_ratio": 0.05,
    "weight_decay": 0.05, "max_grad_norm": 1.0, "logging_steps": 50, "eval_steps": 500, "save_steps": 500,
    "save_total_limit": 3, "seed": 42, "bf16": None, "mlm_probability": None, "zero_shot": "auto",
    "num_workers": 0, "gradient_checkpointing": False, "fsdp": None, "report_to": "none", "resume": None,
    "overwrite": False, "cpu": False, "max_train_samples": None, "cache_dir": None, "disable_tqdm": False,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--config", default=None, metavar="FILE", help="JSON/YAML file of options (command-line options win)")
    add("--data", "--dataset", dest="data", default=None,
        help="training data: a prepared dataset folder (save_to_disk; a DatasetDict uses its train/validation "
             "splits), a raw data folder (PTB-XL, MIMIC-IV-ECG; layout detected), 'sample' (the bundled PTB-XL "
             "sample), or a reader name (ptbxl, mimic) with --data-dir")
    add("--data-dir", default=None, help="data folder for a reader name given as --data")
    add("--eval-data", default=None,
        help="validation data (same forms as --data); default: the validation split (PTB-XL fold 9) when there is one")
    add("--output-dir", "-o", default=None, help="folder for checkpoints and the final model (required)")
    add("--preset", default=None, help="model size: tiny, small (default), base")
    add("--tokenizer", default=None,
        help="'train' (default: WordPiece on the training reports), 'default' (bundled), or a tokenizer folder")
    add("--max-steps", type=int, default=None, help="optimizer steps (default 1000)")
    add("--batch-size", type=int, default=None, help="ECG-report pairs per device and step (default 32)")
    add("--eval-batch-size", type=int, default=None, help="per device in evaluation (default: --batch-size)")
    add("--gradient-accumulation-steps", type=int, default=None, help="micro-batches per step (default 1)")
    add("--learning-rate", "--lr", dest="learning_rate", type=float, default=None, help="peak (default 3e-4)")
    add("--lr-scheduler", default=None, help="transformers scheduler name: cosine (default), linear, constant, ...")
    add("--warmup-ratio", type=float, default=None, help="fraction of steps of linear warmup (default 0.05)")
    add("--weight-decay", type=float, default=None, help="AdamW weight decay (default 0.05)")
    add("--max-grad-norm", type=float, default=None, help="gradient clipping (default 1.0; 0 = off)")
    add("--logging-steps", type=int, default=None, help="log every N steps (default 50)")
    add("--eval-steps", type=int, default=None, help="evaluate every N steps (default 500)")
    add("--save-steps", type=int, default=None, help="checkpoint every N steps (default 500)")
    add("--save-total-limit", type=int, default=None, help="checkpoints kept (default 3)")
    add("--seed", type=int, default=None, help="seed of weights, data order and masks (default 42)")
    add("--bf16", dest="bf16", action="store_true", default=None, help="bf16 mixed precision (default: on CUDA "
        "devices that support it)")
    add("--no-bf16", dest="bf16", action="store_false", help="train in float32")
    add("--mlm-probability", type=float, default=None, help="fraction of report tokens masked (default: config)")
    add("--zero-shot", default=None,
        help="zero-shot macro AUC on the validation split at each evaluation: 'auto' (default: when it has labels "
             "with a shipped prompt set), a prompt set name or JSON file, or 'none'")
    add("--num-workers", type=int, default=None, help="data loader workers per process (default 0)")
    add("--gradient-checkpointing", action="store_true", default=None, help="trade compute for memory")
    add("--fsdp", default=None, help="FSDP mode for TrainingArguments, e.g. 'full_shard auto_wrap' (with torchrun)")
    add("--report-to", default=None, help="tensorboard, wandb, ... (default none)")
    add("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
        help="resume from a checkpoint folder, a run folder (its last checkpoint), or, without a value, the last "
             "checkpoint in --output-dir")
    add("--overwrite", action="store_true", default=None, help="allow an --output-dir that holds a model")
    add("--cpu", action="store_true", default=None, help="train on the CPU even when a GPU is present")
    add("--max-train-samples", type=int, default=None, help="use only the first N training rows")
    add("--cache-dir", default=None, help="datasets cache folder for raw data folders")
    add("--disable-tqdm", action="store_true", default=None, help="no progress bar (logs are printed instead)")


def _read_config(path: Path) -> Any:
    """The parsed JSON or YAML config file; a syntax error is a `ValueError` naming the file and the line."""
    if not path.is_file():
        raise FileNotFoundError(f"Config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise ValueError(f"Config file {path} is not valid YAML{where}: {getattr(err, 'problem', None) or err}"
                             ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"Config file {path} is not valid JSON: {err}") from None


def _option_types() -> dict[str, type]:
    """The type of each numeric or boolean option, read from the parser's `type=` and flags."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    types: dict[str, type] = {}
    for action in parser._actions:
        if action.type in (int, float):
            types[action.dest] = action.type
        elif action.nargs == 0 and isinstance(action.const, bool):  # store_true / store_false
            types[action.dest] = bool
    return types


def _typed(kind: Optional[type], key: str, value: Any, path: Path) -> Any:
    """A config-file value as its option's type `kind` (YAML reads `1e-3` as a string); a `ValueError` naming the
    option when it is not one."""
    if value is None or kind is None or type(value) is kind:
        return value
    try:
        if kind is bool or isinstance(value, bool):
            raise ValueError(value)
        number = float(value)
        if kind is int and not number.is_integer():
            raise ValueError(value)
        return kind(number)
    except (TypeError, ValueError):
        expected = {bool: "true or false", int: "an integer", float: "a number"}[kind]
        raise ValueError(f"Option {key} in {path} must be {expected}, got {value!r}") from None


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """Merge the defaults, the config file and the command line (which wins); unknown file keys are an error."""
    options = dict(DEFAULTS)
    if args.config:
        path = Path(args.config)
        data = _read_config(path)
        if not isinstance(data, dict):
            raise ValueError(f"Config file {path} must hold a mapping of option names to values")
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(data) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"Unknown option(s) in {path}: {unknown}")
        types = _option_types()
        options.update({k: _typed(types.get(k), k, v, path) for k, v in data.items()})
    options.update({k: v for k, v in vars(args).items() if k in DEFAULTS and v is not None})
    return options


def _check_options(o: dict[str, Any]) -> None:
    from ..configuration_cgdmer import PRESETS

    if not o["output_dir"]:
        raise ValueError("--output-dir is required")
    if not o["data"]:
        raise ValueError("--data is required (a prepared dataset folder, a raw data folder, 'sample' or a reader)")
    if o["preset"] not in PRESETS:
        raise ValueError(f"Unknown preset {o['preset']!r}; choose one of {sorted(PRESETS)}")
    for key in ("max_steps", "batch_size", "gradient_accumulation_steps", "logging_steps", "eval_steps", "save_steps"):
        if int(o[key]) < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be positive, got {o[key]}")
    if not o["learning_rate"] > 0:
        raise ValueError(f"--learning-rate must be positive, got {o['learning_rate']}")
    if not 0 <= o["warmup_ratio"] < 1:
        raise ValueError(f"--warmup-ratio must be in [0, 1), got {o['warmup_ratio']}")


def _splits(data: Any) -> tuple[Any, Any]:
    """(train, validation) of a loaded dataset: a DatasetDict's splits, or a Dataset split by PTB-XL folds when
    it has a `fold` column with validation records."""
    from datasets import Dataset, DatasetDict

    if isinstance(data, DatasetDict):
        if "train" not in data:
            raise ValueError(f"The dataset has no 'train' split (splits: {sorted(data)})")
        return data["train"], data.get("validation")
    if isinstance(data, Dataset) and "fold" in data.column_names:
        from ..data import split_by_fold

        parts = split_by_fold(data)
        if len(parts.get("validation", [])) and len(parts.get("train", [])):
            return parts["train"], parts["validation"]
    return data, None


def load_data(spec: str, data_dir: str | None = None, cache_dir: str | None = None) -> tuple[Any, Any]:
    """(train, validation or None) from `--data`: 'sample', a reader name with `data_dir`, a prepared dataset
    folder or a raw data folder."""
    from ..data import READERS, load_data_folder

    if spec == "sample":
        from ..samples import sample_data_dir

        spec, data_dir = "ptbxl", str(sample_data_dir())
    if spec in READERS:
        reader = READERS[spec]
        if not data_dir:
            raise ValueError(f"--data {spec} needs --data-dir (the {spec} folder)")
        if not Path(data_dir).is_dir():
            raise FileNotFoundError(f"Data folder not found: {data_dir}")
        if not reader.reports:
            raise ValueError(f"{reader.display_name} folders have no reports; CG-DMER pretraining needs ECG-report "
                             "pairs")
        if reader.folds:
            return (reader.load(data_dir, split="train", cache_dir=cache_dir),
                    reader.load(data_dir, split="validation", cache_dir=cache_dir))
        return reader.load(data_dir, cache_dir=cache_dir, **({"streaming": True} if reader.streams else {})), None

    return _splits(load_data_folder(spec, cache_dir=cache_dir, require_labels=False))


def run(args: argparse.Namespace) -> int:
    o = load_options(args)
    _check_options(o)
    from ..training import (NonFiniteLossError, check_output_dir, check_tokenizer_source, pretrain,
                            resolve_checkpoint)

    # Before any (slow) data loading; `pretrain` takes the resolved checkpoint as it is (it checks the tokenizer
    # source again, for callers of the library, which costs a stat).
    checkpoint = resolve_checkpoint(o["resume"], o["output_dir"]) if o["resume"] not in (None, False) else None
    if checkpoint is None:
        check_tokenizer_source(o["tokenizer"])
    check_output_dir(o["output_dir"], checkpoint, bool(o["overwrite"]))
    if checkpoint is not None:
        print(f"Resuming from {checkpoint}", flush=True)

    train, val = load_data(o["data"], o["data_dir"], o["cache_dir"])
    if o["eval_data"]:
        eval_train, eval_val = load_data(o["eval_data"], o["data_dir"], o["cache_dir"])
        val = eval_val if eval_val is not None else eval_train
    if o["max_train_samples"]:
        train = train.take(int(o["max_train_samples"]))
    zero_shot = None if str(o["zero_shot"]).lower() == "none" else o["zero_shot"]
    if zero_shot == "auto" and not _has_prompt_set(val):
        zero_shot = None

    training_args = dict(
        max_steps=o["max_steps"], per_device_train_batch_size=o["batch_size"],
        per_device_eval_batch_size=o["eval_batch_size"] or o["batch_size"],
        gradient_accumulation_steps=o["gradient_accumulation_steps"], learning_rate=o["learning_rate"],
        lr_scheduler_type=o["lr_scheduler"], warmup_ratio=o["warmup_ratio"], weight_decay=o["weight_decay"],
        max_grad_norm=o["max_grad_norm"], logging_steps=o["logging_steps"], save_steps=o["save_steps"],
        save_total_limit=o["save_total_limit"], seed=o["seed"], dataloader_num_workers=o["num_workers"],
        report_to=o["report_to"],
        use_cpu=bool(o["cpu"]), disable_tqdm=bool(o["disable_tqdm"]),
    )
    if val is not None:
        training_args.update(eval_strategy="steps", eval_steps=o["eval_steps"])
    if o["gradient_checkpointing"]:
        training_args["gradient_checkpointing"] = True
    if o["bf16"] is not None:
        training_args["bf16"] = bool(o["bf16"])
    if o["fsdp"]:
        training_args.update(fsdp=o["fsdp"], fsdp_config={
            "transformer_layer_cls_to_wrap": ["CGDMERLayer", "CGDMERDividedLayer"]})
    try:
        trainer = pretrain(
            train, o["output_dir"], eval_dataset=val, config=o["preset"], tokenizer=o["tokenizer"],
            training_args=training_args, resume_from_checkpoint=checkpoint, overwrite_output_dir=bool(o["overwrite"]),
            mlm_probability=o["mlm_probability"], zero_shot_prompts=zero_shot,
        )
    except NonFiniteLossError as err:
        print(f"cgdmer pretrain: error: {err}", file=sys.stderr)
        return 1
    if trainer.is_world_process_zero():
        print(f"Saved the pretrained model to {o['output_dir']} (step {trainer.state.global_step}); load it with "
              "AutoModel.from_pretrained / AutoProcessor.from_pretrained or the zero-shot-ecg-classification pipeline")
    return 0


def _has_prompt_set(dataset: Any) -> bool:
    """Whether a validation split carries labels of a label set with a shipped prompt set."""
    if dataset is None or "labels" not in (getattr(dataset, "column_names", None) or []):
        return False
    from ..data import label_set
    from ..prompts import label_set_prompts

    try:
        return label_set(dataset) in label_set_prompts()
    except ValueError:
        return False
