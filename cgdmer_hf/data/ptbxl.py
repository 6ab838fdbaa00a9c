"""PTB-XL reader: `ptbxl_database.csv` + `scp_statements.csv` + `records100/` or `records500/`.

One PTB-XL root, several roots (a data set split over folders, each with its own csvs), or a folder holding
`ptbxl_index.csv` whose `folder` column names the roots (the layout of the project's shared data).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from .common import LayoutError, Reader, build_dataset, is_inside, split_folds
from .labels import (
    PTBXL_LABEL_SETS,
    PTBXL_DROPPED_IN_V103,
    multi_hot,
    parse_scp_codes,
    ptbxl_label_names,
    ptbxl_record_labels,
    read_scp_statements,
)

PathLike = Union[str, Path]
DATABASE = "ptbxl_database.csv"
STATEMENTS = "scp_statements.csv"
INDEX = "ptbxl_index.csv"
_FILENAME_COLUMN = {100: "filename_lr", 500: "filename_hr"}


def find_ptbxl_roots(roots: Union[PathLike, Sequence[PathLike]]) -> list[Path]:
    """PTB-XL roots (folders with `ptbxl_database.csv` and `scp_statements.csv`) from one folder, a list of
    folders, or a folder with `ptbxl_index.csv` whose `folder` column names its PTB-XL sub-folders."""
    found: list[Path] = []
    for root in [roots] if isinstance(roots, (str, Path)) else list(roots):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"PTB-XL folder not found: {root}")
        if (root / DATABASE).exists():
            found.append(root)
        elif (root / INDEX).exists():
            with open(root / INDEX, newline="", encoding="utf-8") as f:
                folders = sorted({row["folder"] for row in csv.DictReader(f)})
            found.extend(_index_folder(root, folder) for folder in folders)
        else:
            raise LayoutError(f"{root} is not a PTB-XL folder: missing {DATABASE} (or {INDEX} naming PTB-XL folders).")
    for root in found:
        for name in (DATABASE, STATEMENTS):
            if not (root / name).exists():
                raise LayoutError(f"{root} is not a PTB-XL folder: missing {name}.")
    return found


def _index_folder(root: Path, folder: str) -> Path:
    """The PTB-XL root that `ptbxl_index.csv` in `root` names; refused if it resolves outside `root`."""
    path = root / folder
    if not is_inside(path, root):
        raise LayoutError(f"{root / INDEX} names the folder {folder!r}, which resolves outside {root}.")
    return path


def _patient_id(value: str) -> str:
    value = value.strip()
    try:
        return str(int(float(value)))
    except ValueError:
        return value


def read_ptbxl_metadata(
    roots: Union[PathLike, Sequence[PathLike]],
    label_set: str = "super",
    sampling_rate: int = 100,
    split: Optional[str] = None,
    drop_duplicates: bool = True,
    drop_unlabeled: bool = False,
    ecg_ids: Optional[Iterable[int]] = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Record specs (no signal read) and label names of PTB-XL.

    Each spec holds `record_id` (the ecg_id as a string), `patient_id`, `fold` (strat_fold), `report` (raw text),
    `labels` (multi-hot over the label names), `path` (the WFDB record without extension), `root` (the PTB-XL root,
    to which the record's files are confined) and `scp_codes`.
    An ecg_id present in several roots is taken from the first root. See `load_ptbxl` for the arguments.
    """
    if sampling_rate not in _FILENAME_COLUMN:
        raise ValueError(f"PTB-XL sampling_rate must be 100 (records100) or 500 (records500), got {sampling_rate}.")
    folds = split_folds(split)
    wanted = None if ecg_ids is None else {int(i) for i in ecg_ids}
    column = _FILENAME_COLUMN[sampling_rate]
    names: Optional[list[str]] = None
    records: dict[int, dict[str, Any]] = {}
    for root in find_ptbxl_roots(roots):
        statements = read_scp_statements(root / STATEMENTS)
        root_names = ptbxl_label_names(statements, label_set)
        if names is not None and root_names != names:
            raise ValueError(f"{root / STATEMENTS} defines other {label_set!r} labels than the first PTB-XL root.")
        names = root_names
        with open(root / DATABASE, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        missing = {"ecg_id", "patient_id", "scp_codes", "strat_fold", "report", column} - set(rows[0] if rows else ())
        if missing:
            raise LayoutError(f"{root / DATABASE} lacks the PTB-XL column(s) {sorted(missing)}.")
        for row in rows:
            ecg_id = int(float(row["ecg_id"]))
            fold = int(float(row["strat_fold"]))
            if ecg_id in records or (wanted is not None and ecg_id not in wanted):
                continue
            if (drop_duplicates and ecg_id in PTBXL_DROPPED_IN_V103) or (folds is not None and fold not in folds):
                continue
            scp_codes = parse_scp_codes(row["scp_codes"])
            labels = ptbxl_record_labels(scp_codes, statements, label_set)
            if drop_unlabeled and not labels:
                continue
            filename = (row[column] or "").strip()
            no_file = f"no {sampling_rate} Hz file listed for ecg_id {ecg_id} ({column} is empty)"
            records[ecg_id] = {
                "record_id": str(ecg_id),
                "patient_id": _patient_id(row["patient_id"]),
                "fold": fold,
                "report": row["report"] or "",
                "labels": multi_hot(labels, names).tolist(),
                "path": str(root / filename) if filename else str(root / DATABASE),
                "error": None if filename else no_file,
                "root": str(root),
                "scp_codes": scp_codes,
            }
    return [records[i] for i in sorted(records)], names or []


def load_ptbxl(
    roots: Union[PathLike, Sequence[PathLike]],
    sampling_rate: int = 100,
    label_set: str = "super",
    split: Optional[str] = None,
    drop_duplicates: bool = True,
    drop_unlabeled: bool = False,
    ecg_ids: Optional[Iterable[int]] = None,
    feature_extractor=None,
    num_proc: Optional[int] = None,
    cache_dir: Optional[PathLike] = None,
    on_error: str = "skip",
    return_summary: bool = False,
):
    """PTB-XL as a `datasets.Dataset` of prepared ECGs with reports and multi-hot labels.

    Args:
        roots: a PTB-XL root, a list of roots, or a folder with `ptbxl_index.csv` naming its roots.
        sampling_rate: which files to read: 100 (`filename_lr`, `records100/`) or 500 (`filename_hr`). The
            feature extractor resamples to its own rate either way. Records without such a file are skipped.
        label_set: `"super"` (5), `"sub"` (23), `"form"` (19), `"rhythm"` (12), `"diagnostic"` (44) or `"all"`
            (71), from `scp_statements.csv` as in the PTB-XL benchmark (any likelihood counts, 0 included).
        split: `None`/`"all"`, or `"train"` (strat_fold 1-8), `"validation"` (9), `"test"` (10).
        drop_duplicates: drop the 38 recordings PTB-XL v1.0.2/1.0.3 removed as duplicates (v1.0.1 metadata
            still lists them); keep them with `False`.
        drop_unlabeled: drop records with no label of the set (the PTB-XL benchmark does; default keeps them).
        ecg_ids: restrict to these ecg_ids.
        feature_extractor: a `CGDMERFeatureExtractor` (default: its defaults, 100 Hz x 10 s, center crop).
        num_proc: worker processes; cache_dir: the `datasets` cache folder (a second call reuses the cache).
        on_error: `"skip"` a faulty record (logged with its path, counted in the summary) or `"raise"`.
        return_summary: also return a `DatasetSummary` (records, skipped, label counts, report coverage).

    The label names are in `cgdmer_hf.data.label_names(dataset)`. Record files must resolve inside their root,
    symlinks followed (see `cgdmer_hf.data.common`): a record whose files link elsewhere is skipped as faulty.
    """
    records, names = read_ptbxl_metadata(roots, label_set, sampling_rate, split, drop_duplicates, drop_unlabeled,
                                         ecg_ids)  # fmt: skip
    for record in records:
        record.pop("scp_codes")
    sources = [p / n for p in find_ptbxl_roots(roots) for n in (DATABASE, STATEMENTS)]
    return build_dataset(
        records,
        layout="ptbxl",
        label_set=label_set,
        names=names,
        extractor=feature_extractor,
        num_proc=num_proc,
        cache_dir=cache_dir,
        on_error=on_error,
        sources=sources,
        return_summary=return_summary,
    )


READER = Reader(
    name="ptbxl",
    display_name="PTB-XL",
    detect=lambda root: (root / DATABASE).exists() or (root / INDEX).exists(),
    marker=f"{DATABASE} (PTB-XL)",
    load=load_ptbxl,
    label_sets=PTBXL_LABEL_SETS,
    default_label_set="super",
    folds=True,
    reports=True,
    options=("sampling_rate",),
)
