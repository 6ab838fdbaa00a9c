"""`CGDMERPretrainer`, the `Trainer` of CG-DMER pretraining (loss components, non-finite losses, framed
checkpoints, report masks at step time), and `ZeroShotEvaluation`, the zero-shot macro AUC it reports."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase, Trainer, TrainerCallback, set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from ..data import ECG_INPUT_NAMES, check_compatible, ecg_batches, eval_mode
from .checkpoints import _write_marker
from .collator import _is_iterable

LOSS_COMPONENTS = ("ecg_loss", "text_loss", "alignment_loss", "orthogonality_loss")



class NonFiniteLossError(FloatingPointError):
    """The pretraining loss became NaN or infinite; the message names the step and the component(s)."""



class ZeroShotEvaluation:
    """Zero-shot macro ROC-AUC on a labelled split (a data set made by `cgdmer_hf.data`): the model's shared ECG
    embeddings against prompt-ensemble embeddings of each class, scored by the model's own zero-shot functions
    (`CGDMERModel.zero_shot_ecg_embeddings`, `zero_shot_labels`, `zero_shot_scores`, as the pipeline
    and the evaluation harness score). [`CGDMERPretrainer`] reports it as `eval_zero_shot_auc`.

    Args:
        dataset: prepared ECGs with a `labels` column and label names in its metadata.
        prompts: `{class: [descriptions]}`, a prompt set name or JSON path (`cgdmer_hf.prompts`), or `None` for
            the shipped set of the data set's label set.
        batch_size: ECGs per forward pass.
    """

    def __init__(self, dataset: Any, prompts: Union[None, str, Mapping[str, Sequence[str]]] = None,
                 batch_size: int = 64):
        from ..data import label_names, label_set
        from ..prompts import align_prompts, load_prompt_set, prompt_set_for_label_set

        if _is_iterable(dataset) or "labels" not in (dataset.column_names or []):
            raise ValueError("Zero-shot evaluation needs a (non-streaming) data set with a 'labels' column")
        names = label_names(dataset)
        if prompts is None:
            prompts = prompt_set_for_label_set(label_set(dataset))
        if isinstance(prompts, str):
            prompts = load_prompt_set(prompts)
        self.prompts = align_prompts(prompts, names)
        self.dataset = dataset.select_columns([*ECG_INPUT_NAMES, "labels"])
        labels = self.dataset.with_format("numpy")["labels"]
        self.labels = np.asarray(labels, dtype=np.float32).reshape(len(dataset), -1)
        self.batch_size = batch_size

    def __call__(self, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> dict[str, float]:
        from ..metrics.roc_auc.roc_auc import multilabel_roc_auc
        from ..prompts import clean_prompts

        core = model.base_model
        check_compatible(core, self.dataset)
        first = next(core.parameters())
        with eval_mode(core):
            ecg = torch.cat([core.zero_shot_ecg_embeddings(**inputs)
                             for inputs in ecg_batches(self.dataset, self.batch_size, first.device, first.dtype)])
            labels = core.zero_shot_labels(clean_prompts(self.prompts), tokenizer)
            scores = core.zero_shot_scores(ecg.to(labels.embeds.device), labels, calibrated=False)
        return {"zero_shot_auc": multilabel_roc_auc(scores.cpu().numpy().astype(np.float64), self.labels)["roc_auc"]}



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

