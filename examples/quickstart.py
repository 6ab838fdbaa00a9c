"""Quick start: zero-shot diagnosis of a bundled real PTB-XL ECG with the shipped `cgdmer-base` model.

    python examples/quickstart.py [--model cgdmer-base] [--ecg-id ID] [--plot quickstart_ecg.png]

Prints the PTB-XL superclasses ranked by the model's independent (sigmoid) probabilities, next to the record's
cardiologist labels and report, and writes a plot of the 12 leads as the model sees them. Not for clinical use.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from transformers import pipeline  # noqa: E402

import cgdmer_hf  # noqa: E402  (registers the zero-shot-ecg-classification pipeline)
from cgdmer_hf.samples import load_sample_index, sample_record_path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "cgdmer-base"))
    parser.add_argument("--ecg-id", type=int, default=None, help="bundled PTB-XL record (default: first of fold 10)")
    parser.add_argument("--plot", type=Path, default=Path("quickstart_ecg.png"))
    return parser.parse_args()


def plot_ecg(ecg_values, lead_names, title: str, path: Path) -> None:
    """The 12 preprocessed leads (z-scored, 100 Hz) in a 6 x 2 grid."""
    fig, axes = plt.subplots(6, 2, figsize=(12, 9), sharex=True)
    seconds = [i / 100 for i in range(ecg_values.shape[-1])]
    for lead, (ax, name) in enumerate(zip(axes.T.flat, lead_names)):
        ax.plot(seconds, ecg_values[lead], lw=0.7, color="black")
        ax.set_ylabel(name, rotation=0, labelpad=15)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    if not (Path(args.model) / "config.json").exists():
        raise SystemExit(f"No model at {args.model}; build it with: python benchmarks/ptbxl_mini.py --ship cgdmer-base")
    rows = load_sample_index()
    row = next(r for r in rows if (r["ecg_id"] == args.ecg_id if args.ecg_id else r["strat_fold"] == 10))
    record = sample_record_path(row["ecg_id"])

    classifier = pipeline("zero-shot-ecg-classification", model=args.model)
    # Plain English labels, typed as a user would (PTB-XL's superclass names); the model's text space is English.
    labels = {"normal ECG": "NORM", "myocardial infarction": "MI", "ST/T change": "STTC",
              "conduction disturbance": "CD", "hypertrophy": "HYP"}
    ranked = classifier(record, candidate_labels=list(labels))

    truth = [name for name, code in labels.items() if row[code]]
    print(f"PTB-XL record {row['ecg_id']} (fold {row['strat_fold']}), report: {row['report']!r}")
    print(f"cardiologist superclasses: {', '.join(truth) or 'none'}\n")
    calibrated = "calibrated on PTB-XL fold 9" if ranked[0]["calibrated"] else "not calibrated"
    print(f"zero-shot ranking (independent probabilities, {calibrated}):")
    for rank, item in enumerate(ranked, 1):
        print(f"  {rank}. {item['label']:<22} {item['score']:.3f}{'  <- labelled' if item['label'] in truth else ''}")

    inputs = classifier.feature_extractor(record, return_tensors="np")
    title = (f"PTB-XL {row['ecg_id']} | labels: {', '.join(truth) or 'none'} | model: "
             + ", ".join(f"{i['label']} {i['score']:.2f}" for i in ranked))
    plot_ecg(inputs["ecg_values"][0], classifier.feature_extractor.lead_names, title, args.plot)
    print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
