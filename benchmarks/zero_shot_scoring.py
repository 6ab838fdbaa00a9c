"""Zero-shot scoring variants of a model folder on PTB-XL fold 10 and CPSC2018 (no training, no tuning).

    python benchmarks/zero_shot_scoring.py [--model cgdmer-base] [--data ../shared/data]

Macro ROC-AUC (classes with positives and negatives in the test set, as in `ptbxl_mini.py`) of the plain English
class names and of the shipped prompt ensembles, scored three ways:
- `raw`: the model's logit of each (ECG, label) pair, as the pipeline scores it;
- `centred on labels`: each ECG's logits minus their mean over the candidate labels of the query (a per-ECG
  offset removed; the ranking of the labels within an ECG is unchanged);
- `centred on reports`: the label embeddings minus the mean shared embedding of the training reports (folds 1-8),
  a fixed direction that does not depend on the candidate labels: what `config.zero_shot_centre` holds
  (`cgdmer_hf.evaluation.fit_zero_shot_centre`, fitted by `pretrain`) and the model's zero-shot logits subtract;
- `centred, report bank mean`: as `centred on reports`, each description embedded as the mean of the training
  reports that share its words (`config.zero_shot_reports`, fitted with the centre;
  `CGDMERModel.zero_shot_label_embeddings`). The first three use the descriptions' own embeddings.
- `report bank posterior` (what the pipeline scores): the expected share of a label's words in the bank reports,
  each weighted by its count and `exp(exp(logit_scale) * ecg . report)` (`CGDMERModel.zero_shot_logits` of
  `zero_shot_labels`).
`--wording PACE="pacemaker"` (repeatable) adds a row of the plain names with those classes worded otherwise, to
see how much one wording costs (a diagnostic, never a headline number: the wording is chosen by hand).
`--top CODE` (repeatable) prints, for each data set holding class CODE, the classes of the 15 test records the
shipped scoring (plain names) ranks highest for it: what a class is confused with.
`--bank-sweep` adds the fold-9 (validation) choices of the report bank: the plain-name macro AUC of super, sub,
form and rhythm on fold 9 (a) of the bank mean for each power of the matched share (`report_bank_weights`), for the
best match only (power -> infinity) and with each distinct report counted once (the shipped
`ZERO_SHOT_MATCH_POWER` is the best sum); (b) of the bank posterior at multiples of the model's SigLIP temperature
`exp(logit_scale)` (the shipped one is 1x; as it goes to 0 the posterior ranks nearly as the bank mean does), with
each distinct report counted once in the posterior's prior (the shipped prior is the reports' counts), and with
each report's weight also times the share of its own words the label holds (`precision ** q`; the shipped q is 0).
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
    p.add_argument("--top", action="append", default=[], metavar="CODE",
                   help="print the classes of the 15 test records scored highest for class CODE (repeatable)")
    p.add_argument("--bank-sweep", action="store_true", help="also the fold-9 choice of the report bank's weighting")
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
    from cgdmer_hf.evaluation.zero_shot import zero_shot_labels, zero_shot_logits
    from cgdmer_hf.prompts import label_set_prompts, load_prompt_set, plain_prompt_set

    data = ptbxl_mini.load_data(args.data, None)
    model, tokenizer = load_model(str(args.model)), AutoTokenizer.from_pretrained(str(args.model))
    centre = np.asarray(fit_zero_shot_centre(model, tokenizer, data["super"]["train"]))
    multilabel_auc = _auc_functions()[1]
    shipped = label_set_prompts()
    variant_names = ("raw", "centred on labels", "centred on reports", "centred, report bank mean",
                     "report bank posterior")
    results, lines = {}, ["| data set | prompts | " + " | ".join(variant_names) + " |", "|---" * 7 + "|"]
    saved_top: dict[str, list[str]] = {}
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
            used = {k: prompts[k] for k in names}
            text = zero_shot_labels(model, tokenizer, used, use_report_bank=False).embeds.float().numpy()
            scored = zero_shot_labels(model, tokenizer, used)
            bank = scored.embeds.float().numpy()
            logits = ecg @ text.T  # the model's logit is a positive scale of this plus a bias: the same ranking
            variants = dict(zip(variant_names, (logits, logits - logits.mean(1, keepdims=True), ecg @ (text - centre).T,
                                                ecg @ (bank - centre).T, zero_shot_logits(model, ecg, scored)),
                                strict=True))
            row = {}
            for variant, scores in variants.items():
                auc = multilabel_auc(scores, labels, names)  # classes without both outcomes are left out
                row[variant] = {"macro_auc": round(auc["roc_auc"], 4),
                                "per_class": {k: round(v, 4) for k, v in auc["per_class"].items() if v is not None}}
            results.setdefault(name, {})[prompts_name] = row
            if prompts_name == "plain names":
                saved_top.update(top_records(name, variants["report bank posterior"], labels, names, args.top))
            lines.append(f"| {name} | {prompts_name} | " + " | ".join(f"{row[v]['macro_auc']:.3f}" for v in variants) + " |")
    print("\n".join(lines))
    saved = {"model": str(args.model.relative_to(REPO) if args.model.is_relative_to(REPO) else args.model),
             "results": results, "table": lines, "top_records": saved_top}
    if args.bank_sweep:
        saved["bank_sweep_fold9"] = bank_sweep(model, tokenizer, data, centre)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(saved, indent=2))
    print(f"wrote {args.output}")
    return 0


def top_records(name: str, scores: np.ndarray, labels: np.ndarray, names: list[str], codes: list[str],
                count: int = 15) -> dict[str, list[str]]:
    """`{"<data set>/<code>": [classes of each of the `count` records scored highest for code]}`; printed."""
    found = {}
    for code in (c for c in codes if c in names):
        j = names.index(code)
        top = np.argsort(-scores[:, j], kind="stable")[:count]
        found[f"{name}/{code}"] = ["+".join(n for n, v in zip(names, labels[i], strict=True) if v) or "-" for i in top]
        print(f"{name} {code}: top {count} records are {', '.join(found[f'{name}/{code}'])}")
    return found


def bank_sweep(model, tokenizer, data, centre: np.ndarray) -> dict[str, dict[str, float]]:
    """Fold-9 plain-name macro AUC of the PTB-XL label sets for each weighting of the report bank; printed."""
    from cgdmer_hf.data import label_names
    from cgdmer_hf.evaluation.embeddings import column, compute_embeddings
    from cgdmer_hf.evaluation.metrics import _auc_functions
    from cgdmer_hf.evaluation.zero_shot import zero_shot_labels, zero_shot_logits
    from cgdmer_hf.modeling_cgdmer import report_bank_weights
    from cgdmer_hf.prompts import clean_prompts, plain_prompt_set

    bank = model.config.zero_shot_reports
    variants = {f"power {p:g}": (bank, p) for p in (1, 2, 4, 8, 16)}
    variants.update({"best match only": (bank, None), "power 2, each report once": ({t: 1 for t in bank}, 2)})
    table, multilabel_auc = {}, _auc_functions()[1]
    for name in DATA_SETS[:4]:
        validation = data[name]["validation"]
        ecg, labels = compute_embeddings(model, validation, kind="shared", normalize=True), column(validation, "labels")
        names = label_names(validation)
        prompts = {k: plain_prompt_set(name)[k] for k in names}
        own = zero_shot_labels(model, tokenizer, prompts, use_report_bank=False).embeds.double().numpy()
        shipped = zero_shot_labels(model, tokenizer, prompts)
        reports = shipped.bank_embeds.numpy()  # the model's cached embeddings of the bank's reports
        descriptions = [texts[0] for _, texts in clean_prompts(prompts)]  # plain names: one description each
        for variant, (counts, power) in variants.items():
            weights = report_bank_weights(counts, descriptions, power or 1.0).numpy()
            if power is None:  # the best match only: the reports holding the largest share, by count
                share = weights / np.asarray(list(counts.values()), dtype=float)
                weights = np.where(share >= share.max(1, keepdims=True) * (1 - 1e-9), weights / share.clip(1e-300), 0.0)
                weights[share.max(1) == 0] = 0.0
            text = np.where(weights.sum(1, keepdims=True) > 0, weights @ reports, own)
            text /= np.linalg.norm(text, axis=1, keepdims=True)
            auc = multilabel_auc(ecg @ (text - centre).T, labels, names)["roc_auc"]
            table.setdefault(f"mean, {variant}", {})[name] = round(auc, 4)
        for variant, logits in posterior_variants(model, shipped, ecg, descriptions, bank):
            table.setdefault(variant, {})[name] = round(multilabel_auc(logits, labels, names)["roc_auc"], 4)
    print("\nReport bank, fold 9, plain names (macro AUC):\n| scoring | super | sub | form | rhythm | sum |\n"
          "|---|---|---|---|---|---|")
    for variant, row in table.items():
        row["sum"] = round(sum(row.values()), 4)
        print(f"| {variant} | " + " | ".join(f"{v:.3f}" for v in row.values()) + " |")
    return table


def posterior_variants(model, labels, ecg: np.ndarray, descriptions: list[str], bank: dict[str, int],
                       factors=(0.5, 1.0, 1.5, 2.0), precision_powers=(0.5, 1.0, 2.0)):
    """`(name, logits)` of the bank posterior with the model's SigLIP temperature times each factor; with a uniform
    prior over the bank's distinct reports instead of their counts (same shares of the label's words); and with
    each report's weight also times its precision ** q, the share (by idf) of the report's own words that the
    label's description holds (a long report of many findings then counts less for each; one description per
    label)."""
    import math

    import torch

    from cgdmer_hf.evaluation.zero_shot import zero_shot_logits
    from cgdmer_hf.modeling_cgdmer import ZeroShotLabels

    scale = model.base_model.logit_scale
    original = scale.data.clone()
    try:
        for factor in factors:
            scale.data = original + math.log(factor)
            yield f"posterior, temperature {factor:g}x", zero_shot_logits(model, ecg, labels)
    finally:
        scale.data = original
    uniform = ZeroShotLabels(labels.embeds, labels.bank_weights / labels.bank_counts, labels.bank_embeds,
                             torch.ones_like(labels.bank_counts))
    yield "posterior, 1x, each distinct report once", zero_shot_logits(model, ecg, uniform)
    precision = report_precision(bank, descriptions)
    for q in precision_powers:
        weighted = ZeroShotLabels(labels.embeds, labels.bank_weights * precision ** q, labels.bank_embeds,
                                  labels.bank_counts)
        yield f"posterior, 1x, times precision ** {q:g}", zero_shot_logits(model, ecg, weighted)


def report_precision(bank: dict[str, int], descriptions: list[str]):
    """`(descriptions, bank)` float64: the idf share of each bank report's words that each description holds."""
    import torch

    from cgdmer_hf.modeling_cgdmer import _bank_index, description_words

    idf = _bank_index(tuple(bank.items()))[2]
    reports = [description_words(text) for text in bank]
    total = torch.tensor([sum(idf[w] for w in words) for words in reports], dtype=torch.float64).clamp_min(1e-12)
    held = [[sum(idf[w] for w in words & description_words(d)) for words in reports] for d in descriptions]
    return torch.tensor(held, dtype=torch.float64) / total

if __name__ == "__main__":
    sys.exit(main())
