"""MIMIC-IV-ECG reader: `record_list.csv`, `machine_measurements.csv` (`report_0` ... `report_17`) and
`files/pNNNN/pNNNNNNNN/sNNNNNNNN/NNNNNNNN.{hea,dat}` (500 Hz, 10 s, 12 leads).

At the scale of MIMIC-IV-ECG (about 800,000 ECG-report pairs, 90 GB) read it as a stream
(`streaming=True`, the default): an `IterableDataset` whose records are divided into `num_shards` shards, so
`datasets.distributed.split_dataset_by_node(ds, rank, world_size)` gives each process of a multi-GPU run its own
shards (use a `num_shards` divisible by the world size) and a `DataLoader`'s workers split a node's shards again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from .common import LayoutError, Reader, build_dataset

PathLike = Union[str, Path]
RECORD_LIST = "record_list.csv"
MEASUREMENTS = "machine_measurements.csv"
REPORT_COLUMNS = tuple(f"report_{i}" for i in range(18))


def join_report(parts) -> str:
    """The machine report of one study: the non-empty `report_0` ... `report_17` lines joined with `". "`."""
    lines = [str(p).strip() for p in parts if isinstance(p, str) and p.strip()]
    return ". ".join(line.rstrip(".") if i < len(lines) - 1 else line for i, line in enumerate(lines))


def check_mimic_layout(root: PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"MIMIC-IV-ECG folder not found: {root}")
    for name in (RECORD_LIST, MEASUREMENTS):
        if not (root / name).exists():
            raise LayoutError(f"{root} is not a MIMIC-IV-ECG folder: missing {name}.")
    return root


def read_mimic_metadata(
    root: PathLike, min_report_words: int = 0, max_records: Optional[int] = None
) -> list[dict[str, Any]]:
    """Record specs (no signal read): `record_id` (study_id), `patient_id` (subject_id), `fold` (-1), `report`
    (joined machine report, `""` when none), `labels` (empty: MIMIC-IV-ECG has no label set), `path` and `root`
    (the record's files are confined to it)."""
    import pandas as pd

    root = check_mimic_layout(root)
    records = pd.read_csv(root / RECORD_LIST, usecols=["subject_id", "study_id", "path"], dtype=str, nrows=max_records)
    header = pd.read_csv(root / MEASUREMENTS, nrows=0).columns
    missing = [c for c in ("study_id",) + REPORT_COLUMNS if c not in header]
    if missing:
        raise LayoutError(f"{root / MEASUREMENTS} lacks the MIMIC-IV-ECG column(s) {missing}.")
    measurements = pd.read_csv(root / MEASUREMENTS, usecols=["study_id", *REPORT_COLUMNS], dtype=str)
    reports = dict(zip(measurements["study_id"], map(join_report, measurements[list(REPORT_COLUMNS)].values)))
    specs = []
    for subject_id, study_id, path in records[["subject_id", "study_id", "path"]].itertuples(index=False):
        report = reports.get(study_id, "")
        if min_report_words and len(report.split()) < min_report_words:
            continue
        specs.append({"record_id": study_id, "patient_id": subject_id, "fold": -1, "report": report, "labels": [],
                      "path": str(root / path), "error": None, "root": str(root)})  # fmt: skip
    return specs


def load_mimic_iv_ecg(
    root: PathLike,
    streaming: bool = True,
    num_shards: int = 256,
    min_report_words: int = 0,
    max_records: Optional[int] = None,
    feature_extractor=None,
    num_proc: Optional[int] = None,
    cache_dir: Optional[PathLike] = None,
    on_error: str = "skip",
    return_summary: bool = False,
):
    """MIMIC-IV-ECG as ECG-report pairs: an `IterableDataset` (`streaming=True`) or a cached `Dataset`.

    Args:
        root: the MIMIC-IV-ECG folder (`record_list.csv`, `machine_measurements.csv`, `files/`).
        streaming: stream records in `num_shards` shards (for `split_dataset_by_node` and DataLoader workers);
            `False` prepares a `Dataset` in the `datasets` cache with `num_proc` workers.
        min_report_words: drop studies whose report has fewer words (MERL keeps reports of 4 words or more).
        max_records: read only the first rows of `record_list.csv`.
        feature_extractor, num_proc, cache_dir, on_error, return_summary: as in `load_ptbxl` (in streaming mode
            a faulty record is skipped while iterating and no summary is computed).

    Rows have no labels (`labels` is an empty list); `report` is the joined machine report. Some MIMIC-IV-ECG
    records hold NaN runs: the default extractor repairs short gaps and rejects (skips) a record with a longer
    one; pass `CGDMERFeatureExtractor(on_bad_lead="mask")` to keep such records with that lead masked. Record
    files must resolve inside `root`, symlinks followed (see `cgdmer_hf.data.common`): a record whose files link
    elsewhere is skipped as faulty.
    """
    specs = read_mimic_metadata(root, min_report_words=min_report_words, max_records=max_records)
    return build_dataset(
        specs,
        layout="mimic",
        label_set=None,
        names=[],
        extractor=feature_extractor,
        streaming=streaming,
        num_proc=num_proc,
        num_shards=num_shards if streaming else None,
        cache_dir=cache_dir,
        on_error=on_error,
        sources=[Path(root) / RECORD_LIST, Path(root) / MEASUREMENTS],
        return_summary=return_summary,
    )


READER = Reader(
    name="mimic",
    display_name="MIMIC-IV-ECG",
    detect=lambda root: (root / RECORD_LIST).exists(),
    marker=f"{RECORD_LIST} (MIMIC-IV-ECG)",
    load=load_mimic_iv_ecg,
    reports=True,
    options=("max_records",),
    streams=True,
)
