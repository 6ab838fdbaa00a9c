"""Masked-ECG learning curve: does the ECG-side generative task learn, and how many steps does it need?

    python benchmarks/masked_ecg_curve.py [--data ../shared/data] [--steps 1000] [--masking spatial_temporal]
                                          [--set encoder_attention='"joint"' decoder_slot_pooling=true ...]
                                          [--name NAME] [--probe] [--figure] [--model DIR --steps 0]

Trains the masked-ECG branch alone (no reports; `CGDMERForPreTraining` without `input_ids`) of a preset on the
PTB-XL training folds 1-8 (batch 32, AdamW, learning rate 1e-3 with linear decay, as `ptbxl_mini.py`) and reports
the masked-ECG loss on fold 9 (fixed masks; per-patch normalised MSE, 1.0 = predicting zeros) every
`--eval-every` steps, and the loss on the limb leads III/aVR/aVL/aVF when only leads I and II are visible, beside analytic
predictors on the same masks (zeros, copy the nearest visible lead, linear interpolation in time, least squares
from the visible leads at the same time slot with the population or the record's own covariance). `--probe` adds
fold-9 linear probes (PTB-XL super) before and after training; `--figure` plots reconstructions; `--model DIR
--steps 0` measures and plots a pretrained model (e.g. `cgdmer-base`) instead of training one. `--set` overrides
ECG config fields. Writes `benchmarks/results/masked_ecg_curve_<name>.json`
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--preset", default="small")
    from cgdmer_hf.configuration_cgdmer import MASKING_STRATEGIES

    p.add_argument("--masking", choices=list(MASKING_STRATEGIES), default="spatial_temporal")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE", help="ECG config overrides (JSON values)")
    p.add_argument("--name", default=None, help="result file suffix (default: the masking strategy)")
    p.add_argument("--probe", action="store_true", help="linear probes on fold 9 before and after training")
    p.add_argument("--figure", action="store_true", help="plot masked patches against the truth on fold 9")
    p.add_argument("--save-model", type=Path, default=None, help="save the trained model to this folder")
    p.add_argument("--model", type=Path, default=None,
                   help="start from this pretrained model folder (with --steps 0: only measure and plot it)")
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


def normalised_patches(ecg_values, patch_size: int):
    """(B, leads, samples) array -> (B, leads, patches, patch_size) per-patch normalised, as the model's target."""
    import numpy as np

    b, leads, n = ecg_values.shape
    x = np.asarray(ecg_values, dtype=np.float64).reshape(b, leads, n // patch_size, patch_size)
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-6)


def lead_covariance(z) -> "np.ndarray":
    """(leads, leads) second moment of normalised patches `(B, leads, patches, samples)` (pooled over the rest)."""
    import numpy as np

    return np.einsum("bitk,bjtk->ij", z, z) / (z.shape[0] * z.shape[2] * z.shape[3])


def same_slot_least_squares(z, visible, cov) -> "np.ndarray":
    """Predict each lead's patch from the visible leads at the same time slot: `cov[m, v] cov[v, v]^-1 z_v`.
    `cov` is `(leads, leads)` (population) or `(B, leads, leads)` (each record's own)."""
    import numpy as np

    pred = np.zeros_like(z)
    for b in range(z.shape[0]):
        c = cov if cov.ndim == 2 else cov[b]
        for t in range(z.shape[2]):
            v = np.flatnonzero(visible[b, :, t])
            if len(v):
                beta = np.linalg.solve(c[np.ix_(v, v)] + 1e-6 * np.eye(len(v)), c[v])  # (|v|, leads)
                pred[b, :, t] = beta.T @ z[b, v, t]
    return pred


def copy_nearest_lead(z, visible) -> "np.ndarray":
    """Copy the patch of the visible lead nearest in the standard lead order at the same slot (zeros if none)."""
    import numpy as np

    leads = np.arange(z.shape[1])
    distance = np.abs(leads[:, None] - leads[None, :]) + 0.1 * (leads[None, :] > leads[:, None])  # ties: lower
    pred = np.zeros_like(z)
    for b in range(z.shape[0]):
        for t in range(z.shape[2]):
            v = np.flatnonzero(visible[b, :, t])
            if len(v):
                pred[b, :, t] = z[b, v[distance[:, v].argmin(1)], t]
    return pred


def interpolate_in_time(ecg_values, visible, patch_size: int) -> "np.ndarray":
    """Per lead, a straight line from the last visible sample before a masked patch to the first one after it
    (held flat at the ends), then per-patch normalised like the target."""
    import numpy as np

    x = np.asarray(ecg_values, dtype=np.float64)
    b, leads, n = x.shape
    sample_visible = np.repeat(visible, patch_size, axis=2)
    filled = np.zeros_like(x)
    grid = np.arange(n)
    for i in range(b):
        for j in range(leads):
            known = np.flatnonzero(sample_visible[i, j])
            if len(known):
                filled[i, j] = np.interp(grid, known, x[i, j, known])
    return normalised_patches(filled, patch_size)


BASELINES = {
    "predict zeros": lambda ctx: np.zeros_like(ctx["z"]),
    "copy nearest visible lead": lambda ctx: copy_nearest_lead(ctx["z"], ctx["visible"]),
    "linear interpolation in time": lambda ctx: interpolate_in_time(ctx["ecg"], ctx["visible"], ctx["patch_size"]),
    "least squares, same slot, population covariance": lambda ctx: same_slot_least_squares(
        ctx["z"], ctx["visible"], ctx["population_cov"]),
    "least squares, same slot, own covariance (oracle)": lambda ctx: same_slot_least_squares(
        ctx["z"], ctx["visible"], np.einsum("bitk,bjtk->bij", ctx["z"], ctx["z"]) / np.prod(ctx["z"].shape[2:])),
}


def limb_lead_baselines(model, batches, population_cov) -> dict[str, float]:
    """Zeros and same-slot least squares (population covariance) for the limb leads from leads I and II alone."""
    cfg = model.config.ecg_config
    limb = [cfg.lead_names.index(name) for name in LIMB_LEADS]
    visible_leads = np.zeros(cfg.num_leads, dtype=bool)
    visible_leads[[cfg.lead_names.index(name) for name in VISIBLE_LEADS]] = True
    losses = []
    for batch in batches:
        z = normalised_patches(batch["ecg_values"].numpy(), cfg.patch_size)
        visible = np.broadcast_to(visible_leads[None, :, None], z.shape[:3])
        pred = same_slot_least_squares(z, visible, population_cov)
        losses.append(float(((pred[:, limb] - z[:, limb]) ** 2).mean()))
    return {"predict zeros": 1.0, "least squares, same slot, population covariance": round(float(np.mean(losses)), 4)}


def analytic_baselines(model, batches, population_cov) -> dict[str, float]:
    """Fold-9 loss of each analytic predictor on exactly the model's eval masks (mean of per-batch means)."""
    import torch

    cfg = model.config.ecg_config
    losses: dict[str, list[float]] = {name: [] for name in BASELINES}
    for batch in batches:
        ecg, lead_mask, attention = model._prepare_ecg_inputs(batch["ecg_values"], batch["lead_mask"],
                                                              batch.get("ecg_attention_mask"))
        valid = model.cgdmer.ecg_model.embeddings.token_validity(lead_mask, attention)
        mask = model.generate_ecg_mask(valid, torch.Generator(device="cpu").manual_seed(0))
        shape = (ecg.shape[0], cfg.num_leads, cfg.num_patches)
        counted = (mask & valid).view(shape).numpy()
        ctx = {"ecg": ecg.numpy(), "z": normalised_patches(ecg.numpy(), cfg.patch_size),
               "visible": (~mask & valid).view(shape).numpy(), "patch_size": cfg.patch_size,
               "population_cov": population_cov}
        for name, predict in BASELINES.items():
            per_token = ((predict(ctx) - ctx["z"]) ** 2).mean(-1)
            losses[name].append(float((per_token * counted).sum() / max(counted.sum(), 1)))
    return {name: round(float(np.mean(values)), 4) for name, values in losses.items()}


LIMB_LEADS, VISIBLE_LEADS = ("III", "aVR", "aVL", "aVF"), ("I", "II")
LIMB_PROTOCOL = "only leads I and II visible; loss on the limb leads III, aVR, aVL, aVF"


def only_leads_visible(model, batch_size: int, visible=VISIBLE_LEADS):
    """Mask of every lead but `visible`, `(batch, tokens)` lead-major."""
    import torch

    cfg = model.config.ecg_config
    masked = torch.ones(batch_size, cfg.num_leads, cfg.num_patches, dtype=torch.bool)
    masked[:, [cfg.lead_names.index(name) for name in visible]] = False
    return masked.view(batch_size, -1)


def limb_lead_loss(model, batch) -> float:
    """Masked-ECG loss on the limb leads III, aVR, aVL, aVF reconstructed from leads I and II alone (Einthoven and
    Goldberger make them linear combinations of I and II)."""
    cfg = model.config.ecg_config
    out = model(**batch, ecg_mask=only_leads_visible(model, len(batch["ecg_values"])))
    target = model._reconstruction_target(batch["ecg_values"])
    per_token = ((out.ecg_reconstruction - target) ** 2).mean(-1).view(-1, cfg.num_leads, cfg.num_patches)
    limb = [cfg.lead_names.index(name) for name in LIMB_LEADS]
    present = batch["lead_mask"].bool()[:, limb, None].expand(-1, -1, cfg.num_patches)
    return float(per_token[:, limb][present].mean()) if bool(present.any()) else float("nan")


def validation_batches(dataset, batch_size: int = 64) -> list[dict]:
    """Model-input batches (ECG columns only) of a prepared split, in order."""
    from cgdmer_hf.data import ECG_INPUT_NAMES, collate_ecgs

    rows = dataset.select_columns(list(ECG_INPUT_NAMES)).with_format("numpy")
    return [collate_ecgs([rows[j] for j in range(i, min(i + batch_size, len(rows)))])
            for i in range(0, len(rows), batch_size)]


def fold9_loss(model, batches, limb_leads: bool = False) -> float:
    """Mean masked-ECG loss over the validation batches: the eval masks (fixed seed, the same every time), or
    with `limb_leads` the limb leads reconstructed from leads I and II alone (`limb_lead_loss`)."""
    import torch

    model.eval()
    with torch.no_grad():
        losses = [limb_lead_loss(model, batch) if limb_leads else model(**batch).ecg_loss.item()
                  for batch in batches]
    model.train()
    return sum(losses) / len(losses)


def probe_auc(model, splits) -> dict[str, float]:
    """Fold-9 macro AUC of linear probes (PTB-XL super) on the frozen `[shared; specific]` features, trained on
    100 % and 10 % of folds 1-8 (weight decay chosen on fold 9): is the encoder learning, not just the decoder?"""
    from cgdmer_hf.evaluation import compute_embeddings, fit_linear_probe

    feats = {name: compute_embeddings(model.cgdmer, ds) for name, ds in splits.items()}
    labels = {name: np.asarray(ds["labels"], dtype=np.float64) for name, ds in splits.items()}
    order = np.random.RandomState(0).permutation(len(labels["train"]))
    out = {}
    for fraction in (1.0, 0.1):
        rows = order[: round(fraction * len(order))]
        probe = fit_linear_probe(feats["train"][rows], labels["train"][rows], feats["validation"],
                                 labels["validation"])
        out[f"{round(fraction * 100)}%"] = round(probe.validation_roc_auc, 4)
    return out


def measure(model, val_batches, step: int, seconds: float, **extra) -> dict:
    return {"step": step, "fold9_masked_ecg_loss": round(fold9_loss(model, val_batches), 4),
            "fold9_limb_lead_loss": round(fold9_loss(model, val_batches, limb_leads=True), 4),
            **extra, "seconds": round(seconds, 1)}


def main() -> int:
    args = parse_args()
    if not (args.data / "ptbxl_index.csv").exists():
        print(f"SKIP: PTB-XL data not found at {args.data} (pass --data); nothing was run.")
        return 0
    import torch
    from tqdm.auto import tqdm

    from cgdmer_hf import CGDMERConfig, CGDMERForPreTraining
    from cgdmer_hf.data import ECG_INPUT_NAMES, collate_ecgs, load_ptbxl

    torch.manual_seed(args.seed)
    if args.model:
        model = CGDMERForPreTraining.from_pretrained(args.model, dtype=torch.float32).train()
        config = model.config
    else:
        config = CGDMERConfig.from_preset(args.preset, ecg_config={"masking_strategy": args.masking,
                                                                   **ecg_overrides(args.set)})
        model = CGDMERForPreTraining(config).train()
    columns = list(ECG_INPUT_NAMES)
    splits = {split: load_ptbxl(args.data, label_set="super", split=split) for split in ("train", "validation")}
    train = splits["train"].select_columns(columns).with_format("numpy")
    val_batches = validation_batches(splits["validation"])
    population_cov = lead_covariance(normalised_patches(
        np.stack([train[i]["ecg_values"] for i in range(min(512, len(train)))]), config.ecg_config.patch_size))
    baselines = analytic_baselines(model, val_batches, population_cov)
    limb_baselines = limb_lead_baselines(model, val_batches, population_cov)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / max(args.steps, 1))
    generator = torch.Generator().manual_seed(args.seed)
    probes = {"random_init": probe_auc(model, splits)} if args.probe else {}
    curve = [measure(model, val_batches, 0, 0.0)]
    start = time.perf_counter()
    for step in tqdm(range(1, args.steps + 1), desc=f"masked ECG ({args.name or args.masking})"):
        ids = torch.randint(0, len(train), (args.batch_size,), generator=generator).tolist()
        loss = model(**collate_ecgs([train[i] for i in ids])).ecg_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % args.eval_every == 0 or step == args.steps:
            curve.append(measure(model, val_batches, step, time.perf_counter() - start,
                                 train_loss=round(loss.item(), 4)))
            tqdm.write(str(curve[-1]))
    train_seconds = max(time.perf_counter() - start, 1e-9)
    if args.probe:
        probes["trained"] = probe_auc(model, splits)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    name = args.name or args.masking
    out = args.results_dir / f"masked_ecg_curve_{name}.json"
    result = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "model": str(args.model) if args.model else None,
              "preset": args.preset, "masking": args.masking, "batch_size": args.batch_size,
              "learning_rate": args.learning_rate, "seed": args.seed, "ecg_overrides": ecg_overrides(args.set),
              "ecg_config": {k: getattr(config.ecg_config, k) for k in ARCHITECTURE_FIELDS},
              "train_records": len(train), "validation_records": len(splits["validation"]),
              "pairs_per_second": round(args.steps * args.batch_size / train_seconds, 1),
              "load_average_1min": os.getloadavg()[0], "analytic_baselines": baselines,
              "limb_lead_protocol": LIMB_PROTOCOL, "limb_lead_baselines": limb_baselines,
              "linear_probe_fold9_super": probes, "curve": curve}
    out.write_text(json.dumps(result, indent=2))
    if args.save_model:
        model.save_pretrained(args.save_model)
    if args.figure:
        figure = args.results_dir / f"masked_ecg_reconstruction_{name}.png"
        plot_reconstructions(model, val_batches[0], figure)
        print(f"wrote {figure}")
    print(markdown(result))
    print(f"wrote {out}")
    return 0


ARCHITECTURE_FIELDS = ("encoder_attention", "decoder_attention", "decoder_slot_pooling", "position_init_std",
                       "masking_strategy", "norm_pix_loss", "patch_size")


def markdown(result: dict) -> str:
    """The curve, then the analytic baselines on the same masks, then the probes."""
    lines = ["| step | fold-9 masked-ECG loss | limb leads from I and II | seconds |", "|---|---|---|---|"]
    lines += [f"| {p['step']} | {p['fold9_masked_ecg_loss']:.4f} | {p['fold9_limb_lead_loss']:.4f} | {p['seconds']} |"
              for p in result["curve"]]
    lines += ["", "| analytic predictor (same masks) | fold-9 loss |", "|---|---|"]
    lines += [f"| {name} | {value:.4f} |" for name, value in result["analytic_baselines"].items()]
    lines += [f"| limb leads from I and II: {name} | {value:.4f} |"
              for name, value in result.get("limb_lead_baselines", {}).items()]
    if result["linear_probe_fold9_super"]:
        lines += ["", "| encoder | probe fold-9 AUC, 100 % | 10 % |", "|---|---|---|"]
        lines += [f"| {name} | {v['100%']:.4f} | {v['10%']:.4f} |" for name, v in result["linear_probe_fold9_super"].items()]
    return "\n".join(lines)


def plot_reconstructions(model, batch, path: Path, records: int = 3, seconds: float = 5.0) -> None:
    """Masked patches against the truth (per-patch normalised, as the loss sees them) on fold-9 records, first
    `seconds` of each; shaded: masked patches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    cfg = model.config.ecg_config
    model.eval()
    with torch.no_grad():
        out = model(**{k: v[:records] for k, v in batch.items()})
    model.train()
    target = normalised_patches(batch["ecg_values"][:records].numpy(), cfg.patch_size)
    shape = (records, cfg.num_leads, cfg.num_patches, cfg.patch_size)
    pred = out.ecg_reconstruction.view(shape).numpy()
    masked = out.ecg_mask.view(shape[:3]).numpy()
    leads = [cfg.lead_names.index(name) for name in ("II", "aVL", "V2", "V5")]
    fig, axes = plt.subplots(len(leads), records, figsize=(5 * records, 1.8 * len(leads)), sharex=True,
                             squeeze=False)
    shown = int(seconds * cfg.sampling_rate) // cfg.patch_size
    t = np.arange(shown * cfg.patch_size) / cfg.sampling_rate
    for c in range(records):
        for r, lead in enumerate(leads):
            ax = axes[r, c]
            ax.plot(t, target[c, lead, :shown].reshape(-1), color="black", lw=0.8, label="truth (normalised patches)")
            recon = np.where(masked[c, lead, :shown, None], pred[c, lead, :shown], np.nan).reshape(-1)
            ax.plot(t, recon, color="tab:red", lw=0.9, label="reconstruction (masked patches)")
            for p in np.flatnonzero(masked[c, lead, :shown]):
                ax.axvspan(p * cfg.patch_size / cfg.sampling_rate, (p + 1) * cfg.patch_size / cfg.sampling_rate,
                           color="tab:red", alpha=0.08, lw=0)
            ax.set_ylabel(cfg.lead_names[lead])
            if r == 0:
                ax.set_title(f"fold-9 record {c + 1}")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
