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

Modules: `collator` (the pretraining collator), `trainer` (`CGDMERPretrainer`, `ZeroShotEvaluation`),
`checkpoints` (completion markers, resuming, output-folder rules) and `pretraining` (`pretrain` and its pieces).
"""

from .checkpoints import (
    CHECKPOINT_MARKER,
    TRAINER_STATE_NAME,
    VerifiedCheckpoint,
    check_checkpoint_files,
    check_output_dir,
    checkpoint_problem,
    resolve_checkpoint,
)
from .collator import ECG_COLUMNS, REPORT_COLUMN, CGDMERPretrainingCollator
from .pretraining import (
    bf16_supported,
    build_tokenizer,
    check_tokenizer_source,
    configure_for_tokenizer,
    prepare_pretraining_dataset,
    pretrain,
    pretraining_arguments,
    save_pretrained_model,
)
from .trainer import LOSS_COMPONENTS, CGDMERPretrainer, NonFiniteLossError, ZeroShotEvaluation

__all__ = [
    "CHECKPOINT_MARKER",
    "ECG_COLUMNS",
    "REPORT_COLUMN",
    "TRAINER_STATE_NAME",
    "CGDMERPretrainingCollator",
    "CGDMERPretrainer",
    "NonFiniteLossError",
    "ZeroShotEvaluation",
    "LOSS_COMPONENTS",
    "pretraining_arguments",
    "bf16_supported",
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
