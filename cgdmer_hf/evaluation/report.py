"""Reports of the harness: `results.json`, the Markdown tables of `results.md`, ROC-curve PNGs and the model-card
rows (`card_results.json`, made by `cgdmer_hf.hub.card_results`)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from .metrics import _auc_functions


def _pct(fraction: float) -> str:
    return f"{fraction * 100:g}pct"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _mean_std(values: Sequence[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def _calibration_cell(row: dict[str, Any], metric: str) -> str:
    """`raw (calibrated)` value of a calibration metric of a zero-shot row; `-` when not measured."""
    found = row.get("calibration") or {}
    if metric not in found:
        return "-"
    after = found.get(f"{metric}_calibrated")
    return f"{found[metric]:.3f}" + (f" ({after:.3f})" if after is not None else "")


def markdown_tables(results: dict[str, Any]) -> str:
    """Markdown tables of a results dict: one table per task (encoders x label fractions, mean ± std over seeds)
    and per-class AUCs of the pretrained encoder."""
    rows = results["results"]
    lines = [f"# Evaluation of {results['model']}", "",
             f"Data: {results['data'] or '-'}; label set: {results['label_set'] or '-'} "
             f"({len(results['label_names'])} classes); splits: "
             + ", ".join(f"{k} {v}" for k, v in results["splits"].items()), "",
             "Macro ROC-AUC on the test split over the classes with positives there; every choice made on the "
             "validation split. Mean ± sample std over seeds; [95 % bootstrap CI] for single runs.", ""]
    zero = [r for r in rows if r["task"] == "zero-shot"]
    if zero:
        lines += ["## Zero-shot", "", "| encoder | prompts | macro ROC-AUC | 95 % CI | ECE (calibrated) | Brier "
                  "(calibrated) |", "|---|---|---|---|---|---|"]
        for r in zero:
            ci = f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]" if r.get("ci95") else "-"
            lines.append(f"| {r['encoder']} | {r['prompts']} | {_fmt(r['roc_auc'])} | {ci} | "
                         f"{_calibration_cell(r, 'ece')} | {_calibration_cell(r, 'brier')} |")
        lines.append("")
    for task, title in (("linear-probe", "Linear probe (frozen features)"), ("finetune", "Fine-tuning")):
        task_rows = [r for r in rows if r["task"] == task]
        if not task_rows:
            continue
        fractions = sorted({r["fraction"] for r in task_rows})
        header = " | ".join(f"{_pct(f).replace('pct', ' %')} ({_train_sizes(task_rows, f)})" for f in fractions)
        lines += [f"## {title}", "", f"| encoder | {header} |", "|---" * (len(fractions) + 1) + "|"]
        for encoder in dict.fromkeys(r["encoder"] for r in task_rows):
            cells = []
            for f in fractions:
                runs = [r for r in task_rows if r["encoder"] == encoder and r["fraction"] == f]
                cell = _mean_std([r["roc_auc"] for r in runs])
                if len(runs) == 1 and runs[0].get("ci95"):
                    cell += f" [{runs[0]['ci95'][0]:.3f}, {runs[0]['ci95'][1]:.3f}]"
                cells.append(cell)
            lines.append(f"| {encoder} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _per_class_table(rows, results["label_names"])
    excluded = sorted({c for r in rows for c in r.get("excluded_classes", [])})
    if excluded:
        lines += [f"Classes without positives (or negatives) in the test split, left out of the macro average: "
                  f"{', '.join(excluded)}.", ""]
    return "\n".join(lines)


def _train_sizes(rows: Sequence[dict[str, Any]], fraction: float) -> str:
    sizes = sorted({r["num_train"] for r in rows if r["fraction"] == fraction})
    return "n=" + "/".join(str(s) for s in sizes)


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _per_class_table(rows: Sequence[dict[str, Any]], label_names: Sequence[str]) -> list[str]:
    """Per-class test AUC of the pretrained encoder: zero-shot and the largest-fraction probe / fine-tune
    (mean over seeds)."""
    columns = []
    for task in ("zero-shot", "linear-probe", "finetune"):
        task_rows = [r for r in rows if r["task"] == task and r["encoder"] == "pretrained"]
        if not task_rows:
            continue
        if task != "zero-shot":
            top = max(r["fraction"] for r in task_rows)
            task_rows = [r for r in task_rows if r["fraction"] == top]
            title = f"{task} {_pct(top).replace('pct', ' %')}"
        else:
            title = task
        columns.append((title, task_rows))
    if not columns:
        return []
    lines = ["## Per-class ROC-AUC (pretrained encoder)", "",
             "| class | " + " | ".join(t for t, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name in label_names:
        cells = [_mean_std([r["per_class"].get(name) for r in task_rows]) for _, task_rows in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def plot_roc_curves(name: str, scores: np.ndarray, labels: np.ndarray, label_names: Sequence[str],
                    path: Union[str, Path]) -> None:
    """One PNG with the test ROC curve of every class that has positives and negatives."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    binary, _, curve = _auc_functions()
    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=100)
    for j, label in enumerate(label_names):
        y = labels[:, j]
        if y.min() == y.max():
            continue
        fpr, tpr = curve(scores[:, j], y)
        ax.plot(fpr, tpr, lw=1.2, label=f"{label} ({binary(scores[:, j], y):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01),
           title=name.replace("_", " ").replace("pct", " %"))
    ax.legend(fontsize=7, loc="lower right", ncol=1 if len(label_names) <= 12 else 2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_results(results: dict[str, Any], curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
                  output_dir: Union[str, os.PathLike]) -> dict[str, Path]:
    """Write `results.json`, `results.md`, `card_results.json` (for `cgdmer push --results`) and
    `roc/<run>.png`; returns the paths written."""
    from ..hub import card_results

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "results.md", "card": out / "card_results.json"}
    paths["json"].write_text(json.dumps(_jsonable(results), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["card"].write_text(json.dumps({"results": card_results(results)}, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown_tables(_jsonable(results)), encoding="utf-8")
    if curves:
        (out / "roc").mkdir(exist_ok=True)
        for name, scores, labels in curves:
            plot_roc_curves(name, scores, labels, results["label_names"], out / "roc" / f"{name}.png")
    return paths


__all__ = ["markdown_tables", "plot_roc_curves", "write_results"]
