"""Masked-ECG learning curve: does the ECG-side generative task learn, and how many steps does it need?

    python benchmarks/masked_ecg_curve.py [--data ../shared/data] [--steps 3000] [--masking spatial_temporal]
                                          [--set norm_pix_loss=false mask_ratio=0.5 ...] [--name NAME]

Trains the masked-ECG branch alone (no reports; `CGDMERForPreTraining` without `input_ids`) of a preset on the
PTB-XL training folds 1-8 (batch 32, AdamW, learning rate 1e-3 with linear decay, as `ptbxl_mini.py`) and reports
the masked-ECG loss on fold 9 (fixed masks; per-patch normalised MSE, 1.0 = predicting zeros) every
`--eval-every` steps. `--set` overrides ECG config fields. Writes `benchmarks/results/masked_ecg_curve_<name>.json`
(name: the masking strategy unless given) and prints a table. Skips with a
message when the data is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--preset", default="small")
    p.add_argument("--masking", choices=["spatial_temporal", "random"], default="spatial_temporal")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE", help="ECG config overrides (JSON values)")
    p.add_argument("--name", default=None, help="result file suffix (default: the masking strategy)")
    p.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    return p.parse_args()


def ecg_overrides(pairs: list[str]) -> dict:
    """`["norm_pix_loss=false", "mask_ratio=0.5"]` -> `{"norm_pix_loss": False, "mask_ratio": 0.5}`."""
    out = {}
    for pair in pairs:
        field, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set takes FIELD=VALUE, got {pair!r}")
        try:
            out[field] = json.loads(value)
        except json.JSONDecodeError:
            raise SystemExit(f"--set {field}: {value!r} is not a JSON value (use true/false, numbers, \"text\")")
    return out


def fold9_loss(model, batches) -> float:
    """Mean masked-ECG loss over the validation batches (eval mode draws the same masks every time)."""
    import torch

    model.eval()
    with torch.no_grad():
        losses = [model(**batch).ecg_loss.item() for batch in batches]
    model.train()
    return sum(losses) / len(losses)


def main() -> int:
    args = parse_args()
    if not (args.data / "ptbxl_index.csv").exists():
        print(f"SKIP: PTB-XL data not found at {args.data} (pass --data); nothing was run.")
        return 0
    import torch
    from tqdm.auto import tqdm

    from cgdmer_hf import CGDMERConfig, CGDMERForPreTraining
    from cgdmer_hf.data import load_ptbxl
    from cgdmer_hf.evaluation import ecg_collate

    torch.manual_seed(args.seed)
    config = CGDMERConfig.from_preset(args.preset, ecg_config={"masking_strategy": args.masking,
                                                               **ecg_overrides(args.set)})
    model = CGDMERForPreTraining(config).train()
    columns = ["ecg_values", "lead_mask", "ecg_attention_mask"]
    train, val = (load_ptbxl(args.data, label_set="super", split=split).select_columns(columns).with_format("numpy")
                  for split in ("train", "validation"))
    val_batches = [ecg_collate([val[j] for j in range(i, min(i + 64, len(val)))]) for i in range(0, len(val), 64)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / args.steps)
    generator = torch.Generator().manual_seed(args.seed)
    curve = [{"step": 0, "fold9_masked_ecg_loss": round(fold9_loss(model, val_batches), 4), "seconds": 0.0}]
    start = time.perf_counter()
    for step in tqdm(range(1, args.steps + 1), desc=f"masked ECG ({args.masking})"):
        ids = torch.randint(0, len(train), (args.batch_size,), generator=generator).tolist()
        loss = model(**ecg_collate([train[i] for i in ids])).ecg_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % args.eval_every == 0 or step == args.steps:
            curve.append({"step": step, "fold9_masked_ecg_loss": round(fold9_loss(model, val_batches), 4),
                          "train_loss": round(loss.item(), 4), "seconds": round(time.perf_counter() - start, 1)})
            tqdm.write(str(curve[-1]))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"masked_ecg_curve_{args.name or args.masking}.json"
    result = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "preset": args.preset, "masking": args.masking, "batch_size": args.batch_size,
              "learning_rate": args.learning_rate, "seed": args.seed, "ecg_overrides": ecg_overrides(args.set), "train_records": len(train),
              "validation_records": len(val), "load_average_1min": os.getloadavg()[0], "curve": curve}
    out.write_text(json.dumps(result, indent=2))
    print("\n| step | fold-9 masked-ECG loss | seconds |\n|---|---|---|")
    for point in curve:
        print(f"| {point['step']} | {point['fold9_masked_ecg_loss']:.4f} | {point['seconds']} |")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
