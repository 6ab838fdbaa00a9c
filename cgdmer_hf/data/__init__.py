"""Data readers: official ECG data set layouts -> `datasets.Dataset` (or `IterableDataset` when streaming).

Every reader yields the same columns: `ecg_values` (`Array2D` (12, num_samples) float32, the feature
extractor's output), `lead_mask` (12 int8), `ecg_attention_mask` (num_samples int8), `report` (raw text, `""`
when none), `labels` (multi-hot float32; names in `label_names(dataset)`), `record_id`, `patient_id` (strings)
and `fold` (int, -1 when none).

    >>> from cgdmer_hf.data import load_ptbxl, label_names, train_fraction
    >>> train = load_ptbxl("path/to/ptb-xl", label_set="super", split="train")
    >>> ten_percent = train_fraction(train, 0.1, seed=0)

Readers register in `readers.READERS` (each reader module declares its `READER`); `folders.load_data_folder` reads a
prepared or raw data folder; `batches.collate_ecgs` is the ECG collator. This package is never imported by the model
files, and imports none of `training`, `evaluation`, `hub` or `commands`.
"""

from .cinc import load_cinc, read_cinc_metadata
from .batches import ECG_INPUT_NAMES, check_compatible, collate_ecgs, ecg_batches, eval_mode
from .common import (
    DatasetSummary,
    LayoutError,
    Reader,
    RecordError,
    SkippedRecord,
    label_names,
    label_set,
    split_by_fold,
    summarize,
    train_fraction,
)
from .folders import load_data_folder, model_feature_extractor
from .labels import CINC_LABEL_SETS, PTBXL_LABEL_SETS, cinc_label_names, parse_dx
from .mimic import load_mimic_iv_ecg, read_mimic_metadata
from .ptbxl import load_ptbxl, read_ptbxl_metadata
from .readers import READERS, dataset_name, detect_layout, reader_of_label_set

# Views of `READERS` (each reader module's `READER`), kept for callers of earlier versions.
LOADERS = {name: reader.load for name, reader in READERS.items()}
DEFAULT_LABEL_SETS = {name: reader.default_label_set for name, reader in READERS.items()}


__all__ = [
    "CINC_LABEL_SETS",
    "DEFAULT_LABEL_SETS",
    "ECG_INPUT_NAMES",
    "LOADERS",
    "PTBXL_LABEL_SETS",
    "READERS",
    "DatasetSummary",
    "LayoutError",
    "Reader",
    "RecordError",
    "SkippedRecord",
    "check_compatible",
    "cinc_label_names",
    "collate_ecgs",
    "dataset_name",
    "detect_layout",
    "ecg_batches",
    "eval_mode",
    "label_names",
    "label_set",
    "load_cinc",
    "load_data_folder",
    "load_mimic_iv_ecg",
    "load_ptbxl",
    "model_feature_extractor",
    "parse_dx",
    "read_cinc_metadata",
    "read_mimic_metadata",
    "read_ptbxl_metadata",
    "reader_of_label_set",
    "split_by_fold",
    "summarize",
    "train_fraction",
]
