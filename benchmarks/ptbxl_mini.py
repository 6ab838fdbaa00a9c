"""PTB-XL mini benchmark: pretrain every row of `configs/ptbxl_mini.json` on PTB-XL folds 1-8 (ECG + cleaned
report, duplicates dropped), choose checkpoints on fold 9, test on fold 10; zero-shot on CPSC2018.

    python benchmarks/ptbxl_mini.py [--data ../shared/data] [--rows cgdmer random_init ...] [--max-steps 600]
                                    [--ship cgdmer-base]

Per row: zero-shot macro ROC-AUC on PTB-XL super/sub/form/rhythm (classes present in fold 10) with, first, the
plain English class names of `scp_statements.csv` (no tuning), then prompts chosen per class on fold 9 and the
untuned ensemble, and on the 150 CPSC2018 records (plain CinC names and the ensemble: no validation split there);
the calibration of the zero-shot probabilities on fold 10 (ECE, Brier; raw and after a Platt fit on fold 9 only),
ECG <-> report retrieval recall@1/5/10 on fold 10 (with a random-init encoder), linear probe at 1/10/100 % of the training labels (seeds 0-2, weight decay chosen on fold 9),
fine-tuning at 100 % (best fold-9 epoch); 95 % bootstrap CIs over test records. Results accumulate in
`benchmarks/results/ptbxl_mini.json` (a row already there is skipped unless --force), and the table in
`benchmarks/results/ptbxl_mini.md`. `--reevaluate zero-shot` recomputes only the zero-shot rows (with their
calibration and retrieval) of finished rows from their saved models (no pretraining); `--reevaluate retrieval` only
their retrieval; `--reevaluate masked-ecg` only their fold-9 masked-ECG and limb-lead
losses (computed for every new row). `--ship DIR` exports the best full CG-DMER row (by fold-9 linear-probe AUC
at 100 %) as a complete fp16 model folder with its model card, the fold-9 zero-shot calibration in its config and
a reliability diagram. Skips with a message when the data is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "benchmarks" / "configs" / "ptbxl_mini.json"
RESULTS = REPO / "benchmarks" / "results"
ZERO_SHOT_SETS = ("super", "sub", "form", "rhythm")
# prompt selections of the zero-shot rows (headline first) and their `EvaluationSettings`
PROMPT_SELECTIONS = {"plain names": dict(prompts="plain"), "fold 9": dict(tune_prompts=True), "ensemble": {}}
RETRIEVAL_KS = (1, 5, 10)
TASKS = ("zero-shot", "linear-probe", "finetune")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--rows", nargs="+", default=None, help="rows of the config to run (default: all)")
    p.add_argument("--max-steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--eval-steps", type=int, default=150)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="linear-probe seeds")
    p.add_argument("--pretrain-seed", type=int, default=0, help="seed of initialisation, masks and data order")
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS), help="evaluations to run")
    p.add_argument("--finetune-epochs", type=float, default=3.0)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--work-dir", type=Path, default=REPO / "benchmarks" / "runs" / "ptbxl_mini")
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--force", action="store_true", help="re-run rows that already have results")
    p.add_argument("--reevaluate", choices=["zero-shot", "retrieval", "masked-ecg"], default=None,
                   help="recompute this task for finished rows from their saved models, without pretraining")
    p.add_argument("--ship", type=Path, default=None, help="export the best full CG-DMER row to this folder")
    return p.parse_args()


def load_data(root: Path, cache_dir: Any) -> dict[str, Any]:
    """PTB-XL super splits, the validation (prompt choice) and test folds of every other label set, and
    CPSC2018 (all 150 as test)."""
    from datasets import DatasetDict

    from cgdmer_hf.data import load_cinc, load_ptbxl

    data = {"super": DatasetDict({split: load_ptbxl(root, label_set="super", split=split, cache_dir=cache_dir)
                                  for split in ("train", "validation", "test")})}
    for label_set in ZERO_SHOT_SETS[1:]:
        data[label_set] = DatasetDict({split: load_ptbxl(root, label_set=label_set, split=split,
                                                         cache_dir=cache_dir)
                                       for split in ("validation", "test")})
    cpsc = load_cinc(root / "cpsc2018-cinc2020", label_set="cpsc2018", cache_dir=cache_dir)
    data["cpsc2018"] = DatasetDict({"test": cpsc})
    return data


def row_config(preset: str, overrides: dict[str, Any]):
    from cgdmer_hf import CGDMERConfig

    return CGDMERConfig.from_preset(preset, **json.loads(json.dumps(overrides)))


def ecg_design(config) -> dict[str, Any]:
    """The ECG tower's design fields of a row, as resolved (defaults included)."""
    return {k: getattr(config.ecg_config, k) for k in ("token_mode", "masking_strategy", "encoder_attention",
                                                       "decoder_attention", "decoder_slot_pooling",
                                                       "position_init_std")}


def pretrain_row(name: str, spec: dict[str, Any], preset: str, data: dict[str, Any], args) -> tuple[Path, dict]:
    """Pretrain one row (or save a random model); returns its model folder and training facts."""
    import torch

    from cgdmer_hf import CGDMERForPreTraining, CGDMERProcessor
    from cgdmer_hf.evaluation import fit_zero_shot_centre
    from cgdmer_hf.feature_extraction_cgdmer import CGDMERFeatureExtractor
    from cgdmer_hf.hub import save_model_dir
    from cgdmer_hf.reports import load_default_tokenizer
    from cgdmer_hf.training import configure_for_tokenizer, pretrain

    out = args.work_dir / name
    config = row_config(preset, spec.get("overrides", {}))
    finished = finished_run(out, args.max_steps) if spec.get("pretrain", True) and not args.force else None
    if finished is not None:
        print(f"row {name}: pretraining finished earlier in {out}, evaluating it", flush=True)
        return out, {"pretrained": True, "ecg_design": ecg_design(config), **finished}
    resume = resumable_checkpoint(out, args.max_steps)
    if out.exists() and resume is None:
        if spec.get("pretrain", True) and any(out.iterdir()) and not args.force:
            raise SystemExit(f"{out} holds neither a finished nor a resumable run of {args.max_steps} steps; move it "
                             "away or pass --force to replace it")
        shutil.rmtree(out)  # empty, a random-init row (regenerated), or --force
    start = time.perf_counter()
    if not spec.get("pretrain", True):
        tokenizer = load_default_tokenizer()
        configure_for_tokenizer(config, tokenizer)
        torch.manual_seed(args.pretrain_seed)
        model = CGDMERForPreTraining(config)
        processor = CGDMERProcessor(CGDMERFeatureExtractor(), tokenizer)
        fit_zero_shot_centre(model, tokenizer, data["super"]["train"])  # as pretrain() does
        save_model_dir(out, model, processor)
        return out, {"pretrained": False, "steps": 0, "seconds": 0.0, "ecg_design": ecg_design(config)}
    if resume:
        print(f"row {name}: resuming from {resume}", flush=True)
    trainer = pretrain(
        data["super"]["train"], out, eval_dataset=data["super"]["validation"], config=config, tokenizer="default",
        resume_from_checkpoint=resume, training_args=dict(
            max_steps=args.max_steps, per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate,
            eval_strategy="steps", eval_steps=args.eval_steps, save_steps=args.eval_steps, save_total_limit=2,
            load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False,
            logging_steps=25, seed=args.pretrain_seed, data_seed=args.pretrain_seed, disable_tqdm=False, use_cpu=not torch.cuda.is_available(),
        ),
    )
    seconds = time.perf_counter() - start
    return out, {"pretrained": True, "ecg_design": ecg_design(config),
                 **training_facts(vars(trainer.state), round(seconds, 1))}


def training_facts(state: dict[str, Any], seconds: Optional[float]) -> dict[str, Any]:
    """Steps, time, best checkpoint and the first and last logged losses of a Trainer state (`vars(TrainerState)`
    or a saved `trainer_state.json`: the same field names)."""
    history = state.get("log_history", [])
    return {"steps": state["global_step"], "seconds": seconds, "best_checkpoint": state.get("best_model_checkpoint"),
            "best_eval_loss": state.get("best_metric"),
            "first_logged": next((h for h in history if "loss" in h), None),
            "last_logged": next((h for h in reversed(history) if "loss" in h), None)}


def finished_run(run_dir: Path, max_steps: int) -> Optional[dict[str, Any]]:
    """Training facts of a run of this budget that finished (final model saved, `trainer_state.json` at
    `max_steps`), else `None`: such a run is evaluated again, never retrained or deleted."""
    state_path = run_dir / "trainer_state.json"
    if not (run_dir / "model.safetensors").exists() or not state_path.exists():
        return None
    state = json.loads(state_path.read_text())
    if state.get("max_steps") != max_steps or state.get("global_step") != max_steps:
        return None
    runtime = next((h["train_runtime"] for h in state.get("log_history", []) if "train_runtime" in h), None)
    return training_facts(state, None if runtime is None else round(runtime, 1))


def resumable_checkpoint(run_dir: Path, max_steps: int) -> Optional[str]:
    """The last complete checkpoint of an interrupted run of this budget in `run_dir`, else `None` (the package's
    `resolve_checkpoint`: a checkpoint whose save was cut short is skipped)."""
    from cgdmer_hf.training import resolve_checkpoint

    if not run_dir.is_dir() or (run_dir / "model.safetensors").exists():
        return None
    try:
        last = resolve_checkpoint(run_dir, run_dir)
    except FileNotFoundError:
        return None
    state = Path(last) / "trainer_state.json"
    if not state.exists() or json.loads(state.read_text()).get("max_steps") != max_steps:
        return None
    return last


def _evaluate(model_dir: Path, data: dict[str, Any], dataset_name: str, args, features=None, scores_tag: str = "",
              **settings: Any) -> list[dict]:
    """One `evaluate_model` call, its result rows tagged with the data set (per-class AUCs kept for zero-shot).
    `features`: a `FeatureCache` shared by the calls of one row (the label sets read the same fold-9 and fold-10
    records, so each split is embedded once per kind). `scores_tag` tells apart the stored test scores of calls
    that name their scores alike (the prompt selections of zero-shot)."""
    from cgdmer_hf.evaluation import EvaluationSettings, evaluate_model

    result = evaluate_model(str(model_dir), data[dataset_name], features=features, settings=EvaluationSettings(
        random_baseline=False, bootstrap=args.bootstrap, plots=False, keep_test_scores=True, **settings))
    save_test_scores(model_dir.name, dataset_name, result["test_scores"], args.results_dir, scores_tag)
    rows = []
    for row in result["results"]:
        if row["task"] != "zero-shot":
            row.pop("per_class", None)
        rows.append({"dataset": dataset_name, "label_set": dataset_name,
                     "test_records": result["splits"].get("test"), **row})
    return rows


def save_test_scores(row: str, dataset: str, scores: dict[str, Any], results_dir: Path, tag: str = "") -> None:
    """Add the test labels and score arrays of one evaluation to `ptbxl_mini_scores/<row>.npz` (float16), so
    rows can be compared record by record (paired bootstrap); keys are `<dataset>/<scores>`, with ` [<tag>]`
    after the scores' name when tagged (labels are shared, never tagged)."""
    import numpy as np

    path = results_dir / "ptbxl_mini_scores" / f"{row}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = dict(np.load(path)) if path.exists() else {}
    stored.update({f"{dataset}/{name}" + (f" [{tag}]" if tag and name != "labels" else ""):
                   np.asarray(value, dtype=np.float16) for name, value in scores.items()})
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **stored)
    tmp.replace(path)


def paired_probe_differences(results_dir: Path, reference: str, rows: list[str], seeds: list[int],
                             resamples: int = 1000) -> dict[str, Any]:
    """Linear-probe AUC of each row minus the `reference` row (mean over seeds, PTB-XL super fold 10), with a 95 %
    paired bootstrap CI: the same resampled test records for both rows."""
    import numpy as np

    from cgdmer_hf.evaluation import macro_roc_auc

    def load(row: str):
        path = results_dir / "ptbxl_mini_scores" / f"{row}.npz"
        return dict(np.load(path)) if path.exists() else None

    ref = load(reference)
    out: dict[str, Any] = {}
    if ref is None:
        return out
    labels = ref["super/labels"].astype(np.float64)
    rng = np.random.RandomState(0)
    samples = [rng.randint(0, len(labels), len(labels)) for _ in range(resamples)]
    for row in rows:
        other = load(row)
        if other is None or row == reference:
            continue
        out[row] = {}
        for fraction in ("1pct", "10pct", "100pct"):
            keys = [f"super/linear-probe_pretrained_{fraction}_seed{s}" for s in seeds]
            if not all(k in ref and k in other for k in keys):
                continue

            def diff(idx):
                return float(np.mean([macro_roc_auc(other[k][idx].astype(np.float64), labels[idx])
                                      - macro_roc_auc(ref[k][idx].astype(np.float64), labels[idx]) for k in keys]))

            boot = [diff(idx) for idx in samples]
            boot = [b for b in boot if not np.isnan(b)]
            out[row][fraction] = {"difference": round(diff(np.arange(len(labels))), 4),
                                  "ci95": [round(float(np.percentile(boot, 2.5)), 4),
                                           round(float(np.percentile(boot, 97.5)), 4)]}
    return out


def zero_shot_rows(model_dir: Path, data: dict[str, Any], args, features=None
                   ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Zero-shot on every PTB-XL label set with each of `PROMPT_SELECTIONS` (plain names first) and on CPSC2018 with
    plain names and the ensemble (no validation split there), each row with its fold-10 calibration, raw and
    calibrated on fold 9 only. The row's calibration (`row_calibration`, what `ship` saves) is fitted once the
    fold-9 prompts are chosen; the rows with plain names or the ensemble are measured with it, the fold-9 rows with
    a fit of their own prompts. Returns the rows (in `PROMPT_SELECTIONS` order per data set) and the calibration."""
    from cgdmer_hf.evaluation import FeatureCache

    features = features if features is not None else FeatureCache()

    def run(label_set: str, selection: str, calibration: Any) -> list[dict[str, Any]]:
        return [{**row, "prompt_selection": selection} for row in _evaluate(
            model_dir, data, label_set, args, features, scores_tag=selection, tasks=("zero-shot",),
            calibration=calibration, **PROMPT_SELECTIONS[selection])]

    tuned = {label_set: run(label_set, "fold 9", True) for label_set in ZERO_SHOT_SETS}
    calibration = row_calibration(model_dir, data, [r for rows in tuned.values() for r in rows], features)
    rows = []
    for label_set in (*ZERO_SHOT_SETS, "cpsc2018"):
        for selection in PROMPT_SELECTIONS:
            if selection == "fold 9":
                rows += tuned.get(label_set, [])
            else:
                rows += run(label_set, selection, calibration)
    return rows, calibration


def row_calibration(model_dir: Path, data: dict[str, Any], rows: list[dict[str, Any]], features) -> dict[str, Any]:
    """The zero-shot calibration of a row's model, fitted on fold 9 only: every PTB-XL label set with its plain
    class names and with the prompts chosen on fold 9 (the `fold 9` zero-shot rows)."""
    from transformers import AutoTokenizer

    from cgdmer_hf.data import label_names
    from cgdmer_hf.evaluation import calibrate_zero_shot
    from cgdmer_hf.prompts import plain_prompt_set, prompt_set_for_label_set

    tuned = chosen_prompts(rows)
    sets = []
    for label_set in ZERO_SHOT_SETS:
        validation = data[label_set]["validation"]
        names = label_names(validation)
        sets.append((validation, names, plain_prompt_set(label_set)))
        if prompt_set_for_label_set(label_set) in tuned:
            sets.append((validation, names, tuned[prompt_set_for_label_set(label_set)]))
    return calibrate_zero_shot(features.load_model(str(model_dir)), AutoTokenizer.from_pretrained(str(model_dir)),
                               sets, features)


def retrieval_rows(model_dir: Path, data: dict[str, Any], features=None) -> list[dict[str, Any]]:
    """ECG <-> report recall@1/5/10 on PTB-XL fold 10 of a row's model and of a random-init model of its config."""
    from transformers import AutoTokenizer

    from cgdmer_hf.evaluation import FeatureCache
    from cgdmer_hf.evaluation import retrieval_rows as rows_of

    features = features if features is not None else FeatureCache()
    return rows_of(features.load_model(str(model_dir)), AutoTokenizer.from_pretrained(str(model_dir)),
                   data["super"]["test"], features)


def evaluate_row(model_dir: Path, data: dict[str, Any], args) -> dict[str, Any]:
    """The evaluation of one row: `evaluation` (result rows), `zero_shot_calibration` and `retrieval`."""
    from cgdmer_hf.evaluation import FeatureCache, FinetuneSettings

    features = FeatureCache()  # the row's model is loaded, and each split embedded, once
    out: dict[str, Any] = {"evaluation": []}
    if "zero-shot" in args.tasks:
        out["evaluation"], out["zero_shot_calibration"] = zero_shot_rows(model_dir, data, args, features)
        out["retrieval"] = retrieval_rows(model_dir, data, features)
    if "linear-probe" in args.tasks:
        out["evaluation"] += _evaluate(model_dir, data, "super", args, features, tasks=("linear-probe",),
                                       fractions=(0.01, 0.1, 1.0), seeds=tuple(args.seeds))
    if "finetune" in args.tasks:
        out["evaluation"] += _evaluate(model_dir, data, "super", args, features, tasks=("finetune",),
                                       fractions=(1.0,), seeds=(0,),
                                       finetune=FinetuneSettings(epochs=args.finetune_epochs, learning_rate=3e-4))
    return out


def matching(rows: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def summary_cell(rows: list[dict[str, Any]], ci: bool = True, **match: Any) -> str:
    """Mean AUC over seeds (with the seed-0 bootstrap CI unless `ci=False`) of the rows matching `match`."""
    import numpy as np

    found = matching(rows, **match)
    if not found:
        return "–"
    aucs = [r["roc_auc"] for r in found]
    text = f"{np.mean(aucs):.3f}"
    if len(aucs) > 1:
        text += f" ± {np.std(aucs):.3f}"
    interval = found[0].get("ci95")
    if interval and ci:
        text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
    return text


def zero_shot_cell(rows: list[dict[str, Any]], dataset: str) -> str:
    """`plain names [CI] / fold 9` AUC of a data set (CPSC2018: `/ ensemble`, it has no fold 9); `–` where absent."""
    second = "ensemble" if dataset == "cpsc2018" else "fold 9"
    return (summary_cell(rows, task="zero-shot", dataset=dataset, prompt_selection="plain names") + " / "
            + summary_cell(rows, ci=False, task="zero-shot", dataset=dataset, prompt_selection=second))


def plain_names_cells(rows: list[dict[str, Any]]) -> list[str]:
    """STACH and SBRAD AUC (rhythm) and fold-10 super ECE and Brier (raw → fold-9 calibrated) with plain names."""
    def first(dataset: str) -> dict[str, Any]:
        found = matching(rows, task="zero-shot", dataset=dataset, prompt_selection="plain names")
        return found[0] if found else {}

    per_class = first("rhythm").get("per_class") or {}
    cells = [f"{per_class[c]:.3f}" if per_class.get(c) is not None else "–" for c in ("STACH", "SBRAD")]
    calibration = first("super").get("calibration") or {}
    for metric in ("ece", "brier"):
        raw, after = calibration.get(metric), calibration.get(f"{metric}_calibrated")
        cells.append("–" if raw is None else f"{raw:.3f}" + ("" if after is None else f" → {after:.3f}"))
    return cells


def retrieval_cells(retrieval: list[dict[str, Any]], encoder: str) -> list[str]:
    """ECG → report and report → ECG recall@1/5/10 of one encoder; `–` where absent."""
    found = next((r for r in retrieval or [] if r["encoder"] == encoder), None)
    return [f"{found[d][f'R@{k}']:.3f}" if found else "–" for d in ("ecg_to_report", "report_to_ecg")
            for k in RETRIEVAL_KS]


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"PTB-XL mini benchmark ({results['machine']}; preset `{results['preset']}`, {results['max_steps']} steps, "
        f"batch {results['batch_size']}, pretraining seed {results.get('pretrain_seed', 0)}). Macro ROC-AUC on PTB-XL fold 10 "
        f"({results['test_records'].get('super', '?')} records) and CPSC2018 "
        f"({results['test_records'].get('cpsc2018', '?')} records); linear probe: mean ± std over seeds "
        f"{results['seeds']}, [95 % bootstrap CI of seed {results['seeds'][0]}].",
        "",
        "| row | pretrain (s) | zero-shot super | zero-shot sub | zero-shot form | zero-shot rhythm | "
        "zero-shot CPSC2018 | probe 1 % | probe 10 % | probe 100 % | fine-tune 100 % |",
        "| | | plain names / fold 9 | plain names / fold 9 | plain names / fold 9 | plain names / fold 9 | "
        "plain names / ensemble | | | | |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results["rows"].items():
        r = row["evaluation"]
        cells = [name, str(row["training"]["seconds"])]
        cells += [zero_shot_cell(r, d) for d in (*ZERO_SHOT_SETS, "cpsc2018")]
        cells += [summary_cell(r, task="linear-probe", fraction=f) for f in (0.01, 0.1, 1.0)]
        cells.append(summary_cell(r, task="finetune", fraction=1.0))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Zero-shot prompts: first the plain English class names (`scp_statements.csv` descriptions, the "
              "CinC `Dx` names), with no tuning; then, for PTB-XL, per class either the shipped prompt ensemble or "
              "one of its descriptions, whichever scores best on fold 9 (CPSC2018 has no validation split: the full "
              "ensemble). With plain names: sinus tachycardia and bradycardia AUC (rhythm), and the calibration of "
              "the zero-shot probabilities on fold 10 super (expected calibration error over 15 bins and Brier "
              "score, raw → after a Platt fit on fold 9 only):", "",
              "| row | STACH | SBRAD | ECE super | Brier super |", "|---|---|---|---|---|"]
    for name, row in results["rows"].items():
        lines.append("| " + " | ".join([name, *plain_names_cells(row["evaluation"])]) + " |")
    lines += ["", "ECG ↔ report retrieval on fold 10 (cosine of the shared embeddings over the records' distinct "
              "cleaned reports; an ECG's own report is its positive, a report's positives are the ECGs that have "
              "it), recall@1/5/10, with a randomly initialised encoder of the same configuration:", "",
              "| row | encoder | ECG→report R@1 | R@5 | R@10 | report→ECG R@1 | R@5 | R@10 |",
              "|---|---|---|---|---|---|---|---|"]
    for name, row in results["rows"].items():
        for encoder in ("pretrained", "random_init"):
            lines.append("| " + " | ".join([name, encoder, *retrieval_cells(row.get("retrieval"), encoder)]) + " |")
    lines += ["", "With the full ensemble on PTB-XL as well (no choice on fold 9):", "",
              "| row | zero-shot super | zero-shot sub | zero-shot form | zero-shot rhythm |", "|---|---|---|---|---|"]
    for name, row in results["rows"].items():
        cells = [summary_cell(row["evaluation"], task="zero-shot", dataset=d, prompt_selection="ensemble")
                 for d in ZERO_SHOT_SETS]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    lines += ["", f"Training losses, first → last logged step (25 → {results['max_steps']}; `n/t`: weight 0, computed but "
              "not trained). "
              "The masked-ECG loss is a per-patch normalised MSE: predicting zeros scores 1.0. Fold 9 (never trained "
              "on): the masked-ECG loss on the eval masks of `masked_ecg_curve.py` (least squares from the visible "
              "leads at the same time slot: 0.6245), and the loss on the limb leads III, aVR, aVL, aVF with only "
              "leads I and II visible (least squares: 0.2445).", "",
              "| row | masked-ECG loss | masked-report loss | alignment loss | fold-9 masked-ECG | fold-9 limb leads "
              "from I, II |", "|---|---|---|---|---|---|"]
    for name, row in results["rows"].items():
        check = row.get("masked_ecg") or {}
        fold9 = [f"{check[k]:.4f}" if k in check else "–" for k in ("fold9_masked_ecg_loss", "fold9_limb_lead_loss")]
        lines.append("| " + " | ".join([name, *loss_cells(row), *fold9]) + " |")
    paired = results.get("paired_probe_vs_cgdmer") or {}
    if paired:
        lines += ["", "Linear probe, each row minus `cgdmer` (mean over seeds; 95 % paired bootstrap CI over the same "
                  "fold-10 records):", "", "| row | probe 1 % | probe 10 % | probe 100 % |", "|---|---|---|---|"]
        for name, diffs in paired.items():
            cells = [f"{d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" if d else "–"
                     for d in (diffs.get(f) for f in ("1pct", "10pct", "100pct"))]
            lines.append("| " + " | ".join([name, *cells]) + " |")
    lines += ["", "Rows:"] + [f"- `{n}`: {row['description']}" for n, row in results["rows"].items()]
    return "\n".join(lines) + "\n"


def loss_cells(row: dict[str, Any]) -> list[str]:
    """`first → last` logged training value of the ECG, report and alignment losses of a row."""
    first, last = row["training"].get("first_logged"), row["training"].get("last_logged")
    cells = []
    for loss, weight in (("ecg_loss", "ecg_loss_weight"), ("text_loss", "text_loss_weight"),
                         ("alignment_loss", "alignment_loss_weight")):
        if not first or loss not in first:
            cells.append("–")
            continue
        trained = row.get("overrides", {}).get(weight, 1.0) != 0
        cells.append(f"{first[loss]:.3f} → {last[loss]:.3f}" + ("" if trained else " (n/t)"))
    return cells


def chosen_prompts(evaluation: list[dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """The prompt sets as chosen on fold 9 (`{prompt set: {class: [descriptions]}}`), from the zero-shot rows."""
    from cgdmer_hf.prompts import load_prompt_set

    sets = {}
    for r in evaluation:
        if r["task"] == "zero-shot" and r.get("prompt_selection") == "fold 9":
            full = load_prompt_set(r["prompts"])
            sets[r["prompts"]] = {label: full[label] if choice == "ensemble" else [choice]
                                  for label, choice in r["selection"]["prompts_per_class"].items()}
    return sets


def masked_ecg_check(model, validation, figure: Optional[Path] = None) -> dict[str, float]:
    """Fold-9 masked-ECG loss (eval masks) and limb-lead loss (from leads I and II alone) of a pretraining model,
    and, given `figure`, a PNG of masked patches against the truth (`benchmarks/masked_ecg_curve.py` does the work)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("masked_ecg_curve", REPO / "benchmarks" / "masked_ecg_curve.py")
    curve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(curve)
    batches = curve.validation_batches(validation)
    if figure is not None:
        curve.plot_reconstructions(model, batches[0], figure)
    return {"fold9_masked_ecg_loss": round(curve.fold9_loss(model, batches), 4),
            "fold9_limb_lead_loss": round(curve.fold9_loss(model, batches, limb_leads=True), 4)}


def card_rows(evaluation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `eval_results.json` rows of the model card: seed 0; zero-shot with plain names (`zero-shot plain
    names`) and with the fold-9 prompts (PTB-XL) or the ensemble (CPSC2018) (`zero-shot`)."""
    def task(r: dict[str, Any]) -> str:
        if r["task"] == "zero-shot" and r.get("prompt_selection") == "plain names":
            return "zero-shot plain names"
        return r["task"] + (f" {r['fraction'] * 100:g}%" if r.get("fraction") else "")

    return [{"task": task(r), "dataset": "CPSC2018" if r["dataset"] == "cpsc2018" else f"PTB-XL {r['label_set']}",
             "metric": "roc_auc", "value": round(r["roc_auc"], 4), "split": "test"}
            for r in evaluation if r.get("seed", 0) == 0 and r.get("encoder", "pretrained") == "pretrained"
            and (r.get("prompt_selection") != "ensemble" or r["dataset"] == "cpsc2018")]


def ship_calibration(row: dict[str, Any], target: Path) -> str:
    """Write the row's fold-9 zero-shot calibration into `target/config.json` and its fold-10 reliability diagram
    (super, plain names) as `zero_shot_reliability.png`; the model-card paragraph about it ('' without one)."""
    from cgdmer_hf.evaluation import reliability_figure

    calibration = row.get("zero_shot_calibration")
    if not calibration:
        print("no zero-shot calibration in the results (run --reevaluate zero-shot): shipped uncalibrated")
        return ""
    config_path = target / "config.json"
    config = json.loads(config_path.read_text())
    config["zero_shot_calibration"] = calibration
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    found = matching(row["evaluation"], task="zero-shot", dataset="super", prompt_selection="plain names")
    summary = (found[0].get("calibration") or {}) if found else {}
    text = (f"\n\n**Calibrated zero-shot probabilities.** The pipeline's scores are calibrated by default: a Platt "
            f"fit `sigmoid(scale * logit + bias)` on PTB-XL fold 9 only ({len(calibration['per_label'])} label "
            "texts with their own pair, one shared pair for any other label), stored as `zero_shot_calibration` in "
            "`config.json`; `calibrated=False` gives the uncalibrated `sigmoid(logit)`, and every result says which "
            "(`\"calibrated\"`). A label the model ranks backwards on fold 9 gets scale 0: a constant probability "
            "(its fold-9 rate).")
    if config.get("zero_shot_centre") is not None:
        which = " of a label with no word in the report bank" if config.get("zero_shot_reports") else ""
        text += (f" The logits{which} are centred: `config.json` holds `zero_shot_centre`, the mean shared "
                 "embedding of the pretraining reports (folds 1-8), and `zero_shot_centre_offset`, the mean similarity "
                 "to it of the "
                 "folds 1-8 ECGs; each ECG's similarity to the centre, less the offset, comes off all its label "
                 "similarities, so an ECG's likeness to the average report does not raise all its labels at once.")
    if config.get("zero_shot_reports"):
        text += (f" A label is scored through the report bank (`zero_shot_reports` in `config.json`: the "
                 f"{len(config['zero_shot_reports'])} distinct folds 1-8 reports with their counts): its uncalibrated "
                 "probability is the expected squared share (by idf) of its words in the reports the ECG is likely "
                 "to have, each report weighted by its count and `exp(exp(logit_scale) * ecg . report)`; a label "
                 "with no word in the bank keeps its own centred logit.")
    if "ece_calibrated" in summary:
        reliability_figure(summary, target / "zero_shot_reliability.png", "PTB-XL fold 10 super, plain names")
        text += (" On fold 10 super with the plain class names and this calibration the expected calibration "
                 f"error is {summary['ece']:.3f} raw and {summary['ece_calibrated']:.3f} calibrated (Brier "
                 f"{summary['brier']:.3f} → {summary['brier_calibrated']:.3f}):\n\n"
                 "![Zero-shot reliability on fold 10](zero_shot_reliability.png)")
    return text


def ship(results: dict[str, Any], target: Path, data: dict[str, Any]) -> None:
    """Export the full CG-DMER row as a complete fp16 model folder with a model card, its fold-9 prompts
    (`zero_shot_prompts/<set>.json`, loadable with `load_prompt_set(path)`), its fold-9 zero-shot calibration (in
    `config.json`, with a reliability diagram) and a figure of its masked-ECG reconstructions on fold 9."""
    import torch

    from cgdmer_hf import CGDMERForPreTraining, CGDMERProcessor
    from cgdmer_hf.hub import DEFAULT_EVALUATION_PROTOCOL, make_model_card, save_model_dir

    source = Path(results["rows"]["cgdmer"]["model_dir"])
    model = CGDMERForPreTraining.from_pretrained(source).to(torch.float16)
    processor = CGDMERProcessor.from_pretrained(source)
    if target.exists():
        shutil.rmtree(target)
    save_model_dir(target, model, processor)
    config_path = target / "config.json"
    config = json.loads(config_path.read_text())
    config["dtype"] = "float32"  # fp16 on disk, loaded as fp32 (CPU inference)
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    card_results = target / "eval_results.json"
    card_results.write_text(json.dumps({"results": card_rows(results["rows"]["cgdmer"]["evaluation"])}, indent=2))
    prompts_dir = target / "zero_shot_prompts"
    prompts_dir.mkdir()
    for name, prompts in chosen_prompts(results["rows"]["cgdmer"]["evaluation"]).items():
        (prompts_dir / f"{name}.json").write_text(json.dumps(prompts, indent=2, ensure_ascii=False) + "\n")
    protocol = DEFAULT_EVALUATION_PROTOCOL + (
        " Zero-shot is reported first with the plain English class names (`scp_statements.csv` descriptions, the "
        "CinC `Dx` names; no tuning: `zero-shot plain names`). The `zero-shot` rows on PTB-XL use, per class, "
        "the package's prompt ensemble or one of its descriptions, whichever scored best on fold 9; the choice "
        "ships in `zero_shot_prompts/` (pass `candidate_labels=load_prompt_set(\"zero_shot_prompts/ptbxl_super.json"
        "\")`). CPSC2018 has no validation split: its `zero-shot` row uses the full `cpsc2018` ensemble. Numbers from `benchmarks/ptbxl_mini.py` of the cgdmer_hf "
        f"repository (preset `{results['preset']}`, {results['max_steps']} steps, {results['machine']}).")
    protocol += ship_calibration(results["rows"]["cgdmer"], target)
    check = masked_ecg_check(CGDMERForPreTraining.from_pretrained(target, dtype=torch.float32).eval(),
                             data["super"]["validation"], target / "masked_ecg_reconstruction.png")
    results["rows"]["cgdmer"]["shipped_masked_ecg"] = check
    protocol += (
        f"\n\n**Masked ECG modeling.** On PTB-XL fold 9 (never trained on) the masked-ECG loss of these weights "
        f"(per-patch normalised MSE on the masked patches, 75 % of the tokens masked across leads and time) is "
        f"{check['fold9_masked_ecg_loss']:.4f}, where predicting zeros scores 1.0 and least squares from the visible "
        f"leads at the same time slot 0.6245; the limb leads III, aVR, aVL and aVF reconstructed from leads I and II "
        f"alone score {check['fold9_limb_lead_loss']:.4f}. Masked patches (red) against the truth (black, per-patch "
        "normalised as the loss sees them) on fold-9 records:\n\n"
        "![Masked-ECG reconstructions on fold 9](masked_ecg_reconstruction.png)")
    make_model_card(target, card_results, repo_id="cgdmer-base", evaluation_protocol=protocol).save(
        target / "README.md")
    print(f"shipped {target} ({sum(f.stat().st_size for f in target.iterdir()) / 2**20:.1f} MiB)")


def row_masked_ecg(row: dict[str, Any], data: dict[str, Any]) -> Optional[dict[str, float]]:
    """`masked_ecg_check` of a finished row's saved model (lead x patch tokens only: the limb-lead protocol masks
    single leads), else `None`."""
    import torch

    from cgdmer_hf import CGDMERForPreTraining

    if row["training"]["ecg_design"]["token_mode"] != "lead_patch":
        return None
    model = CGDMERForPreTraining.from_pretrained(row["model_dir"], dtype=torch.float32).eval()
    return masked_ecg_check(model, data["super"]["validation"])


def reevaluate_zero_shot(results: dict[str, Any], name: str, data: dict[str, Any], args,
                         retrieval_only: bool = False) -> None:
    """Replace the zero-shot rows, calibration and retrieval of a finished row (`retrieval_only`: its retrieval)
    with ones computed now from its saved model."""
    from cgdmer_hf.evaluation import FeatureCache

    row = results["rows"].get(name)
    if row is None:
        print(f"row {name}: no results to re-evaluate, skipped")
        return
    print(f"\n=== row {name}: re-evaluating {'retrieval' if retrieval_only else 'zero-shot'}", flush=True)
    start, features, model_dir = time.perf_counter(), FeatureCache(), Path(row["model_dir"])
    if not retrieval_only:
        add_zero_shot_centre(model_dir, data)
        kept = [r for r in row["evaluation"] if r["task"] != "zero-shot"]
        zero_shot, row["zero_shot_calibration"] = zero_shot_rows(model_dir, data, args, features)
        row["evaluation"] = zero_shot + kept
        row["zero_shot_seconds"] = round(time.perf_counter() - start, 1)
    row["retrieval"] = retrieval_rows(model_dir, data, features)


def add_zero_shot_centre(model_dir: Path, data: dict[str, Any]) -> None:
    """Give a model folder saved before the zero-shot centre (its offset, its report bank) existed the ones
    `pretrain` now fits on its training split (folds 1-8), written into its `config.json` (weights untouched; a
    calibration fitted on other logits is dropped, `zero_shot_rows` fits a new one); a folder with all three is
    left as it is."""
    from transformers import AutoTokenizer

    from cgdmer_hf.evaluation import fit_zero_shot_centre, load_model

    saved = json.loads((model_dir / "config.json").read_text())
    if all(saved.get(k) is not None for k in ("zero_shot_centre", "zero_shot_centre_offset", "zero_shot_reports")):
        return
    model = load_model(str(model_dir))
    centre = fit_zero_shot_centre(model, AutoTokenizer.from_pretrained(str(model_dir)), data["super"]["train"])
    saved.update(zero_shot_centre=centre, zero_shot_centre_offset=model.config.zero_shot_centre_offset,
                 zero_shot_reports=model.config.zero_shot_reports, zero_shot_calibration=None)
    (model_dir / "config.json").write_text(json.dumps(saved, indent=2) + "\n")
    print(f"{model_dir}: zero-shot centre fitted on {len(data['super']['train'])} training records", flush=True)


def write_results(results: dict[str, Any], results_dir: Path, ran: Sequence[str] = ()) -> None:
    """Write the JSON and the table. Rows on disk are kept, and only the rows this process ran (or changed) in
    `ran` replace them, so parallel processes (rows may run in parallel) never write back a stale copy."""
    path = results_dir / "ptbxl_mini.json"
    if path.exists():
        on_disk = json.loads(path.read_text())
        results["rows"] = {**on_disk["rows"], **{n: results["rows"][n] for n in ran}}
        results["commands"] = list(dict.fromkeys([*on_disk.get("commands", []), *results.get("commands", [])]))
    if "cgdmer" in results["rows"]:
        results["paired_probe_vs_cgdmer"] = paired_probe_differences(
            results_dir, "cgdmer", list(results["rows"]), results["seeds"], resamples=results.get("bootstrap", 1000))
    tmp = results_dir / "ptbxl_mini.json.tmp"
    tmp.write_text(json.dumps(results, indent=2, default=str))
    tmp.replace(path)
    (results_dir / "ptbxl_mini.md").write_text(markdown(results))
    print(markdown(results))


def main() -> int:
    args = parse_args()
    if not (args.data / "ptbxl_index.csv").exists():
        print(f"SKIP: PTB-XL data not found at {args.data} (pass --data); nothing was run.")
        return 0
    import torch

    spec = json.loads(CONFIGS.read_text())
    names = args.rows or list(spec["rows"])
    unknown = [n for n in names if n not in spec["rows"]]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; choose from {list(spec['rows'])}")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out_json = args.results_dir / "ptbxl_mini.json"
    results = json.loads(out_json.read_text()) if out_json.exists() else {"rows": {}}
    machine = (torch.cuda.get_device_name() if torch.cuda.is_available()
               else f"CPU ({os.cpu_count()} cores, {platform.machine()}), torch {torch.__version__}")
    budget = dict(preset=spec["preset"], max_steps=args.max_steps, batch_size=args.batch_size,
                  learning_rate=args.learning_rate, seeds=args.seeds, pretrain_seed=args.pretrain_seed,
                  bootstrap=args.bootstrap)
    changed = {k: (results[k], v) for k, v in budget.items() if results["rows"] and k in results and results[k] != v}
    if changed:
        raise SystemExit(f"{out_json} holds rows made with other settings {changed} (old, new): every row must use "
                         "the same budget; pass --results-dir for a new table")
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    results.update(budget, machine=machine, commands=[*results.get("commands", []), command])
    data = load_data(args.data, args.cache_dir)
    results["test_records"] = {"super": len(data["super"]["test"]), "cpsc2018": len(data["cpsc2018"]["test"])}
    results["train_records"] = len(data["super"]["train"])
    results["validation_records"] = len(data["super"]["validation"])
    ran: list[str] = []
    for name in names:
        if args.reevaluate and name in results["rows"]:
            ran.append(name)
        if args.reevaluate in ("zero-shot", "retrieval"):
            reevaluate_zero_shot(results, name, data, args, retrieval_only=args.reevaluate == "retrieval")
            continue
        if args.reevaluate == "masked-ecg":
            if name in results["rows"]:
                results["rows"][name]["masked_ecg"] = row_masked_ecg(results["rows"][name], data)
            continue
        if name in results["rows"] and not args.force:
            print(f"row {name}: results exist, skipped (--force to re-run)")
            continue
        row_spec = spec["rows"][name]
        print(f"\n=== row {name}: {row_spec['description']}", flush=True)
        model_dir, training = pretrain_row(name, row_spec, spec["preset"], data, args)
        start = time.perf_counter()
        evaluation = evaluate_row(model_dir, data, args)
        row = {"description": row_spec["description"], "overrides": row_spec.get("overrides", {}),
               "model_dir": str(model_dir), "training": training, **evaluation,
               "evaluation_seconds": round(time.perf_counter() - start, 1),
               "load_average_1min": os.getloadavg()[0]}
        row["masked_ecg"] = row_masked_ecg(row, data)
        results["rows"][name] = row
        ran.append(name)
        write_results(results, args.results_dir, ran)
    if args.reevaluate:
        write_results(results, args.results_dir, ran)
    if args.ship:
        ship(results, args.ship, data)
        write_results(results, args.results_dir, ["cgdmer"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
