"""CG-DMER pretraining with `transformers.Trainer`.

* [`CGDMERPretrainingCollator`] turns rows of a prepared data set (`ecg_values`, `lead_mask`,
  `ecg_attention_mask`, raw `report`) into the keyword arguments of `CGDMERForPreTraining.forward`: the cleaned,
  tokenized report (`input_ids`, `attention_mask`) and its masked copy (`mlm_input_ids`, `mlm_labels`, built with
  transformers' `DataCollatorForLanguageModeling` masking; special tokens are never masked). The ECG mask is
  drawn inside the model, fresh at every step and fixed in evaluation.
* [`CGDMERPretrainer`] is a `Trainer` that logs every loss component and the sigmoid loss temperature and bias
  next to the total (means over each logging window, `eval_*` for the validation split), stops on a non-finite
  loss naming the step and the component, and draws report masks at step time from the torch RNG that the
  Trainer checkpoints, so a resumed run reproduces an uninterrupted one.
* [`pretrain`] does the whole job (tokenizer, config, model, arguments, training, resume) and saves a complete
  model folder: weights (safetensors), config, feature extractor, tokenizer, processor and the custom code.
* Checkpoints carry a completion marker ([`CHECKPOINT_MARKER`], written before the first file and marked complete
  after the last), so a save cut short by a kill never looks complete; [`resolve_checkpoint`] resumes from the
  newest complete checkpoint and names the incomplete ones it skips.

The same code runs on one CPU or on many GPUs: launch the script (or `cgdmer pretrain`) with
`torchrun --nproc_per_node N` (DDP; FSDP through `TrainingArguments(fsdp=...)`); the sigmoid loss all-gathers
the embeddings of every process, and streaming data sets are split per process.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from transformers import (
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints, sort_checkpoints
from transformers.trainer_utils import _re_checkpoint as _CHECKPOINT_NAME  # what get_last_checkpoint matches

from .configuration_cgdmer import CGDMERConfig, CGDMERTextConfig
from .modeling_cgdmer import CGDMERForPreTraining
from .processing_cgdmer import CGDMERProcessor

logger = logging.getLogger(__name__)

LOSS_COMPONENTS = ("ecg_loss", "text_loss", "alignment_loss", "orthogonality_loss")
ECG_COLUMNS = ("ecg_values", "lead_mask", "ecg_attention_mask")
REPORT_COLUMN = "report"
# Files whose presence marks a folder as holding a model (or a run) that `pretrain` must not overwrite.
_MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
# Written into each checkpoint folder by `CGDMERPretrainer`: `{"complete": false}` before its first file and
# `{"complete": true, ...}` after its last one, so that an interrupted save never looks complete.
CHECKPOINT_MARKER = "checkpoint_complete.json"
TRAINER_STATE_NAME = "trainer_state.json"
_SHARED_TOKENIZER_DIR = ".report-tokenizer"  # written for the other processes of a multi-process run, then removed
# Checkpoint files the Trainer unpickles on resume (always with `weights_only=True`).
_CHECKPOINT_PICKLES = ("*.pt", "*.pth")


class NonFiniteLossError(FloatingPointError):
    """The pretraining loss became NaN or infinite; the message names the step and the component(s)."""


def _clean_report(text: Any) -> str:
    """`clean_report(text)`, or `""` for a missing report or one with no text left after cleaning."""
    from .reports import clean_report

    if text is None:
        return ""
    try:
        return clean_report(str(text))
    except ValueError:
        return ""


# --------------------------------------------------------------------------------------------------------------
# Collator
# --------------------------------------------------------------------------------------------------------------


class CGDMERPretrainingCollator:
    """Builds `CGDMERForPreTraining` batches from rows of a prepared ECG-report data set.

    Each row needs `ecg_values` (leads x samples; list, numpy array or tensor) and may hold `lead_mask` (leads),
    `ecg_attention_mask` (samples) and a raw `report` string; other columns are ignored. Reports are cleaned with
    `cgdmer_hf.reports.clean_report`, tokenized (truncated to `max_length`, padded to the longest in the batch)
    and masked with `DataCollatorForLanguageModeling.torch_mask_tokens` (special and padding tokens never).

    Returns a dict with `ecg_values` (B, leads, samples) float32, `lead_mask` (B, leads), `ecg_attention_mask`
    (B, samples), and, when the rows have reports, `input_ids` / `attention_mask` (the clean report, for
    alignment) and `mlm_input_ids` / `mlm_labels` (masked copy; -100 where not masked). A batch in which every
    report is missing or empty is an ECG-only batch (no text keys); a batch that mixes rows with and without a
    report is refused, since the model aligns every ECG with its report.

    Args:
        tokenizer: the report tokenizer; needs a pad and a mask token.
        mlm_probability: fraction of report tokens masked; default `config.text_config.mlm_probability` (0.15).
        max_length: longest report in tokens; default `config.text_config.max_position_embeddings`, else the
            tokenizer's `model_max_length`.
        config: the model config (for the defaults above and to check `max_length`).
        seed: seed of the masking RNG when the collator is used on its own (`None`: the global torch RNG).
        mask_reports: draw the report masks here (default). [`pretrain`] turns it off and [`CGDMERPretrainer`]
            masks at step time instead ([`mask_reports`]): accelerate's data loader collates one batch ahead, so
            masks drawn here would come from a different RNG state after a resume.
        mask_replace_prob, random_replace_prob: BERT's 80 % `[MASK]` / 10 % random / 10 % unchanged split.
        pad_to_multiple_of: pad report tokens to a multiple of this (tensor-core friendly lengths on GPU);
            `max_length` is then rounded down to a multiple of it.
        clean_reports: apply `clean_report` (default); `False` tokenizes the text as it is.
        report_column: name of the report column.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        mlm_probability: Optional[float] = None,
        max_length: Optional[int] = None,
        *,
        config: Optional[CGDMERConfig] = None,
        seed: Optional[int] = None,
        mask_reports: bool = True,
        mask_replace_prob: float = 0.8,
        random_replace_prob: float = 0.1,
        pad_to_multiple_of: Optional[int] = None,
        clean_reports: bool = True,
        report_column: str = REPORT_COLUMN,
    ):
        text_config = config.text_config if config is not None else CGDMERTextConfig()
        if mlm_probability is None:
            mlm_probability = text_config.mlm_probability
        if tokenizer.pad_token_id is None:
            raise ValueError("The report tokenizer has no pad token; the collator pads reports to the batch length")
        if max_length is None:
            max_length = text_config.max_position_embeddings if config is not None else tokenizer.model_max_length
        if config is not None and max_length > text_config.max_position_embeddings:
            raise ValueError(f"max_length={max_length} exceeds the model's max_position_embeddings="
                             f"{text_config.max_position_embeddings}")
        if pad_to_multiple_of and max_length % pad_to_multiple_of:
            max_length -= max_length % pad_to_multiple_of  # padded lengths must stay within max_length
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.mask_reports_in_collator = mask_reports
        self.pad_to_multiple_of = pad_to_multiple_of
        self.clean_reports = clean_reports
        self.report_column = report_column
        # transformers' MLM masking (80/10/10 split, special tokens excluded); raises without a mask token.
        self.mlm = DataCollatorForLanguageModeling(
            tokenizer, mlm_probability=mlm_probability, mask_replace_prob=mask_replace_prob,
            random_replace_prob=random_replace_prob, seed=seed,
        )

    @property
    def mlm_probability(self) -> float:
        return self.mlm.mlm_probability

    # ---- public API ----------------------------------------------------------------------------------------

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("Cannot collate an empty batch")
        batch = self.collate_ecgs(examples)
        batch.update(self.tokenize_reports([example.get(self.report_column) for example in examples]))
        if self.mask_reports_in_collator and "special_tokens_mask" in batch:
            batch = self.mask_reports(batch)
        return batch

    def collate_ecgs(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Stack `ecg_values`, `lead_mask` and `ecg_attention_mask`; ECGs shorter than the longest in the batch
        are zero-padded and marked as padding in `ecg_attention_mask`."""
        if any("ecg_values" not in example for example in examples):
            raise ValueError("Every example needs 'ecg_values' (leads x samples); prepare the data set with the "
                             "cgdmer_hf.data readers or the CGDMERFeatureExtractor")
        values = [torch.as_tensor(example["ecg_values"], dtype=torch.float32) for example in examples]
        if any(v.dim() != 2 for v in values) or len({v.shape[0] for v in values}) != 1:
            raise ValueError("ecg_values must be (leads, samples) arrays with the same number of leads, got shapes "
                             f"{sorted({tuple(v.shape) for v in values})}")
        num_leads, length = values[0].shape[0], max(v.shape[1] for v in values)
        ecg = values[0].new_zeros(len(values), num_leads, length)
        sample_mask = torch.zeros(len(values), length, dtype=torch.long)
        lead_mask = torch.ones(len(values), num_leads, dtype=torch.long)
        for i, (example, value) in enumerate(zip(examples, values)):
            ecg[i, :, : value.shape[1]] = value
            given = example.get("ecg_attention_mask")
            sample_mask[i, : value.shape[1]] = 1 if given is None else torch.as_tensor(given, dtype=torch.long)
            if example.get("lead_mask") is not None:
                lead_mask[i] = torch.as_tensor(example["lead_mask"], dtype=torch.long)
        return {"ecg_values": ecg, "lead_mask": lead_mask, "ecg_attention_mask": sample_mask}

    def tokenize_reports(self, reports: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Clean and tokenize the reports: `input_ids`, `attention_mask` and the `special_tokens_mask` (special
        or padding tokens) that [`mask_reports`] needs. Empty when no row has a report."""
        texts = [_clean_report(r) if self.clean_reports else ("" if r is None else str(r)) for r in reports]
        empty = [i for i, text in enumerate(texts) if not text.strip()]
        if len(empty) == len(texts):
            return {}
        if empty:
            raise ValueError(
                f"{len(empty)} of {len(texts)} reports in the batch are missing or empty (rows {empty[:8]}); drop "
                "the rows without a report first (pretrain() does) or give no report at all (ECG-only batches)"
            )
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length,
            pad_to_multiple_of=self.pad_to_multiple_of, return_special_tokens_mask=True, return_token_type_ids=False,
            return_tensors="pt",
        )
        attention_mask = encoded["attention_mask"]
        special = encoded["special_tokens_mask"].bool() | ~attention_mask.bool()
        return {"input_ids": encoded["input_ids"], "attention_mask": attention_mask, "special_tokens_mask": special}

    def mask_reports(self, batch: Mapping[str, Any], generator: Optional[torch.Generator] = None
                     ) -> dict[str, Any]:
        """Add `mlm_input_ids` / `mlm_labels` to a batch from [`tokenize_reports`] (its `special_tokens_mask` is
        removed). Draws from `generator`, else the collator's seeded RNG, else the global torch RNG."""
        batch = dict(batch)
        special = batch.pop("special_tokens_mask", None)
        if "input_ids" not in batch:
            return batch
        if special is None:
            raise ValueError("mask_reports needs the batch's special_tokens_mask (from tokenize_reports)")
        saved = self.mlm.generator
        if generator is not None:
            self.mlm.generator = generator
        elif self.mlm.seed is not None and self.mlm.generator is None:
            self.mlm.create_rng()
        try:
            batch["mlm_input_ids"], batch["mlm_labels"] = self.mlm.torch_mask_tokens(
                batch["input_ids"].clone(), special_tokens_mask=special
            )
        finally:
            if generator is not None:
                self.mlm.generator = saved
        return batch


# --------------------------------------------------------------------------------------------------------------
# Zero-shot evaluation metric
# --------------------------------------------------------------------------------------------------------------


class ZeroShotEvaluation:
    """Zero-shot macro ROC-AUC on a labelled split (a data set made by `cgdmer_hf.data`): the model's shared ECG
    embeddings against prompt-ensemble embeddings of each class (`cgdmer_hf.evaluation`, as the zero-shot
    pipeline computes them). [`CGDMERPretrainer`] reports it as `eval_zero_shot_auc`.

    Args:
        dataset: prepared ECGs with a `labels` column and label names in its metadata.
        prompts: `{class: [descriptions]}`, a prompt set name or JSON path (`cgdmer_hf.prompts`), or `None` for
            the shipped set of the data set's label set.
        batch_size: ECGs per forward pass.
    """

    def __init__(self, dataset: Any, prompts: Union[None, str, Mapping[str, Sequence[str]]] = None,
                 batch_size: int = 64):
        from .data import label_names, label_set
        from .evaluation import align_prompts
        from .prompts import load_prompt_set, prompt_set_for_label_set

        if _is_iterable(dataset) or "labels" not in (dataset.column_names or []):
            raise ValueError("Zero-shot evaluation needs a (non-streaming) data set with a 'labels' column")
        names = label_names(dataset)
        if prompts is None:
            prompts = prompt_set_for_label_set(label_set(dataset))
        if isinstance(prompts, str):
            prompts = load_prompt_set(prompts)
        self.prompts = align_prompts(prompts, names)
        self.dataset = dataset.select_columns([*ECG_COLUMNS, "labels"])
        labels = self.dataset.with_format("numpy")["labels"]
        self.labels = np.asarray(labels, dtype=np.float32).reshape(len(dataset), -1)
        self.batch_size = batch_size

    def __call__(self, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> dict[str, float]:
        from .evaluation import compute_embeddings, label_embeddings, macro_roc_auc, zero_shot_scores

        ecg = compute_embeddings(model, self.dataset, kind="shared", normalize=True, batch_size=self.batch_size)
        text = label_embeddings(model, tokenizer, self.prompts)
        return {"zero_shot_auc": macro_roc_auc(zero_shot_scores(model, ecg, text), self.labels)}


# --------------------------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------------------------


class _PerProcessSeedCallback(TrainerCallback):
    """Seeds each process with `seed + process_index` when training starts, so that the ECG and report masks
    differ between processes (the Trainer seeds every process alike). A resumed run then restores each
    process's own RNG state from the checkpoint."""

    def on_train_begin(self, args, state, control, **kwargs):
        if args.world_size > 1:
            set_seed(args.seed + args.process_index)


class CGDMERPretrainer(Trainer):
    """`transformers.Trainer` for [`CGDMERForPreTraining`].

    On top of the Trainer it:
    - logs, at every logging step, the mean of each loss component (`ecg_loss`, `text_loss`, `alignment_loss`,
      `orthogonality_loss`) over the logging window and all processes, next to the total `loss`, plus the current
      `logit_scale`, `temperature` (= exp(logit_scale)) and `logit_bias`; evaluation adds `eval_<component>`;
    - raises [`NonFiniteLossError`] naming the step and the component as soon as the loss is NaN or infinite;
    - with `zero_shot=ZeroShotEvaluation(...)`, adds the zero-shot macro AUC on a labelled split
      (`eval_zero_shot_auc`);
    - frames every checkpoint with [`CHECKPOINT_MARKER`] (see [`checkpoint_problem`]);
    - masks the reports at step time when the collator defers it (`mask_reports=False`): from the global torch
      RNG in training, which the Trainer saves with each checkpoint and restores on resume, and from a fixed
      seed in evaluation, so validation losses are comparable and evaluation does not disturb training.

    Use it with `remove_unused_columns=False` (the collator needs the raw report) and `label_names=[]` (the model
    computes its loss without labels); [`pretraining_arguments`] sets both.
    """

    eval_mask_seed = 0

    def __init__(self, *args: Any, zero_shot: Optional[ZeroShotEvaluation] = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.zero_shot = zero_shot
        self._component_sums: dict[str, dict[str, torch.Tensor]] = {"train": {}, "eval": {}}
        self._component_counts = {"train": 0, "eval": 0}
        self._last_logit_params: Optional[torch.Tensor] = None
        self._eval_generator: Optional[torch.Generator] = None
        self.add_callback(_PerProcessSeedCallback())

    # ---- checkpoints ---------------------------------------------------------------------------------------

    def _save_checkpoint(self, model, trial) -> None:
        """The Trainer's checkpoint, framed by [`CHECKPOINT_MARKER`]: "incomplete" before any file is written (also
        over a stale folder of the same step) and "complete" once every process has written its files. Older
        checkpoints are rotated out (`save_total_limit`) only then: the Trainer would do it before the marker, and
        a kill in between would leave only the incomplete checkpoint."""
        run_dir = Path(self._get_output_dir(trial=trial))
        folder = run_dir / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if self.args.should_save:
            _write_marker(folder, complete=False)
        limit, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            _write_marker(folder, complete=True, global_step=self.state.global_step)
            # As the Trainer rotates, protecting this checkpoint too when there is no best one: a stale, incomplete
            # checkpoint of a later step (before a resume) could otherwise sort after it.
            rotate_checkpoints(str(run_dir), save_total_limit=limit, use_mtime=True,
                               best_model_checkpoint=self.state.best_model_checkpoint or str(folder))

    # ---- inputs --------------------------------------------------------------------------------------------

    def _prepare_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if "special_tokens_mask" in inputs:
            masker = getattr(self.data_collator, "mask_reports", None)
            if masker is None:
                raise ValueError("The batch carries a special_tokens_mask but the data collator has no mask_reports")
            inputs = masker(inputs, generator=self._eval_generator)
        return super()._prepare_inputs(inputs)

    # ---- loss ----------------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        self._record(outputs, loss, "train" if model.training else "eval")
        return (loss, outputs) if return_outputs else loss

    def _record(self, outputs: Mapping[str, Any], loss: torch.Tensor, mode: str) -> None:
        components = {name: outputs[name].detach().float() for name in LOSS_COMPONENTS
                      if outputs.get(name) is not None}
        if not bool(torch.isfinite(loss.detach()).all()):
            self._raise_non_finite(loss, components, mode)
        sums = self._component_sums[mode]
        for name, value in components.items():
            sums[name] = sums[name] + value if name in sums else value
        self._component_counts[mode] += 1
        if outputs.get("logit_scale") is not None and outputs.get("logit_bias") is not None:
            self._last_logit_params = torch.stack([outputs["logit_scale"], outputs["logit_bias"]]).detach().float()

    def _raise_non_finite(self, loss: torch.Tensor, components: Mapping[str, torch.Tensor], mode: str) -> None:
        bad = {name: float(value) for name, value in components.items() if not bool(torch.isfinite(value).all())}
        where = (f"at step {self.state.global_step + 1}" if mode == "train"
                 else f"in evaluation after step {self.state.global_step}")
        what = ", ".join(f"{name}={value}" for name, value in bad.items()) or f"loss={float(loss.detach())}"
        raise NonFiniteLossError(
            f"Non-finite pretraining loss {where}: {what}. Lower the learning rate, enable gradient clipping "
            "(max_grad_norm) or check the inputs of that step."
        )

    # ---- logging -------------------------------------------------------------------------------------------

    def _pop_components(self, mode: str, prefix: str = "") -> dict[str, float]:
        sums, count = self._component_sums[mode], self._component_counts[mode]
        self._component_sums[mode], self._component_counts[mode] = {}, 0
        names = sorted(sums)
        if not count or not names:
            return {}
        means = torch.stack([sums[name] for name in names]) / count
        if self.accelerator.num_processes > 1:
            means = self.accelerator.reduce(means.to(self.args.device), reduction="mean")
        return {f"{prefix}{name}": float(value) for name, value in zip(names, means.tolist())}

    def _logit_params(self) -> dict[str, float]:
        if self._last_logit_params is None:
            return {}
        scale, bias = self._last_logit_params.tolist()
        return {"logit_scale": scale, "temperature": math.exp(scale), "logit_bias": bias}

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs and not any(key.startswith("eval_") for key in logs):
            logs.update(self._pop_components("train"))
            logs.update(self._logit_params())
        super().log(logs, *args, **kwargs)

    # ---- evaluation ----------------------------------------------------------------------------------------

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix: str = "eval"):
        self._component_sums["eval"], self._component_counts["eval"] = {}, 0
        self._eval_generator = torch.Generator().manual_seed(self.eval_mask_seed)
        try:
            output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys,
                                             metric_key_prefix)
        finally:
            self._eval_generator = None
        output.metrics.update(self._pop_components("eval", prefix=f"{metric_key_prefix}_"))
        if self.zero_shot is not None and metric_key_prefix == "eval":
            tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
            scores = self.zero_shot(self.accelerator.unwrap_model(self.model), tokenizer)
            output.metrics.update({f"{metric_key_prefix}_{k}": v for k, v in scores.items()})
        return output


# --------------------------------------------------------------------------------------------------------------
# pretrain()
# --------------------------------------------------------------------------------------------------------------


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


def _write_marker(folder: Path, **content: Any) -> None:
    """Write the checkpoint's completion marker atomically (a temporary file renamed over it)."""
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{CHECKPOINT_MARKER}.tmp"
    temp.write_text(json.dumps(content), encoding="utf-8")
    os.replace(temp, folder / CHECKPOINT_MARKER)


def _json_or_none(path: Path) -> Any:
    """The parsed JSON file, or `None` when it is missing or unreadable (e.g. cut short by a kill)."""
    from .hub import _read_json

    try:
        return _read_json(path)
    except ValueError:
        return None


def checkpoint_problem(folder: Union[str, os.PathLike]) -> Optional[str]:
    """Why `folder` is not a complete checkpoint, or `None` when it is one.

    Complete: its [`CHECKPOINT_MARKER`] says so (or, for a checkpoint saved without markers, by an older version
    or a plain `Trainer`, its `trainer_state.json`, which the Trainer writes after every other file, reads) and
    none of its weight, state or JSON files is empty."""
    folder = Path(folder)
    marker = _json_or_none(folder / CHECKPOINT_MARKER) if (folder / CHECKPOINT_MARKER).exists() else {}
    if not isinstance(marker, dict) or marker.get("complete") is False:
        return "its save was interrupted"
    if not marker and _json_or_none(folder / TRAINER_STATE_NAME) is None:
        return f"no readable {TRAINER_STATE_NAME}: its save was interrupted"
    empty = sorted(p.name for p in folder.iterdir() if p.suffix in (".safetensors", ".pt", ".pth", ".bin", ".json")
                   and p.is_file() and p.stat().st_size == 0)
    return f"{empty[0]} is empty" if empty else None


def _load_weights_only(path: Path) -> None:
    """`torch.load(path, weights_only=True)` as the Trainer resumes, memory-mapped (cheap) when the format allows."""
    from transformers.trainer_pt_utils import safe_globals

    with safe_globals():
        try:
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:  # torch's legacy (non-zip) format cannot be memory-mapped
            if "mmap" not in str(err):
                raise
            torch.load(path, map_location="cpu", weights_only=True)


def check_checkpoint_files(checkpoint: Union[str, os.PathLike]) -> None:
    """Load every file of the checkpoint that resuming unpickles, the way the Trainer does (`weights_only=True`),
    before any training starts: one that is not plain tensors and numbers (e.g. a pickle that would run code) is a
    `ValueError` naming it."""
    for path in sorted(p for pattern in _CHECKPOINT_PICKLES for p in Path(checkpoint).glob(pattern)):
        try:
            _load_weights_only(path)
        except Exception as err:  # noqa: BLE001 - any failure means the file cannot be resumed from
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            reason = next((line for line in lines if "unsupported" in line.lower()), lines[0] if lines else repr(err))
            raise ValueError(f"Checkpoint file {path} cannot be loaded safely with torch.load(weights_only=True), "
                             f"so it was not loaded: {reason}") from None


def _checkpoints(folder: Path) -> list[Path]:
    """The `checkpoint-<step>` folders of a run folder, newest (highest step) first (transformers' order and
    names)."""
    found = sort_checkpoints(str(folder)) if folder.is_dir() else []
    return [Path(p) for p in reversed(found) if _CHECKPOINT_NAME.search(Path(p).name)]


class VerifiedCheckpoint(str):
    """A checkpoint folder returned by [`resolve_checkpoint`]: complete and its pickled files checked.
    [`pretrain`] takes it as it is, without checking it again."""


def _verified(folder: Path) -> VerifiedCheckpoint:
    """`folder` after [`check_checkpoint_files`], which the local main process of each machine runs (the others
    read the same files)."""
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        check_checkpoint_files(folder)
    return VerifiedCheckpoint(folder)


def resolve_checkpoint(path: Union[str, os.PathLike, bool],
                       output_dir: Union[str, os.PathLike]) -> VerifiedCheckpoint:
    """The checkpoint folder to resume from: `path` itself when it is a checkpoint, else the newest *complete*
    `checkpoint-*` inside `path` (a run folder), or inside `output_dir` when `path` is `True`. Incomplete ones (an
    interrupted save, see [`checkpoint_problem`]) are skipped with a warning that names them; the chosen one's
    pickled files are checked with [`check_checkpoint_files`] (once per machine, see [`VerifiedCheckpoint`]).

    Raises:
        FileNotFoundError: no complete checkpoint (the message names the incomplete ones), or `path` names an
            incomplete checkpoint.
        ValueError: a file of the checkpoint cannot be loaded safely.
    """
    folder = Path(output_dir if path is True else path)
    if _CHECKPOINT_NAME.search(folder.name) or (folder / "scheduler.pt").is_file():
        problem = checkpoint_problem(folder) if folder.is_dir() else "it does not exist"
        if problem:
            raise FileNotFoundError(f"Cannot resume from {folder}: {problem}; resume from the run folder "
                                    f"{folder.parent} to use its newest complete checkpoint")
        return _verified(folder)
    skipped = []
    for candidate in _checkpoints(folder):
        problem = checkpoint_problem(candidate)
        if problem is None:
            if skipped:
                logger.warning("Resuming from %s, the newest complete checkpoint; skipped %s", candidate,
                               "; ".join(skipped))
            return _verified(candidate)
        skipped.append(f"the incomplete {candidate.name} ({problem})")
    if skipped:
        raise FileNotFoundError(f"No complete checkpoint to resume from in {folder}: {'; '.join(skipped)}")
    raise FileNotFoundError(f"No checkpoint to resume from in {folder} (expected a {PREFIX_CHECKPOINT_DIR}-* "
                            "folder written by the Trainer)")


def check_output_dir(output_dir: Union[str, os.PathLike], resume_from: Optional[str] = None,
                     overwrite: bool = False) -> None:
    """Refuse (`FileExistsError`) an output folder that already holds a model or training checkpoints, unless
    resuming from a checkpoint inside it or `overwrite=True`."""
    folder = Path(output_dir)
    if overwrite or not folder.exists():
        return
    if not folder.is_dir():
        raise FileExistsError(f"Output path {folder} exists and is not a folder")
    if resume_from is not None and Path(resume_from).resolve().parent == folder.resolve():
        return
    found = [name for name in _MODEL_FILES if (folder / name).exists()]
    found += sorted(p.name for p in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*"))[:1]
    if found:
        raise FileExistsError(f"Output folder {folder} already holds a model or run ({found[0]}); choose another "
                              "output folder, resume from its checkpoint, or overwrite it (--overwrite, "
                              "overwrite_output_dir=True)")


def _is_iterable(dataset: Any) -> bool:
    import datasets

    return isinstance(dataset, (datasets.IterableDataset, torch.utils.data.IterableDataset))


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
    dataset = dataset.select_columns([c for c in (*ECG_COLUMNS, REPORT_COLUMN) if c in columns])
    if _is_iterable(dataset):
        if not any(_clean_report(r) for r in _reports(dataset, scan_limit)):
            raise ValueError(f"The {name} data set has no non-empty report in its first {scan_limit} rows")
        dataset = dataset.filter(lambda r: bool(_clean_report(r)), input_columns=[REPORT_COLUMN])
        return dataset.with_format("torch")
    keep = [i for i, report in enumerate(_reports(dataset)) if _clean_report(report)]
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
    from . import reports

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
    from .feature_extraction_cgdmer import CGDMERFeatureExtractor

    ecg = config.ecg_config
    return CGDMERFeatureExtractor(feature_size=ecg.num_leads, sampling_rate=ecg.sampling_rate,
                                  duration=ecg.duration, lead_names=list(ecg.lead_names), patch_size=ecg.patch_size)


def save_pretrained_model(trainer: Trainer, output_dir: Union[str, os.PathLike]) -> None:
    """Save the complete model folder: weights (safetensors, gathered from every process by the Trainer), config
    with `auto_map` and `custom_pipelines`, the model, processing and pipeline code, and the processor (feature
    extractor + tokenizer). The main process reloads the saved weights (strictly: a bad save fails loudly) and
    completes the folder with `cgdmer_hf.hub.save_model_dir`."""
    from .hub import save_model_dir

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

    Returns:
        the [`CGDMERPretrainer`] after training (`trainer.state.log_history` holds every logged value).
    """
    from .configuration_cgdmer import PRESETS

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
    save_pretrained_model(trainer, output_dir)
    if trainer.is_world_process_zero():
        trainer.save_state()
        for done in (shared_tokenizer, set_aside):  # the new model is saved: the previous run may go
            if done is not None:
                shutil.rmtree(done, ignore_errors=True)
    return trainer


def _set_aside_checkpoints(output_dir: Union[str, os.PathLike]) -> Optional[Path]:
    """Move the `checkpoint-*` folders of a previous run in `output_dir` into a new hidden folder there, so that
    an overwriting run neither overwrites them before it succeeds nor resumes from them; `pretrain` deletes that
    folder once the new model is saved. Returns it (`None` when there was nothing to move)."""
    previous = _checkpoints(Path(output_dir))
    if not previous:
        return None
    aside = Path(tempfile.mkdtemp(prefix=".previous-checkpoints-", dir=output_dir))
    for folder in previous:
        os.replace(folder, aside / folder.name)
    logger.warning("Overwriting %s: the previous run's checkpoints are kept in %s until the new model is saved",
                   output_dir, aside)
    return aside


__all__ = [
    "CGDMERPretrainingCollator",
    "CGDMERPretrainer",
    "NonFiniteLossError",
    "ZeroShotEvaluation",
    "LOSS_COMPONENTS",
    "pretraining_arguments",
    "pretrain",
    "prepare_pretraining_dataset",
    "build_tokenizer",
    "configure_for_tokenizer",
    "resolve_checkpoint",
    "VerifiedCheckpoint",
    "checkpoint_problem",
    "check_checkpoint_files",
    "check_tokenizer_source",
    "check_output_dir",
    "save_pretrained_model",
]
