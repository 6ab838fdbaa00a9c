"""Fine-tuning: `CGDMERForECGClassification` initialised from an encoder, trained with the `Trainer` (best
validation epoch kept), and its test scores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch

from ..data import collate_ecgs, ecg_batches
from .metrics import macro_roc_auc

# The collator of prepared rows for `CGDMERForECGClassification` and the `Trainer` (ECG inputs and labels).
ecg_collate = collate_ecgs


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
                      data_collator=collate_ecgs, compute_metrics=compute_metrics)
    trainer.train()
    best = trainer.state.best_metric
    return trainer.model, (float(best) if best is not None else float("nan"))


@torch.no_grad()
def classifier_scores(model, dataset, batch_size: int = 64) -> np.ndarray:
    """Sigmoid probabilities `(n, classes)` of a `CGDMERForECGClassification` (left in eval mode) on a prepared
    dataset."""
    model.eval()
    first = next(model.parameters())
    return np.concatenate([torch.sigmoid(model(**inputs).logits.float()).cpu().numpy()
                           for inputs in ecg_batches(dataset, batch_size, first.device, first.dtype)])


def _classifier_from(encoder, label_names: Sequence[str], seed: int):
    """A `CGDMERForECGClassification` whose ECG side is a copy of `encoder` (new head, seeded)."""
    from ..modeling_cgdmer import CGDMERForECGClassification

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


__all__ = ["FinetuneSettings", "classifier_scores", "ecg_collate", "finetune_classifier"]
