"""Loss balance of the full model: how much of the ECG backbone's gradient comes from each loss, and what raising
the masked-ECG weight does to the masked-ECG loss, the alignment loss and a fold-9 probe.

    python benchmarks/loss_balance.py [--data ../shared/data] [--weights 1 5] [--steps 300]

For each `ecg_loss_weight`: the gradient norm on the ECG backbone of the masked-ECG and SigLIP losses (unweighted)
at initialisation and after `--steps` steps of full pretraining (preset `small`, batch 32, AdamW lr 1e-3 with 15
warmup steps and linear decay, weight decay 0.05, clipping 1.0, PTB-XL folds 1-8 with cleaned reports), then the
fold-9 masked-ECG loss and fold-9 linear probes (PTB-XL super, 100 % / 10 % of folds 1-8). Writes
`benchmarks/results/loss_balance.json` and prints a table; skips with a message when the data is absent.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--weights", type=float, nargs="+", default=[1.0, 5.0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    return p.parse_args()


def curve_module():
    spec = importlib.util.spec_from_file_location("masked_ecg_curve", REPO / "benchmarks" / "masked_ecg_curve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def backbone_gradient_norms(model, out) -> dict[str, float]:
    """Norm of the gradient of each (unweighted) loss on the ECG backbone's parameters."""
    import torch

    params = list(model.cgdmer.ecg_model.parameters())
    norms = {}
    for name in ("ecg_loss", "alignment_loss"):
        grads = torch.autograd.grad(out[name], params, retain_graph=True, allow_unused=True)
        norms[name] = round(float(sum((g.float() ** 2).sum() for g in grads if g is not None) ** 0.5), 4)
    return norms


def run(weight: float, steps: int, data: dict, curve, tokenizer) -> dict:
    import torch

    from cgdmer_hf import CGDMERConfig, CGDMERForPreTraining
    from cgdmer_hf.training import CGDMERPretrainingCollator, configure_for_tokenizer

    torch.manual_seed(0)
    config = CGDMERConfig.from_preset("small", ecg_loss_weight=weight)
    configure_for_tokenizer(config, tokenizer)
    model = CGDMERForPreTraining(config).train()
    collate = CGDMERPretrainingCollator(tokenizer, config=config, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 15) * (1 - s / steps))
    generator = torch.Generator().manual_seed(0)
    train = data["pairs"]
    start, norms = time.perf_counter(), {}
    for step in range(steps + 1):
        ids = torch.randint(0, len(train), (32,), generator=generator).tolist()
        out = model(**collate([train[i] for i in ids]))
        if step in (0, steps):
            norms[f"step {step}"] = backbone_gradient_norms(model, out)
        if step == steps:
            break
        optimizer.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    return {"ecg_loss_weight": weight, "steps": steps, "backbone_gradient_norm": norms,
            "last_train": {k: round(out[k].item(), 3) for k in ("ecg_loss", "text_loss", "alignment_loss")},
            "fold9_masked_ecg_loss": round(curve.fold9_loss(model, data["val_batches"]), 4),
            "probe_fold9_super": curve.probe_auc(model, data["splits"]),
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> int:
    args = parse_args()
    if not (args.data / "ptbxl_index.csv").exists():
        print(f"SKIP: PTB-XL data not found at {args.data} (pass --data); nothing was run.")
        return 0
    from cgdmer_hf.data import load_ptbxl
    from cgdmer_hf.reports import load_default_tokenizer

    curve = curve_module()
    splits = {s: load_ptbxl(args.data, label_set="super", split=s) for s in ("train", "validation")}
    data = {"splits": splits, "pairs": splits["train"].filter(lambda r: bool(r["report"].strip())),
            "val_batches": curve.validation_batches(splits["validation"])}
    rows = [run(w, args.steps, data, curve, load_default_tokenizer()) for w in args.weights]
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / "loss_balance.json"
    out.write_text(json.dumps({"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                               "load_average_1min": os.getloadavg()[0], "rows": rows}, indent=2))
    print("| ecg_loss_weight | grad norm ECG / SigLIP, step 0 | at the end | fold-9 masked-ECG loss | "
          "alignment loss (train) | probe fold-9 100 % | 10 % |\n|---|---|---|---|---|---|---|")
    for r in rows:
        g0, g1 = r["backbone_gradient_norm"]["step 0"], r["backbone_gradient_norm"][f"step {r['steps']}"]
        print(f"| {r['ecg_loss_weight']:g} | {g0['ecg_loss']:.3f} / {g0['alignment_loss']:.3f} | "
              f"{g1['ecg_loss']:.3f} / {g1['alignment_loss']:.3f} | {r['fold9_masked_ecg_loss']:.4f} | "
              f"{r['last_train']['alignment_loss']:.3f} | {r['probe_fold9_super']['100%']:.4f} | "
              f"{r['probe_fold9_super']['10%']:.4f} |")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
