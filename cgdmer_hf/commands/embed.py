"""`cgdmer embed MODEL_DIR --data DATA --output FILE.npy|FILE.parquet`: ECG embeddings of a data set for your own
downstream models."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Write the ECG embeddings of a data set (numpy .npy or .parquet) for your own downstream models."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", help="saved model folder")
    parser.add_argument("--data", required=True,
                        help="prepared dataset (save_to_disk folder) or a PTB-XL / WFDB folder (read with the model's "
                             "feature extractor)")
    parser.add_argument("--output", "-o", required=True,
                        help="FILE.npy (array; record ids in FILE.record_ids.txt) or FILE.parquet (record_id, "
                             "fold, labels, embedding)")
    parser.add_argument("--split", default="all", choices=("train", "validation", "test", "all"),
                        help="folds to embed: train 1-8, validation 9, test 10 (default all)")
    parser.add_argument("--kind", default="representation", choices=("representation", "shared"),
                        help="representation: pooled [shared; specific] features (for probes, default); shared: "
                             "the text-aligned embedding")
    parser.add_argument("--normalize", action="store_true", help="L2-normalise each embedding")
    parser.add_argument("--label-set", default=None, help="label set for a raw data folder (default: the layout's)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--cache-dir", default=None, help="datasets cache folder for a raw data folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files (only once the new ones are written)")


def _load_dataset(path: str, model_dir: str, label_set, cache_dir):
    from datasets import DatasetDict, concatenate_datasets

    from ..data import load_data_folder, model_feature_extractor

    data = load_data_folder(path, label_set, model_feature_extractor(model_dir), cache_dir, require_labels=False)
    return concatenate_datasets(list(data.values())) if isinstance(data, DatasetDict) else data


def run(args: argparse.Namespace) -> int:
    from ..data import split_by_fold
    from ..evaluation import export_embeddings
    from . import check_inputs, staged_output

    out = Path(args.output)
    if out.suffix not in (".npy", ".parquet"):
        raise ValueError(f"--output must end in .npy or .parquet, got {out.name!r}")
    written = [out, out.with_suffix(".record_ids.txt")] if out.suffix == ".npy" else [out]
    existing = [p for p in written if p.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass --overwrite to replace it")
    check_inputs(args.model_dir, args.data)
    if args.batch_size < 1:
        raise ValueError("--batch-size must be positive")
    # The old files are replaced only once both new ones are written. They are moved in one after the other, so a
    # kill in between can pair a new array with old record ids: the next run then names the staging folder that
    # holds the rest (no loader here reads the pair back; check len(ids) == len(array) when you do).
    with staged_output(out.parent, [p.name for p in written]) as stage:
        dataset = _load_dataset(args.data, args.model_dir, args.label_set, args.cache_dir)
        if args.split != "all":
            dataset = split_by_fold(dataset)[args.split]
        if len(dataset) == 0:
            raise ValueError(f"No record to embed in {args.data} (split {args.split})")
        export_embeddings(args.model_dir, dataset, stage / out.name, kind=args.kind, normalize=args.normalize,
                          batch_size=args.batch_size)
    print(f"Wrote {len(dataset)} {args.kind} embeddings to {out}"
          + (f" (record ids in {written[1]})" if len(written) > 1 else ""))
    return 0
