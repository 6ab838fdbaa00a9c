"""`cgdmer evaluate MODEL_DIR --data DATA --output OUT_DIR`: zero-shot, linear-probe and fine-tuning macro ROC-AUC
(MERL benchmark protocol) with a random-initialised baseline; writes results.json, results.md and ROC PNGs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

# What `evaluation.write_results` writes: with --overwrite, those of an earlier run that this run does not write
# (e.g. roc/ with --no-plots) are deleted, so that nothing in OUTPUT describes another model or run.
OUTPUTS = ("results.json", "results.md", "card_results.json", "roc", "reliability")
HELP = ("Evaluate a CG-DMER model: zero-shot, linear probe (1/10/100 % labels) and fine-tuning macro ROC-AUC on a "
        "labelled data set, against a randomly initialised encoder.")


def _comma_list(cast: Callable[[str], Any], kind: str) -> Callable[[str], tuple]:
    """An argparse type for a non-empty comma-separated list of `kind` (its plural ends in s)."""

    def parse(text: str) -> tuple:
        try:
            values = tuple(cast(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind}s, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected at least one {kind}")
        return values

    return parse


_floats = _comma_list(float, "number")
_ints = _comma_list(int, "integer")


def _tasks(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", help="saved model folder (weights, config, tokenizer, feature extractor)")
    parser.add_argument("--data", required=True,
                        help="prepared dataset (save_to_disk folder of `cgdmer prepare`) or a PTB-XL / CinC folder; "
                             "split by fold: 1-8 train, 9 validation, 10 test")
    parser.add_argument("--output", "-o", required=True,
                        help="folder for results.json, results.md, roc/*.png (and reliability/*.png)")
    parser.add_argument("--tasks", type=_tasks, default=("zero-shot", "linear-probe"),
                        help="comma-separated: zero-shot, linear-probe, finetune (default zero-shot,linear-probe)")
    parser.add_argument("--fractions", type=_floats, default=(0.01, 0.1, 1.0),
                        help="label fractions of the training split (default 0.01,0.1,1.0)")
    parser.add_argument("--seeds", type=_ints, default=(0, 1, 2), help="seeds of the label subsets (default 0,1,2)")
    parser.add_argument("--label-set", default=None,
                        help="label set for a raw data folder (PTB-XL: super|sub|form|rhythm; CinC: cpsc2018)")
    parser.add_argument("--prompts", default=None,
                        help="zero-shot prompt set: a shipped name (ptbxl_super, ptbxl_sub, ptbxl_form, ptbxl_rhythm, "
                             "cpsc2018), a JSON file {label: [descriptions]}, or 'plain' (each class's plain English "
                             "name, no tuning) (default: the label set's)")
    parser.add_argument("--calibration", action="store_true",
                        help="measure the calibration of the zero-shot probabilities on the test split (ECE, Brier, "
                             "reliability PNGs), raw and after a Platt fit on the validation split")
    parser.add_argument("--tune-prompts", action="store_true",
                        help="choose per class the prompt ensemble or one description by validation AUC")
    parser.add_argument("--no-random-baseline", action="store_true",
                        help="skip the randomly initialised encoder baseline")
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="bootstrap resamples of the test records for 95 %% CIs (0 = none; default 1000)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size for feature extraction")
    parser.add_argument("--finetune-epochs", type=float, default=10.0, help="fine-tuning epochs (default 10)")
    parser.add_argument("--finetune-lr", type=float, default=1e-4, help="fine-tuning learning rate (default 1e-4)")
    parser.add_argument("--finetune-batch-size", type=int, default=32, help="fine-tuning batch size (default 32)")
    parser.add_argument("--no-plots", action="store_true", help="do not write ROC-curve PNGs")
    parser.add_argument("--cache-dir", default=None, help="datasets cache folder for a raw data folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty OUTPUT folder: earlier results (results.*, card_results.json, "
                             "roc/) are replaced, or deleted if this run does not write them, once the new ones are "
                             "written; other files are kept")


def run(args: argparse.Namespace) -> int:
    import logging

    from ..evaluation import EvaluationSettings, FinetuneSettings, evaluate_model
    from . import check_inputs, staged_output

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--output {out} is a file, not a folder")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise FileExistsError(f"{out} is not empty; pass --overwrite to write into it")
    check_inputs(args.model_dir, args.data)
    if args.batch_size < 1 or args.finetune_batch_size < 1:
        raise ValueError("batch sizes must be positive")
    settings = EvaluationSettings(
        tasks=args.tasks, fractions=args.fractions, seeds=args.seeds, random_baseline=not args.no_random_baseline,
        prompts=args.prompts, tune_prompts=args.tune_prompts, batch_size=args.batch_size, bootstrap=args.bootstrap,
        finetune=FinetuneSettings(epochs=args.finetune_epochs, learning_rate=args.finetune_lr,
                                  batch_size=args.finetune_batch_size),
        plots=not args.no_plots, calibration=args.calibration,
    )
    if "zero-shot" in settings.tasks and args.label_set and not args.prompts:  # ('plain' knows every label set)
        from ..prompts import prompt_set_for_label_set

        prompt_set_for_label_set(args.label_set)  # fail before reading the data
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("cgdmer_hf.evaluation").setLevel(logging.INFO)
    with staged_output(out, OUTPUTS) as stage:  # earlier results are replaced only once every new file is written
        results = evaluate_model(args.model_dir, args.data, output_dir=stage, settings=settings,
                                 label_set=args.label_set, cache_dir=args.cache_dir)  # fmt: skip
    print((out / "results.md").read_text(encoding="utf-8"))
    print(f"Wrote {out / 'results.json'}, {out / 'results.md'}"
          + ("" if args.no_plots else f" and ROC curves in {out / 'roc'}") + f" ({results['seconds']} s).")
    return 0
