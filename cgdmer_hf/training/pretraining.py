"""`pretrain`: the whole pretraining job (tokenizer, config, model, arguments, training, resume) saved as a complete
model folder, and the pieces it is made of."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase, Trainer, TrainerCallback, TrainingArguments, set_seed

from ..configuration_cgdmer import CGDMERConfig
from ..data import ECG_INPUT_NAMES, ecg_batches
from ..modeling_cgdmer import ZERO_SHOT_CENTRE_ECGS, CGDMERForPreTraining
from ..processing_cgdmer import CGDMERProcessor
from .checkpoints import VerifiedCheckpoint, _set_aside_checkpoints, check_output_dir, resolve_checkpoint
from ..reports import clean_report_or_empty
from .collator import REPORT_COLUMN, CGDMERPretrainingCollator, _is_iterable
from .trainer import CGDMERPretrainer, ZeroShotEvaluation

logger = logging.getLogger("cgdmer_hf.training")

CENTRE_REPORTS = 50_000  # training reports averaged into the zero-shot centre (a streaming data set: its first ones)
_SHARED_TOKENIZER_DIR = ".report-tokenizer"  # written for the other processes of a multi-process run, then removed



def bf16_supported(use_cpu: bool = False) -> bool:
    """Whether to train in bf16 by default: on a CUDA device that supports it (on CPU bf16 autocast is optional
    and off by default)."""
    return not use_cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported()



def pretraining_arguments(output_dir: Union[str, os.PathLike], **overrides: Any) -> TrainingArguments:
    """`TrainingArguments` with the settings CG-DMER pretraining needs and sensible defaults.

    Always: `remove_unused_columns=False` (the collator reads the raw report), `label_names=[]` (the model
    computes its loss without labels, so evaluation reports `eval_loss`), `prediction_loss_only=True` (no outputs
    gathered in evaluation). Defaults, all overridable: AdamW, lr 3e-4, cosine schedule with 5 % warmup,
    weight decay 0.05, gradient clipping 1.0, bf16 where the device supports it, checkpoints every 500 steps
    (safetensors, last 3 kept), logging every 50 steps, no external reporting.
    `warmup_ratio` is accepted and turned into `warmup_steps`.
    """
    max_steps = int(overrides.get("max_steps", -1) or -1)
    warmup_ratio = overrides.pop("warmup_ratio", None)
    if warmup_ratio is not None and "warmup_steps" not in overrides:
        if max_steps <= 0:
            raise ValueError("warmup_ratio needs max_steps")
        overrides["warmup_steps"] = int(round(warmup_ratio * max_steps))
    args: dict[str, Any] = dict(
        learning_rate=3e-4, lr_scheduler_type="cosine", weight_decay=0.05, max_grad_norm=1.0,
        per_device_train_batch_size=32, logging_steps=50, save_steps=500, save_total_limit=3, report_to="none",
        seed=42,
    )
    if max_steps > 0 and "warmup_steps" not in overrides:
        args["warmup_steps"] = int(round(0.05 * max_steps))
    args.update(overrides)
    args.setdefault("bf16", bf16_supported(bool(args.get("use_cpu", False))))
    args.setdefault("per_device_eval_batch_size", args["per_device_train_batch_size"])
    for key, value in (("remove_unused_columns", False), ("label_names", []), ("prediction_loss_only", True)):
        if key in overrides and overrides[key] != value:
            raise ValueError(f"CG-DMER pretraining needs {key}={value!r}")
        args[key] = value
    return TrainingArguments(output_dir=str(output_dir), **args)



def _reports(dataset: Any, limit: Optional[int] = None) -> Iterable[Any]:
    """The raw reports of a dataset (the first `limit` of them)."""
    if _is_iterable(dataset):
        stream = dataset.select_columns([REPORT_COLUMN])
        yield from (row[REPORT_COLUMN] for row in (stream.take(limit) if limit is not None else stream))
    else:
        rows = dataset if limit is None or limit >= len(dataset) else dataset.select(range(limit))
        yield from rows.select_columns([REPORT_COLUMN]).with_format(None)[REPORT_COLUMN]



def prepare_pretraining_dataset(dataset: Any, name: str = "training", scan_limit: int = 10_000) -> Any:
    """Keep the columns pretraining reads (`ecg_values`, `lead_mask`, `ecg_attention_mask`, `report`), drop the
    rows whose cleaned report is empty (count logged), format as torch. Raises `ValueError` for a data set
    without a `report` column or without any non-empty report (streaming data sets: the first `scan_limit`
    rows are checked and empty reports are filtered lazily)."""
    columns = list(dataset.column_names or [])
    if "ecg_values" not in columns:
        raise ValueError(f"The {name} data set has no 'ecg_values' column (columns: {columns})")
    if REPORT_COLUMN not in columns:
        raise ValueError(f"The {name} data set has no '{REPORT_COLUMN}' column: CG-DMER pretraining needs ECG-report "
                         "pairs")
    dataset = dataset.select_columns([c for c in (*ECG_INPUT_NAMES, REPORT_COLUMN) if c in columns])
    if _is_iterable(dataset):
        if not any(clean_report_or_empty(r) for r in _reports(dataset, scan_limit)):
            raise ValueError(f"The {name} data set has no non-empty report in its first {scan_limit} rows")
        dataset = dataset.filter(lambda r: bool(clean_report_or_empty(r)), input_columns=[REPORT_COLUMN])
        return dataset.with_format("torch")
    keep = [i for i, report in enumerate(_reports(dataset)) if clean_report_or_empty(report)]
    if not keep:
        raise ValueError(f"The {name} data set has no non-empty report ({len(dataset)} rows): CG-DMER pretraining "
                         "needs ECG-report pairs")
    if len(keep) < len(dataset):
        logger.warning("Dropped %d of %d %s rows with an empty report", len(dataset) - len(keep), len(dataset), name)
        dataset = dataset.select(keep)
    return dataset.with_format("torch")



def _first_ecg_length(dataset: Any) -> int:
    row = next(iter(dataset)) if _is_iterable(dataset) else dataset[0]
    return int(torch.as_tensor(row["ecg_values"]).shape[-1])



def build_tokenizer(tokenizer: Union[None, str, os.PathLike, PreTrainedTokenizerBase], train_dataset: Any,
                    vocab_size: int, stream_limit: int = 20_000) -> PreTrainedTokenizerBase:
    """The report tokenizer: a tokenizer object as given; `"default"` for the package's bundled one; a path or
    Hub name for `AutoTokenizer`; `None` or `"train"` to train a WordPiece tokenizer of `vocab_size` on the
    cleaned training reports (of a streaming data set, the first `stream_limit`: reading a stream prepares its
    ECGs too, so pass a tokenizer for large streams)."""
    from .. import reports

    if isinstance(tokenizer, PreTrainedTokenizerBase):
        return tokenizer
    if tokenizer == "default":
        return reports.load_default_tokenizer()
    if tokenizer is None or tokenizer == "train":
        limit = stream_limit if _is_iterable(train_dataset) else None
        texts = [text for text in _reports(train_dataset, limit) if isinstance(text, str)]
        return reports.train_report_tokenizer(texts, vocab_size=vocab_size)  # cleans them with clean_report
    try:
        return AutoTokenizer.from_pretrained(str(tokenizer))
    except (OSError, ValueError) as err:  # (a folder without tokenizer files is a ValueError)
        where = ("a folder here, without loadable tokenizer files" if Path(tokenizer).is_dir() else
                 "no such folder here, so read as a Hub id")
        raise ValueError(f"Could not load the tokenizer {str(tokenizer)!r} ({where}): "
                         f"{str(err).splitlines()[0]}") from None



def check_tokenizer_source(tokenizer: Union[None, str, os.PathLike, PreTrainedTokenizerBase]) -> None:
    """Fail early on a `tokenizer` argument that names a missing folder (`FileNotFoundError`): one that is neither
    a folder here nor a valid Hub id. `None`, `"train"`, `"default"` and tokenizer objects pass."""
    if tokenizer is None or isinstance(tokenizer, PreTrainedTokenizerBase) or tokenizer in ("train", "default"):
        return
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if Path(tokenizer).is_dir():
        return
    try:
        validate_repo_id(str(tokenizer))
    except HFValidationError:
        raise FileNotFoundError(f"Tokenizer folder not found: {tokenizer} (the tokenizer is 'train', 'default', a "
                                "tokenizer folder or a Hub id)") from None



def configure_for_tokenizer(config: CGDMERConfig, tokenizer: PreTrainedTokenizerBase) -> CGDMERConfig:
    """Set `text_config.vocab_size`, `pad_token_id` and `mask_token_id` from the tokenizer, and cap the
    tokenizer's `model_max_length` at the model's `max_position_embeddings` (reports are truncated there)."""
    if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError("The report tokenizer needs a pad token and a mask token")
    tokenizer.model_max_length = min(tokenizer.model_max_length, config.text_config.max_position_embeddings)
    config.text_config.vocab_size = len(tokenizer)
    config.text_config.pad_token_id = tokenizer.pad_token_id
    config.text_config.mask_token_id = tokenizer.mask_token_id
    return config



def _feature_extractor_for(config: CGDMERConfig):
    from ..feature_extraction_cgdmer import CGDMERFeatureExtractor

    ecg = config.ecg_config
    return CGDMERFeatureExtractor(feature_size=ecg.num_leads, sampling_rate=ecg.sampling_rate,
                                  duration=ecg.duration, lead_names=list(ecg.lead_names), patch_size=ecg.patch_size)



def save_pretrained_model(trainer: Trainer, output_dir: Union[str, os.PathLike]) -> None:
    """Save the complete model folder: weights (safetensors, gathered from every process by the Trainer), config
    with `auto_map` and `custom_pipelines`, the model, processing and pipeline code, and the processor (feature
    extractor + tokenizer). The main process reloads the saved weights (strictly: a bad save fails loudly) and
    completes the folder with `cgdmer_hf.hub.save_model_dir`."""
    from ..hub import save_model_dir

    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        save_model_dir(output_dir, CGDMERForPreTraining.from_pretrained(str(output_dir)), trainer.processing_class)



def pretrain(
    train_dataset: Any,
    output_dir: Union[str, os.PathLike],
    *,
    eval_dataset: Any = None,
    config: Union[str, CGDMERConfig] = "small",
    tokenizer: Union[None, str, os.PathLike, PreTrainedTokenizerBase] = None,
    training_args: Optional[Union[TrainingArguments, Mapping[str, Any]]] = None,
    resume_from_checkpoint: Union[None, bool, str, os.PathLike] = None,
    overwrite_output_dir: bool = False,
    mlm_probability: Optional[float] = None,
    zero_shot_prompts: Union[None, str, Mapping[str, Sequence[str]]] = None,
    callbacks: Optional[list[TrainerCallback]] = None,
    zero_shot_centre: bool = True,
) -> CGDMERPretrainer:
    """Pretrain CG-DMER with `transformers.Trainer` and save a complete model folder in `output_dir`.

    Args:
        train_dataset / eval_dataset: prepared data sets (`datasets.Dataset` or streaming `IterableDataset`, e.g.
            from `cgdmer_hf.data`) with `ecg_values`, `lead_mask`, `ecg_attention_mask` and `report`. Rows whose
            cleaned report is empty are dropped (count logged); a data set without any report is refused.
        output_dir: where checkpoints and the final model go; must not already hold a model unless resuming.
        config: a preset name (`"tiny"`, `"small"`, `"base"`) or a `CGDMERConfig`. The text vocabulary, pad and
            mask ids are set from the tokenizer.
        tokenizer: a tokenizer, `"default"` (bundled), a path/Hub name, or `None`/`"train"` (train a WordPiece
            tokenizer of the preset's vocabulary size on the training reports).
        training_args: a `TrainingArguments`, or a dict of overrides for [`pretraining_arguments`].
        resume_from_checkpoint: a checkpoint folder, a run folder (its newest complete checkpoint), or `True` (the
            newest complete checkpoint in `output_dir`; see [`resolve_checkpoint`], whose result is taken as it is).
            Config and tokenizer then come from the checkpoint.
        overwrite_output_dir: allow an `output_dir` that already holds a model. Its files are overwritten (one by
            one) when the new model is saved; its checkpoints are moved into a hidden `.previous-checkpoints-*`
            folder there until then (kept if the run fails).
        mlm_probability: fraction of report tokens masked (default `config.text_config.mlm_probability`).
        zero_shot_prompts: report the zero-shot macro AUC on `eval_dataset` (which then needs labels) at every
            evaluation: `"auto"` (the shipped prompt set of its label set), a prompt set name or JSON path, or a
            mapping `{class: [descriptions]}`. `None`: off.
        callbacks: extra `TrainerCallback`s.
        zero_shot_centre: after training, store the mean shared embedding of the training reports (up to
            `CENTRE_REPORTS` of them) as `config.zero_shot_centre`, with the mean similarity to it of up to
            `ZERO_SHOT_CENTRE_ECGS` training ECGs, and the most frequent of those reports as the zero-shot report
            bank (`config.zero_shot_reports`), which zero-shot scoring uses (`CGDMERModel.fit_zero_shot_centre`).
            `False`: plain SigLIP logits of the descriptions' own embeddings. A new model starts without centre,
            bank and calibration either way.

    Returns:
        the [`CGDMERPretrainer`] after training (`trainer.state.log_history` holds every logged value).
    """
    from ..configuration_cgdmer import PRESETS

    checkpoint = resume_from_checkpoint if isinstance(resume_from_checkpoint, VerifiedCheckpoint) else None
    if checkpoint is None and resume_from_checkpoint not in (None, False):
        checkpoint = resolve_checkpoint(resume_from_checkpoint, output_dir)
    if isinstance(config, str) and checkpoint is None and config not in PRESETS:
        raise ValueError(f"Unknown preset {config!r}; choose one of {sorted(PRESETS)}")
    if checkpoint is None:
        check_tokenizer_source(tokenizer)
    check_output_dir(output_dir, checkpoint, overwrite_output_dir)

    zero_shot = None
    if zero_shot_prompts is not None:
        if eval_dataset is None:
            raise ValueError("Zero-shot evaluation needs an eval_dataset with labels")
        zero_shot = ZeroShotEvaluation(eval_dataset, None if zero_shot_prompts == "auto" else zero_shot_prompts)
    train_dataset = prepare_pretraining_dataset(train_dataset, "training")
    if eval_dataset is not None:
        eval_dataset = prepare_pretraining_dataset(eval_dataset, "evaluation")

    if checkpoint is not None:
        config = CGDMERConfig.from_pretrained(checkpoint)
    elif isinstance(config, str):
        config = CGDMERConfig.from_preset(config)
    else:
        config = CGDMERConfig.from_dict(config.to_dict())
    if checkpoint is None:  # a new model: the zero-shot centre, bank and calibration of another one do not apply
        config.zero_shot_centre, config.zero_shot_centre_offset, config.zero_shot_calibration = None, 0.0, None
        config.zero_shot_reports = None
    if mlm_probability is not None:
        config.text_config.mlm_probability = mlm_probability
    length = _first_ecg_length(train_dataset)
    if length > config.ecg_config.num_samples:
        raise ValueError(f"The data set's ECGs have {length} samples, more than the model's "
                         f"{config.ecg_config.num_samples} ({config.ecg_config.duration} s at "
                         f"{config.ecg_config.sampling_rate} Hz); prepare the data with a matching feature extractor")

    args = training_args if isinstance(training_args, TrainingArguments) else pretraining_arguments(
        output_dir, **dict(training_args or {}))
    if str(Path(args.output_dir)) != str(Path(output_dir)):
        raise ValueError(f"training_args.output_dir={args.output_dir!r} differs from output_dir={str(output_dir)!r}")
    if args.remove_unused_columns or args.label_names != []:
        raise ValueError("CG-DMER pretraining needs remove_unused_columns=False and label_names=[] "
                         "(use pretraining_arguments())")
    if _is_iterable(train_dataset) and args.max_steps <= 0:
        raise ValueError("A streaming training data set needs max_steps")

    # The main process builds (or trains) the tokenizer and, with several processes, writes it to a hidden folder
    # of output_dir that the others load it from, so that every process uses the same vocabulary. Nothing of a
    # model that output_dir may hold is replaced before the new one is saved (see _set_aside_checkpoints).
    shared_tokenizer, set_aside = Path(output_dir) / _SHARED_TOKENIZER_DIR, None
    with args.main_process_first(local=False, desc="report tokenizer"):
        if checkpoint is not None:
            tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        elif args.process_index == 0:
            set_aside = _set_aside_checkpoints(output_dir) if overwrite_output_dir else None
            tokenizer = build_tokenizer(tokenizer, train_dataset, config.text_config.vocab_size)
            if args.world_size > 1:
                tokenizer.save_pretrained(str(shared_tokenizer))
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(shared_tokenizer))
    configure_for_tokenizer(config, tokenizer)

    processor = CGDMERProcessor(feature_extractor=_feature_extractor_for(config), tokenizer=tokenizer)
    set_seed(args.seed)
    model = CGDMERForPreTraining(config)
    collator = CGDMERPretrainingCollator(tokenizer, config=config, mask_reports=False,
                                         pad_to_multiple_of=8 if args.bf16 or args.fp16 else None)
    if args.ddp_find_unused_parameters is None and args.world_size > 1:
        # Every parameter takes part when every loss has a weight; a zero weight leaves its head without gradient.
        weights = (config.ecg_loss_weight, config.text_loss_weight, config.alignment_loss_weight,
                   config.orthogonality_loss_weight if config.disentangle else 1.0)
        args.ddp_find_unused_parameters = any(w == 0 for w in weights)
    centre_data = train_dataset  # before a stream is repeated
    if _is_iterable(train_dataset):
        # Each process reads and collates its own shards of the stream (accelerate splits a streaming dataset per
        # process instead of dispatching batches from the main process). Shards differ in length, so the stream
        # repeats until max_steps: every process then has a full batch at every step for the all-gather.
        args.accelerator_config.dispatch_batches = False
        if args.world_size > 1:
            if not hasattr(train_dataset, "repeat"):
                raise ValueError("Multi-process training on a streaming dataset needs datasets>=3.4 (repeat)")
            train_dataset = train_dataset.repeat(None)
    if eval_dataset is not None and _is_iterable(eval_dataset) and args.world_size > 1:
        raise ValueError("Multi-process evaluation needs a map-style (non-streaming) validation dataset")

    trainer = CGDMERPretrainer(
        model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset, data_collator=collator,
        processing_class=processor, callbacks=callbacks, zero_shot=zero_shot,
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    if zero_shot_centre and trainer.is_world_process_zero():  # the main process saves the model
        core = trainer.model.base_model
        n = ZERO_SHOT_CENTRE_ECGS
        rows = centre_data.take(n) if _is_iterable(centre_data) else centre_data.select(range(min(n, len(centre_data))))
        core.fit_zero_shot_centre([clean_report_or_empty(r) for r in _reports(centre_data, CENTRE_REPORTS)], tokenizer,
                                  ecg_batches(rows, 64, core.device, core.dtype))
    save_pretrained_model(trainer, output_dir)
    if trainer.is_world_process_zero():
        trainer.save_state()
        for done in (shared_tokenizer, set_aside):  # the new model is saved: the previous run may go
            if done is not None:
                shutil.rmtree(done, ignore_errors=True)
    return trainer

