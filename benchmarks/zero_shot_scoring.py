"""Zero-shot scoring variants of a model folder on PTB-XL fold 10 and CPSC2018 (no training, no tuning).

    python benchmarks/zero_shot_scoring.py [--model cgdmer-base] [--data ../shared/data]

Macro ROC-AUC (classes with positives and negatives in the test set, as in `ptbxl_mini.py`) of the plain English
class names and of the shipped prompt ensembles, scored three ways:
- `raw`: the model's logit of each (ECG, label) pair, as the pipeline scores it;
- `centred on labels`: each ECG's logits minus their mean over the candidate labels of the query (a per-ECG
  offset removed; the ranking of the labels within an ECG is unchanged);
- `centred on reports`: the label embeddings minus the mean shared embedding of the training reports (folds 1-8),
  a fixed direction that does not depend on the candidate labels: what `config.zero_shot_centre` holds
  (`cgdmer_hf.evaluation.fit_zero_shot_centre`, fitted by `pretrain`) and the model's zero-shot logits subtract.
`--wording PACE="pacemaker"` (repeatable) adds a row of the plain names with those classes worded otherwise, to
see how much one wording costs (a diagnostic, never a headline number: the wording is chosen by hand).
Prints a table and writes `benchmarks/results/zero_shot_scoring.json`. Skips with a message when the data is
absent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
DATA_SETS = ("super", "sub", "form", "rhythm", "cpsc2018")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=REPO / "cgdmer-base")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "zero_shot_scoring.json")
    p.add_argument("--wording", action="append", default=[], metavar="CODE=TEXT",
                   help="also score the plain names with class CODE worded TEXT (repeatable)")
    args = p.parse_args()
    pairs = [w.partition("=") for w in args.wording]
    if any(not code or not sep or not text.strip() for code, sep, text in pairs):
        p.error(f"--wording takes CODE=TEXT with both parts, got {args.wording}")
    wording = {code: text for code, _, text in pairs}
    if not (args.data / "ptb-xl").is_dir():
        print(f"skipped: PTB-XL not found under {args.data} (the benchmark needs ../shared/data)")
        return 0
    import ptbxl_mini
    from transformers import AutoTokenizer

    from cgdmer_hf.data import label_names
    from cgdmer_hf.evaluation import fit_zero_shot_centre
    from cgdmer_hf.evaluation.embeddings import column, compute_embeddings, load_model
    from cgdmer_hf.evaluation.metrics import _auc_functions
    from cgdmer_hf.evaluation.zero_shot import label_embeddings
    from cgdmer_hf.prompts import label_set_prompts, load_prompt_set, plain_prompt_set

    data = ptbxl_mini.load_data(args.data, None)
    model, tokenizer = load_model(str(args.model)), AutoTokenizer.from_pretrained(str(args.model))
    centre = np.asarray(fit_zero_shot_centre(model, tokenizer, data["super"]["train"]))
    multilabel_auc = _auc_functions()[1]
    shipped = label_set_prompts()
    results, lines = {}, ["| data set | prompts | raw | centred on labels | centred on reports |", "|---|---|---|---|---|"]
    for name in DATA_SETS:
        test = data[name]["test"]
        ecg = compute_embeddings(model, test, kind="shared", normalize=True)
        labels = column(test, "labels")
        names = label_names(test)
        selections = [("plain names", plain_prompt_set(name)), ("ensemble", load_prompt_set(shipped[name]))]
        reworded = {code: [text] for code, text in wording.items() if code in names}
        if reworded:
            label = ", ".join(f"{code}={text[0]!r}" for code, text in reworded.items())
            selections.append((f"plain names, {label}", {**plain_prompt_set(name), **reworded}))
        for prompts_name, prompts in selections:
            text = label_embeddings(model, tokenizer, {k: prompts[k] for k in names}).float().numpy()
            logits = ecg @ text.T  # the model's logit is a positive scale of this plus a bias: the same ranking
            variants = {"raw": logits, "centred on labels": logits - logits.mean(1, keepdims=True),
                        "centred on reports": ecg @ (text - centre).T}
            row = {}
            for variant, scores in variants.items():
                auc = multilabel_auc(scores, labels, names)  # classes without both outcomes are left out
                row[variant] = {"macro_auc": round(auc["roc_auc"], 4),
                                "per_class": {k: round(v, 4) for k, v in auc["per_class"].items() if v is not None}}
            results.setdefault(name, {})[prompts_name] = row
            lines.append(f"| {name} | {prompts_name} | " + " | ".join(f"{row[v]['macro_auc']:.3f}" for v in variants) + " |")
    print("\n".join(lines))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"model": str(args.model.relative_to(REPO) if args.model.is_relative_to(REPO)
                                                     else args.model), "results": results, "table": lines}, indent=2))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
