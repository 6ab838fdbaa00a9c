"""Data readers: official ECG data set layouts -> `datasets.Dataset` (or `IterableDataset` when streaming).

Every reader yields the same columns: `ecg_values` (`Array2D` (12, num_samples) float32, the feature
extractor's output), `lead_mask` (12 int8), `ecg_attention_mask` (num_samples int8), `report` (raw text, `""`
when none), `labels` (multi-hot float32; names in `label_names(dataset)`), `record_id`, `patient_id` (strings)
and `fold` (int, -1 when none).

    >>> from cgdmer_hf.data import load_ptbxl, label_names, train_fraction
    >>> train = load_ptbxl("path/to/ptb-xl", label_set="super", split="train")
    >>> ten_percent = train_fraction(train, 0.1, seed=0)

This package is never imported by the model files.
"""

from pathlib import Path
from typing import Union

from .cinc import load_cinc, read_cinc_metadata
from .common import (
    DatasetSummary,
    LayoutError,
    RecordError,
    SkippedRecord,
    label_names,
    label_set,
    split_by_fold,
    summarize,
    train_fraction,
)
from .labels import CINC_LABEL_SETS, PTBXL_LABEL_SETS, cinc_label_names, parse_dx
from .mimic import load_mimic_iv_ecg, read_mimic_metadata
from .ptbxl import load_ptbxl, read_ptbxl_metadata

LOADERS = {"ptbxl": load_ptbxl, "mimic": load_mimic_iv_ecg, "cinc": load_cinc}
DEFAULT_LABEL_SETS = {"ptbxl": "super", "mimic": None, "cinc": "cpsc2018"}


def detect_layout(root: Union[str, Path]) -> str:
    """`"ptbxl"`, `"mimic"` or `"cinc"` from the files in `root`; a `LayoutError` naming what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Data folder not found: {root}")
    if (root / "ptbxl_database.csv").exists() or (root / "ptbxl_index.csv").exists():
        return "ptbxl"
    if (root / "record_list.csv").exists():
        return "mimic"
    if next(root.rglob("*.hea"), None) is not None:
        return "cinc"
    raise LayoutError(
        f"{root} is in no known layout: missing ptbxl_database.csv (PTB-XL), record_list.csv (MIMIC-IV-ECG) "
        "or *.hea WFDB headers (PhysioNet/CinC)."
    )


__all__ = [
    "CINC_LABEL_SETS",
    "DEFAULT_LABEL_SETS",
    "LOADERS",
    "PTBXL_LABEL_SETS",
    "DatasetSummary",
    "LayoutError",
    "RecordError",
    "SkippedRecord",
    "cinc_label_names",
    "detect_layout",
    "label_names",
    "label_set",
    "load_cinc",
    "load_mimic_iv_ecg",
    "load_ptbxl",
    "parse_dx",
    "read_cinc_metadata",
    "read_mimic_metadata",
    "read_ptbxl_metadata",
    "split_by_fold",
    "summarize",
    "train_fraction",
]
