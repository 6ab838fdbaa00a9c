"""Fine-tune (or linear-probe) a CG-DMER model on PTB-XL superclasses with `transformers.Trainer`.

    python examples/finetune.py [--model cgdmer-base] [--data PTB-XL_ROOT] [--linear-probe] [--epochs 3]

Without `--data` it uses the PTB-XL records bundled with the package (50 records: a demonstration, not a result).
Training on folds 1-8, model selection on fold 9 (best validation macro ROC-AUC), one score on fold 10.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

import cgdmer_hf  # noqa: F401  (registers the CG-DMER Auto classes)
from cgdmer_hf.data import collate_ecgs, label_names, load_ptbxl
from cgdmer_hf.evaluation import classifier_scores, macro_roc_auc
from cgdmer_hf.samples import sample_data_dir

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "cgdmer-base"))
    parser.add_argument("--data", type=Path, default=sample_data_dir(), help="a PTB-XL root (default: bundled)")
    parser.add_argument("--linear-probe", action="store_true", help="freeze the encoder, train the head only")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--output-dir", default="runs/finetune")
    args = parser.parse_args()

    splits = {s: load_ptbxl(args.data, label_set="super", split=s) for s in ("train", "validation", "test")}
    names = label_names(splits["train"])
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
        dtype=torch.float32)
    if args.linear_probe:
        model.freeze_backbone()

    def compute_metrics(prediction) -> dict[str, float]:
        return {"roc_auc": macro_roc_auc(prediction.predictions, prediction.label_ids)}

    training_args = TrainingArguments(
        output_dir=args.output_dir, num_train_epochs=args.epochs, learning_rate=1e-3 if args.linear_probe else 3e-4,
        per_device_train_batch_size=32, eval_strategy="epoch", save_strategy="epoch", save_total_limit=1,
        load_best_model_at_end=True, metric_for_best_model="roc_auc", label_names=["labels"],
        remove_unused_columns=False, report_to=[], seed=0,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=splits["train"],
                      eval_dataset=splits["validation"], data_collator=collate_ecgs, compute_metrics=compute_metrics)
    trainer.train()
    test_auc = macro_roc_auc(classifier_scores(trainer.model, splits["test"]),
                             splits["test"].with_format("numpy")["labels"])
    print(f"best validation macro ROC-AUC {trainer.state.best_metric:.3f}; test macro ROC-AUC {test_auc:.3f} "
          f"({len(splits['test'])} records)")
    trainer.save_model(f"{args.output_dir}/best")


if __name__ == "__main__":
    main()
