"""PhysioNet/CinC 2020/2021 reader: WFDB records (`.hea` + `.mat` or `.dat`) anywhere under a folder, labels
from the header's `# Dx:` comment (SNOMED CT codes, or the CPSC 2018 abbreviations of the 2020 release).

Covers CPSC 2018 (and CPSC-Extra), Chapman-Shaoxing and Ningbo (CinC 2021 `training/chapman_shaoxing`,
`training/ningbo`, or PhysioNet `ecg-arrhythmia` `WFDBRecords/`), Georgia, St Petersburg and PTB(-XL) in the
CinC layout. Records have variable lengths (6-60 s for CPSC 2018): the feature extractor crops the centre of
longer ones and pads shorter ones (`ecg_attention_mask` marks the padding).
"""

from __future__ import annotations

import logging
import os
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Optional, Union

from .common import LayoutError, Reader, build_dataset, outside_data_folder, split_folds
from .labels import CINC_LABEL_SETS, cinc_label_names, cinc_record_labels, multi_hot, parse_dx

logger = logging.getLogger("cgdmer_hf.data")
PathLike = Union[str, Path]
FOLD_MODES = ("hash", None)


def find_cinc_headers(root: PathLike) -> list[Path]:
    """All WFDB headers (`*.hea`) under `root`, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"PhysioNet/CinC folder not found: {root}")
    headers = sorted(Path(d) / f for d, _, files in os.walk(root) for f in files if f.endswith(".hea"))
    if not headers:
        raise LayoutError(f"{root} is not a PhysioNet/CinC WFDB folder: missing *.hea header files.")
    return headers


def header_comments(path: Path) -> list[str]:
    """The `#` comment lines of a WFDB header, without the `#`."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.strip().lstrip("#").strip() for line in f if line.lstrip().startswith("#")]


def hash_fold(record_id: str, num_folds: int = 10) -> int:
    """A reproducible fold 1..num_folds from a CRC32 of the record id (CinC data have no official folds)."""
    return 1 + zlib.crc32(record_id.encode()) % num_folds


def read_cinc_metadata(
    root: PathLike,
    label_set: str = "cpsc2018",
    split: Optional[str] = None,
    folds: Optional[str] = "hash",
    drop_unlabeled: bool = False,
    max_records: Optional[int] = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Record specs (headers read, no signal) and label names; see `load_cinc` for the arguments. A record's
    files are confined to `root` (its spec's `root`, symlinks followed): a header that resolves outside it is not
    read, and its spec (kept even with `drop_unlabeled`, without codes) carries the reason as its `error`."""
    if folds not in FOLD_MODES:
        raise ValueError(f"folds must be 'hash' or None, got {folds!r}.")
    names = cinc_label_names(label_set)
    wanted_folds = split_folds(split)
    if wanted_folds is not None and folds is None:
        raise ValueError("A split needs folds: use folds='hash' (CinC data sets have no official folds).")
    root = Path(root)
    headers = find_cinc_headers(root)[:max_records]
    stems = Counter(h.stem for h in headers)
    unknown: Counter = Counter()
    records = []
    for header in headers:
        # Record names are unique across the CinC sources; fall back to the relative path if they are not.
        record_id = header.stem if stems[header.stem] == 1 else header.relative_to(root).with_suffix("").as_posix()
        fold = hash_fold(record_id) if folds == "hash" else -1
        if wanted_folds is not None and fold not in wanted_folds:
            continue
        error = outside_data_folder(header, root)  # never read outside: a skipped record with this reason
        codes, bad = parse_dx(header_comments(header)) if error is None else ([], [])
        unknown.update(bad)
        labels = cinc_record_labels(codes, label_set)
        if drop_unlabeled and not labels and error is None:
            continue
        records.append({"record_id": record_id, "patient_id": record_id, "fold": fold, "report": "",
                        "labels": multi_hot(labels, names).tolist(), "path": str(header.with_suffix("")),
                        "error": error, "root": str(root), "codes": codes})  # fmt: skip
    if unknown:
        logger.warning("Unknown # Dx entries (neither SNOMED CT codes nor CPSC abbreviations): %s", dict(unknown))
    return records, names


def load_cinc(
    root: PathLike,
    label_set: str = "cpsc2018",
    split: Optional[str] = None,
    folds: Optional[str] = "hash",
    drop_unlabeled: bool = False,
    max_records: Optional[int] = None,
    feature_extractor=None,
    num_proc: Optional[int] = None,
    cache_dir: Optional[PathLike] = None,
    on_error: str = "skip",
    return_summary: bool = False,
):
    """A PhysioNet/CinC WFDB folder as a `datasets.Dataset` of prepared ECGs with multi-hot labels.

    Args:
        root: a folder with WFDB records anywhere below it (`.hea` + `.mat`/`.dat`).
        label_set: `"cpsc2018"` (the 9 CPSC 2018 classes), `"chapman"` (the 38 Chapman-Shaoxing-Ningbo classes of
            MERL's benchmark) or `"cinc2021"` (the 26 scored CinC 2021 classes, equivalent codes merged).
        split: `None`/`"all"`, `"train"`, `"validation"` or `"test"` over the folds (1-8, 9, 10).
        folds: `"hash"` gives each record a reproducible fold 1-10 from a CRC32 of its id (an 80/10/10 split;
            these data sets have no official folds); `None` leaves `fold = -1`.
        drop_unlabeled: drop records with no class of the label set.
        max_records: read only the first headers (sorted by path).
        feature_extractor, num_proc, cache_dir, on_error, return_summary: as in `load_ptbxl`.

    There are no reports (`report` is `""`); `patient_id` is the record id (the headers name no patient).
    Record files must resolve inside `root`, symlinks followed (see `cgdmer_hf.data.common`): a record whose header
    or signal files link elsewhere is skipped as faulty.
    """
    records, names = read_cinc_metadata(root, label_set, split, folds, drop_unlabeled, max_records)
    for record in records:
        record.pop("codes")
    return build_dataset(
        records,
        layout="cinc",
        label_set=label_set,
        names=names,
        extractor=feature_extractor,
        num_proc=num_proc,
        cache_dir=cache_dir,
        on_error=on_error,
        sources=[Path(r["path"] + ".hea") for r in records],
        return_summary=return_summary,
    )


READER = Reader(
    name="cinc",
    display_name="PhysioNet/CinC",
    detect=lambda root: next(root.rglob("*.hea"), None) is not None,
    marker="*.hea WFDB headers (PhysioNet/CinC)",
    load=load_cinc,
    label_sets=CINC_LABEL_SETS,
    default_label_set="cpsc2018",
    label_set_names={"cpsc2018": "CPSC2018", "chapman": "Chapman-Shaoxing-Ningbo", "cinc2021": "PhysioNet/CinC 2021"},
    folds=True,
    options=("max_records",),
)
