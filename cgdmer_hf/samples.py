"""The real ECG sample bundled with the package (50 PTB-XL records, 6 CPSC2018 records; CC BY 4.0, see
`sample_data/README.md`), for tests, examples and the quick start on a fresh clone."""

from __future__ import annotations

import ast
import csv
from pathlib import Path
from typing import Any

_INT_COLUMNS = ("ecg_id", "strat_fold", "NORM", "MI", "STTC", "CD", "HYP", "patient_id", "dropped_in_v103")


def sample_data_dir() -> Path:
    """Folder of the bundled sample: a PTB-XL layout (`records100/`, `records500/`, `ptbxl_database.csv`,
    `scp_statements.csv`) plus `index.csv` (columns of `shared/data/ptbxl_index.csv`, `folder` = ".") and
    `cpsc2018/`."""
    return Path(__file__).resolve().parent / "sample_data"


def load_sample_index() -> list[dict[str, Any]]:
    """Rows of the sample's `index.csv` as dicts: ids, folds and superclass flags as `int`, `scp_codes` as a
    dict, `filename_hr` `""` where the 500 Hz file is not bundled."""
    rows = []
    with open(sample_data_dir() / "index.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for key in _INT_COLUMNS:
                if row.get(key, "") != "":
                    row[key] = int(float(row[key]))
            row["scp_codes"] = ast.literal_eval(row["scp_codes"])
            rows.append(row)
    return rows


def sample_record_path(ecg_id: int, rate: int = 100) -> str:
    """Path (without extension, as `wfdb.rdrecord` takes it) of a bundled PTB-XL record at 100 or 500 Hz."""
    if rate not in (100, 500):
        raise ValueError(f"rate must be 100 or 500, got {rate}")
    rows = {row["ecg_id"]: row for row in load_sample_index()}
    if int(ecg_id) not in rows:
        raise ValueError(f"ecg_id {ecg_id} is not in the bundled sample; available: {sorted(rows)}")
    rel = rows[int(ecg_id)]["filename_lr" if rate == 100 else "filename_hr"]
    if not rel:
        with_hr = sorted(i for i, r in rows.items() if r["filename_hr"])
        raise ValueError(f"ecg_id {ecg_id} is bundled at 100 Hz only; 500 Hz records: {with_hr}")
    return str(sample_data_dir() / rel)


def load_cpsc_index() -> list[dict[str, Any]]:
    """Rows of `cpsc2018/index.csv`: record, sampling_rate, num_samples, duration_s, dx, age, sex."""
    with open(sample_data_dir() / "cpsc2018" / "index.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["sampling_rate"] = float(row["sampling_rate"])
        row["num_samples"] = int(row["num_samples"])
        row["duration_s"] = float(row["duration_s"])
    return rows


def sample_cpsc_record_path(record: str) -> str:
    """Path (without extension) of a bundled CPSC2018 record such as `"A0113"` (60 s)."""
    names = [row["record"] for row in load_cpsc_index()]
    if record not in names:
        raise ValueError(f"CPSC2018 record {record!r} is not in the bundled sample; available: {names}")
    return str(sample_data_dir() / "cpsc2018" / record)


__all__ = [
    "sample_data_dir",
    "load_sample_index",
    "sample_record_path",
    "load_cpsc_index",
    "sample_cpsc_record_path",
]
