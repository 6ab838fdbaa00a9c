"""`cgdmer prepare DATA_DIR --output OUT_DIR`: read a data set in its official layout and save the prepared
`datasets.Dataset` (`save_to_disk`) with a summary (records, skipped, label counts, report coverage)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "Prepare a PTB-XL, MIMIC-IV-ECG or PhysioNet/CinC folder as a datasets folder (save_to_disk) with a summary."
SUMMARY_FILE = "prepare_summary.json"
_SAVED_FILES = ("state.json", "dataset_info.json", SUMMARY_FILE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", help="data set folder in its official layout")
    parser.add_argument("--output", "-o", required=True, help="folder for the prepared dataset (save_to_disk)")
    from ..data.readers import READERS

    parser.add_argument("--layout", choices=tuple(READERS), default=None,
                        help="layout of DATA_DIR (default: detected from its files)")
    parser.add_argument("--label-set", default=None,
                        help="ptbxl: super|sub|form|rhythm|diagnostic|all (default super); "
                             "cinc: cpsc2018|chapman|cinc2021 (default cpsc2018)")
    parser.add_argument("--sampling-rate", type=int, default=100, choices=(100, 500),
                        help="PTB-XL files to read: records100 or records500 (default 100)")
    parser.add_argument("--split", default="all", choices=("train", "validation", "test", "all"),
                        help="folds to keep: train 1-8, validation 9, test 10 (default all)")
    parser.add_argument("--num-proc", type=int, default=None, help="worker processes")
    parser.add_argument("--on-error", default="skip", choices=("skip", "raise"),
                        help="a faulty record is skipped and listed in the summary, or stops the run")
    parser.add_argument("--feature-extractor", default=None, metavar="DIR",
                        help="folder with a saved CGDMERFeatureExtractor (e.g. a model folder); default settings "
                             "otherwise")
    parser.add_argument("--cache-dir", default=None, help="datasets cache folder (reused by a second run)")
    parser.add_argument("--max-records", type=int, default=None, help="mimic/cinc: read only the first records")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a prepared dataset in OUTPUT (only once the new one is saved)")


def _is_dataset_file(path: Path) -> bool:
    """A file `save_to_disk` or `prepare` wrote, or a `cache-*.arrow` file that `datasets` writes beside a dataset
    opened with `load_from_disk` (`select`, `filter`, `shuffle`, e.g. in `split_by_fold`)."""
    return path.name in _SAVED_FILES or (path.name.startswith(("data-", "cache-")) and path.suffix == ".arrow")


def _check_output(out: Path, overwrite: bool) -> None:
    """Refuse, before any input is read, an output folder that holds a prepared dataset (unless `overwrite`) or
    anything else (always: the new dataset replaces the whole folder). Hidden entries (`.DS_Store`,
    `.ipynb_checkpoints`) are ignored."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--output {out} is a file, not a folder")
    entries = sorted(p for p in out.iterdir() if not p.name.startswith(".")) if out.exists() else []
    if not entries:
        return
    foreign = [p.name for p in entries if not _is_dataset_file(p)]
    if foreign or not (out / "state.json").exists():
        name = (foreign or [entries[0].name])[0]
        raise FileExistsError(f"{out} is not empty and holds no prepared dataset ({name}); choose a new or empty "
                              "--output folder")
    if not overwrite:
        raise FileExistsError(f"{out} holds a prepared dataset; pass --overwrite to replace it (it is replaced only "
                              "once the new one is saved)")


def _loader_kwargs(args: argparse.Namespace, reader) -> dict:
    """The reader's `load` options from the command line, as its `READER` declares them."""
    kwargs = {"num_proc": args.num_proc, "cache_dir": args.cache_dir, "on_error": args.on_error,
              "return_summary": True}  # fmt: skip
    if args.feature_extractor:
        from ..feature_extraction_cgdmer import CGDMERFeatureExtractor

        kwargs["feature_extractor"] = CGDMERFeatureExtractor.from_pretrained(args.feature_extractor)
    split = None if args.split == "all" else args.split
    lacks = [(what, flag) for what, flag, has in (("no folds", "--split", reader.folds),
                                                   ("no label set", "--label-set", bool(reader.label_sets)))
             if not has]
    if (split is not None and not reader.folds) or (args.label_set and not reader.label_sets):
        raise ValueError(f"{reader.display_name} has {' and '.join(w for w, _ in lacks)}: drop "
                         f"{' and '.join(f for _, f in lacks)}.")
    if reader.folds:
        kwargs["split"] = split
    if reader.label_sets:
        kwargs["label_set"] = args.label_set or reader.default_label_set
    kwargs.update({option: getattr(args, option) for option in reader.options})
    if reader.streams:
        kwargs["streaming"] = False
    return kwargs


def run(args: argparse.Namespace) -> int:
    from ..data import READERS, detect_layout
    from . import staged_output

    data_dir, out = Path(args.data_dir), Path(args.output)
    reader = READERS[args.layout or detect_layout(data_dir)]
    kwargs = _loader_kwargs(args, reader)
    if out.resolve() == data_dir.resolve() or data_dir.resolve() in out.resolve().parents:
        raise ValueError(f"--output {out} must not be inside the data folder {data_dir}.")
    _check_output(out, args.overwrite)
    with staged_output(out) as stage:  # the new dataset replaces OUTPUT only once it is saved
        dataset, summary = reader.load(data_dir, **kwargs)
        report = summary.to_dict()
        report.update(data_dir=str(data_dir), output=str(out), split=args.split,
                      columns=list(dataset.column_names), num_rows=len(dataset))  # fmt: skip
        dataset.save_to_disk(str(stage))
        (stage / SUMMARY_FILE).write_text(json.dumps(report, indent=2))
    print(summary.format_table())
    print(f"\nSaved {len(dataset)} records to {out} (load with datasets.load_from_disk); summary in {SUMMARY_FILE}.")
    return 0
