"""Machinery shared by the readers: features, the record generator, fault handling, summaries, splits.

A reader lists its records from the metadata files (cheap, no signal read), then builds the dataset with
`build_dataset`: `datasets.Dataset.from_generator` (cached under a fingerprint of the record list and the
feature extractor's settings, `num_proc` workers) or `IterableDataset.from_generator` when streaming. Each
record is read and preprocessed by `CGDMERFeatureExtractor` (its WFDB reader, resampling, filtering, crop/pad).
A faulty record is logged with its path and skipped (`on_error="skip"`) or re-raised as `RecordError`
(`on_error="raise"`); skipped records are found again after a cache hit by comparing the expected record ids
with those in the dataset. A record spec's `root` is its data folder: a record whose header or signal files resolve
outside it (`../`, absolute paths, symlinks followed) is a faulty record, never read. So a folder of links into
another folder, such as a Hugging Face cache snapshot (its files link into `blobs/`), is refused: copy it with
`huggingface_hub.snapshot_download(..., local_dir=...)` first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from ..feature_extraction_cgdmer import is_inside, outside_data_folder  # noqa: F401 - the readers' path checks

logger = logging.getLogger("cgdmer_hf.data")

ON_ERROR = ("skip", "raise")
PTBXL_TRAIN_FOLDS = tuple(range(1, 9))
PTBXL_VALIDATION_FOLDS = (9,)
PTBXL_TEST_FOLDS = (10,)
SPLITS = {"train": PTBXL_TRAIN_FOLDS, "validation": PTBXL_VALIDATION_FOLDS, "test": PTBXL_TEST_FOLDS}
_CACHE_FORMAT = "cgdmer-data-v2"  # bump when the generated rows change for the same inputs
_METADATA_KEY = "cgdmer_hf"
RAISED_FILE = "raised.json"
RECORDS_PER_SHARD = 32  # shards of a prepared Dataset; num_proc workers divide them


@dataclass(frozen=True)
class Reader:
    """What a reader module declares about its data set, in one place (its `READER`): `cgdmer_hf.data.READERS`
    collects them, and layout detection, `cgdmer prepare`, `cgdmer pretrain`, the evaluation data loading, the
    prompt sets of `cgdmer_hf.prompts` and the model-card rows of `cgdmer_hf.hub` read them.

    Attributes:
        name: the layout name (`--layout`, `--data NAME --data-dir DIR`, the `layout` of a dataset's metadata).
        display_name: the data set as a reader sees it ("PTB-XL").
        detect: whether a folder is in this layout (cheap: file names only).
        marker: what `detect` looks for, for the error of a folder in no known layout.
        load: `load(root, **options)` -> `datasets.Dataset` (or `(dataset, summary)` with `return_summary=True`).
        label_sets: the label sets of `load(label_set=...)` (empty: the layout has no labels).
        default_label_set: the label set read when none is given.
        label_set_names: display names of label sets that are data sets of their own ("CPSC2018").
        folds: `load(split=...)` selects train / validation / test folds.
        reports: the records have free-text reports (pretraining needs them).
        options: further `load` options that `cgdmer prepare` passes (`sampling_rate`, `max_records`).
        streams: `load` streams by default (`streaming=True`); `cgdmer prepare` reads it whole.
    """

    name: str
    display_name: str
    detect: Callable[[Path], bool]
    marker: str
    load: Callable[..., Any]
    label_sets: tuple[str, ...] = ()
    default_label_set: Optional[str] = None
    label_set_names: dict[str, str] = field(default_factory=dict)
    folds: bool = False
    reports: bool = False
    options: tuple[str, ...] = ()
    streams: bool = False

    def dataset_name(self, label_set: Optional[str] = None) -> str:
        """The display name of the data set a label set of this layout reads ("CPSC2018", else "PTB-XL")."""
        return self.label_set_names.get(label_set, self.display_name)


class LayoutError(FileNotFoundError):
    """A folder is not in the layout a reader expects (the message names the missing file)."""


class RecordError(ValueError):
    """A record that cannot be read or preprocessed: missing or truncated file, inconsistent header."""

    def __init__(self, record_id: str, path: str, reason: str):
        super().__init__(f"record {record_id} ({path}): {reason}")
        self.record_id, self.path, self.reason = record_id, path, reason


@dataclass
class SkippedRecord:
    record_id: str
    path: str
    reason: str


@dataclass
class DatasetSummary:
    """What a reader produced: kept and skipped records, label counts, report coverage, records per fold."""

    layout: str
    label_set: Optional[str]
    records: int
    skipped: list[SkippedRecord] = field(default_factory=list)
    label_counts: dict[str, int] = field(default_factory=dict)
    reports: int = 0
    folds: dict[int, int] = field(default_factory=dict)

    @property
    def report_coverage(self) -> float:
        return self.reports / self.records if self.records else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["report_coverage"] = self.report_coverage
        out["folds"] = {str(k): v for k, v in self.folds.items()}
        return out

    def format_table(self, max_skipped: int = 20) -> str:
        """A plain-text table for the terminal."""
        width = max([len(n) for n in self.label_counts] + [24])
        rows = [
            ("layout", self.layout),
            ("label set", self.label_set or "-"),
            ("records", f"{self.records}"),
            ("skipped", f"{len(self.skipped)}"),
            ("report coverage", f"{self.reports}/{self.records} ({100 * self.report_coverage:.1f} %)"),
        ]
        if self.folds:
            rows.append(("records per fold", ", ".join(f"{k}: {v}" for k, v in sorted(self.folds.items()))))
        lines = [f"{k:<{width}}  {v}" for k, v in rows]
        if self.label_counts:
            lines += ["", f"{'label':<{width}}  count"] + [f"{k:<{width}}  {v}" for k, v in self.label_counts.items()]
        if self.skipped:
            lines += ["", "skipped records:"]
            lines += [f"  {s.path}: {s.reason}" for s in self.skipped[:max_skipped]]
            if len(self.skipped) > max_skipped:
                lines.append(f"  ... and {len(self.skipped) - max_skipped} more")
        return "\n".join(lines)


# ---------------------------------------------------------------- features and label metadata
def ecg_features(num_leads: int, num_samples: int, num_labels: int):
    """The `datasets.Features` of a prepared ECG dataset."""
    from datasets import Array2D, Features, List, Value

    return Features(
        {
            "ecg_values": Array2D(shape=(num_leads, num_samples), dtype="float32"),
            "lead_mask": List(Value("int8"), length=num_leads),
            "ecg_attention_mask": List(Value("int8"), length=num_samples),
            "report": Value("string"),
            "labels": List(Value("float32"), length=num_labels or -1),  # -1: no label set (MIMIC)
            "record_id": Value("string"),
            "patient_id": Value("string"),
            "fold": Value("int32"),
        }
    )


def _metadata(dataset) -> dict[str, Any]:
    description = dataset.info.description or ""
    try:
        return json.loads(description).get(_METADATA_KEY, {})
    except (json.JSONDecodeError, AttributeError):
        return {}


def set_label_metadata(dataset, label_set: Optional[str], names: Sequence[str], layout: str) -> None:
    """Store the label set and names (in `labels` order) in `dataset.info.description` as JSON."""
    meta = {"layout": layout, "label_set": label_set, "label_names": list(names)}
    dataset.info.description = json.dumps({_METADATA_KEY: meta})


def label_names(dataset) -> list[str]:
    """Names of the `labels` columns of a dataset made by `cgdmer_hf.data` (in order)."""
    meta = _metadata(dataset)
    if "label_names" not in meta:
        raise ValueError("This dataset carries no cgdmer_hf label names (was it made by cgdmer_hf.data?).")
    return list(meta["label_names"])


def label_set(dataset) -> Optional[str]:
    """The label set (`"super"`, `"cpsc2018"`, ...) of a dataset made by `cgdmer_hf.data`."""
    return _metadata(dataset).get("label_set")


# ---------------------------------------------------------------- splits and label fractions
def train_fraction(dataset_or_indices, fraction: float, seed: int = 0):
    """The first `round(fraction * n)` training records of `np.random.RandomState(seed).permutation(...)`.

    Given a `datasets.Dataset` (already restricted to the training split), returns `dataset.select(...)`; given a
    sequence of indices, returns the chosen indices as a list. Fractions are nested: the 1 % subset is inside the
    10 % subset for the same seed.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    is_dataset = hasattr(dataset_or_indices, "select") and hasattr(dataset_or_indices, "features")
    indices = np.arange(len(dataset_or_indices)) if is_dataset else np.asarray(list(dataset_or_indices))
    chosen = np.random.RandomState(seed).permutation(indices)[: int(round(fraction * len(indices)))]
    if len(chosen) == 0:
        raise ValueError(f"fraction {fraction} of {len(indices)} records selects no record.")
    return dataset_or_indices.select(chosen) if is_dataset else chosen.tolist()


def split_by_fold(dataset, splits: Optional[dict[str, Sequence[int]]] = None):
    """A `DatasetDict` by the `fold` column (PTB-XL convention by default: 1-8 train, 9 validation, 10 test)."""
    from datasets import DatasetDict

    splits = splits or SPLITS
    folds = _column(dataset, "fold")
    if (folds < 0).all():
        raise ValueError("The dataset has no folds (fold == -1 everywhere); see the reader's `folds` option.")
    return DatasetDict({name: dataset.select(np.flatnonzero(np.isin(folds, f))) for name, f in splits.items()})


def split_folds(split: Optional[str]) -> Optional[tuple[int, ...]]:
    """Folds of a split name (`None`/`"all"` -> no restriction)."""
    if split in (None, "all"):
        return None
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {tuple(SPLITS) + ('all',)}.")
    return SPLITS[split]


# ---------------------------------------------------------------- the generator
def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}.")


def _describe(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text if isinstance(err, FileNotFoundError) else f"{type(err).__name__}: {text}"


def _log_skip(error_dir: Optional[str], skipped: SkippedRecord) -> None:
    logger.warning("Skipping record %s (%s): %s", skipped.record_id, skipped.path, skipped.reason)
    if error_dir:
        os.makedirs(error_dir, exist_ok=True)
        with open(os.path.join(error_dir, f"skipped-{os.getpid()}.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(skipped)) + "\n")


def _extract(extractor, path: str, root: Optional[str] = None) -> dict[str, Any]:
    """The prepared columns of the WFDB record `path`, its files confined to the data folder `root` if given."""
    out = extractor(path, return_tensors="np", **({"data_root": root} if root else {}))
    return {
        "ecg_values": np.asarray(out["ecg_values"][0], dtype=np.float32),
        "lead_mask": np.asarray(out["lead_mask"][0]).astype(int).tolist(),
        "ecg_attention_mask": np.asarray(out["ecg_attention_mask"][0]).astype(int).tolist(),
    }


ROW_FIELDS = ("report", "labels", "record_id", "patient_id", "fold")


def generate_examples(
    shards: list[list[dict[str, Any]]], extractor, on_error: str = "skip", error_dir: Optional[str] = None
) -> Iterator[dict[str, Any]]:
    """Yield one prepared row per record spec (`path` of the WFDB record plus the row fields)."""
    for shard in shards:
        for spec in shard:
            try:
                if spec.get("error"):
                    raise FileNotFoundError(spec["error"])
                row = _extract(extractor, spec["path"], spec.get("root"))
            except Exception as err:  # noqa: BLE001 - any failure of one record is that record's fault
                skipped = SkippedRecord(str(spec["record_id"]), str(spec["path"]), _describe(err))
                if on_error == "raise":
                    if error_dir:  # worker processes lose the exception's cause: leave it for the parent
                        os.makedirs(error_dir, exist_ok=True)
                        Path(error_dir, RAISED_FILE).write_text(json.dumps(asdict(skipped)))
                    raise RecordError(skipped.record_id, skipped.path, skipped.reason) from err
                _log_skip(error_dir, skipped)
                continue
            row.update({k: spec[k] for k in ROW_FIELDS})
            yield row


def shard_records(records: Sequence[dict[str, Any]], num_shards: int) -> list[list[dict[str, Any]]]:
    """Split records into `num_shards` contiguous, near-equal lists (fewer when there are fewer records)."""
    num_shards = max(1, min(num_shards, len(records)))
    bounds = np.linspace(0, len(records), num_shards + 1).round().astype(int)
    return [list(records[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def fingerprint(*parts: Any, records: Iterable[dict[str, Any]] = ()) -> str:
    """A stable hash of the reader's inputs (record specs, extractor settings, options, source file stats)."""
    h = hashlib.sha256(_CACHE_FORMAT.encode())
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
    for record in records:
        h.update(json.dumps(record, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def file_stats(paths: Iterable[Union[str, Path]]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of metadata files, so an edited csv invalidates the cache."""
    return [(str(p), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths]


def default_extractor(extractor=None):
    """The extractor to use: the given one, or `CGDMERFeatureExtractor()` with its defaults."""
    if extractor is not None:
        return extractor
    from ..feature_extraction_cgdmer import CGDMERFeatureExtractor

    return CGDMERFeatureExtractor()


def extractor_settings(extractor) -> dict[str, Any]:
    """The extractor's saved settings (`preprocessor_config.json`), part of the cache fingerprint."""
    return json.loads(extractor.to_json_string())


def extractor_shape(extractor) -> tuple[int, int]:
    """(num_leads, num_samples) of the extractor's `ecg_values`."""
    return len(extractor.lead_names), int(extractor.num_samples)


def build_dataset(
    records: list[dict[str, Any]],
    *,
    layout: str,
    label_set: Optional[str],
    names: Sequence[str],
    extractor=None,
    streaming: bool = False,
    num_proc: Optional[int] = None,
    num_shards: Optional[int] = None,
    cache_dir: Optional[Union[str, Path]] = None,
    on_error: str = "skip",
    sources: Iterable[Union[str, Path]] = (),
    return_summary: bool = False,
):
    """Build the `Dataset` (or `IterableDataset` when streaming) of `records` and, if asked, its summary."""
    from datasets import Dataset, IterableDataset

    check_on_error(on_error)
    if not records:
        raise ValueError(f"No {layout} record to prepare (check the folder, split and filters).")
    extractor = default_extractor(extractor)
    features = ecg_features(*extractor_shape(extractor), num_labels=len(names))
    if streaming:
        shards = shard_records(records, num_shards or 256)
        gen_kwargs = {"shards": shards, "extractor": extractor, "on_error": on_error}
        dataset = IterableDataset.from_generator(generate_examples, features=features, gen_kwargs=gen_kwargs)
        set_label_metadata(dataset, label_set, names, layout)
        return (dataset, None) if return_summary else dataset

    key = fingerprint(layout, label_set, list(names), extractor_settings(extractor), file_stats(sources),
                      records=records)  # fmt: skip
    cache_root = Path(cache_dir) if cache_dir else _datasets_cache()
    error_dir = str(cache_root / "cgdmer_skipped" / key)
    shards = shard_records(records, num_shards or math.ceil(len(records) / RECORDS_PER_SHARD))
    gen_kwargs = {"shards": shards, "extractor": extractor, "on_error": on_error, "error_dir": error_dir}
    Path(error_dir, RAISED_FILE).unlink(missing_ok=True)
    try:
        dataset = Dataset.from_generator(
            generate_examples,
            features=features,
            cache_dir=str(cache_dir) if cache_dir else None,
            gen_kwargs=gen_kwargs,
            num_proc=num_proc if num_proc and num_proc > 1 else None,
            fingerprint=key,
        )
    except Exception as err:  # datasets wraps generator errors in DatasetGenerationError: surface ours
        record_error = _find_record_error(err) or _raised_in_worker(error_dir)
        if record_error is None and "corresponds to no data" in str(err):  # every record was skipped
            dataset = Dataset.from_dict({name: [] for name in features}, features=features)
        elif record_error is None:
            raise
        else:
            raise RecordError(record_error.record_id, record_error.path, record_error.reason) from None
    set_label_metadata(dataset, label_set, names, layout)
    skipped = skipped_records(dataset, records, error_dir) if return_summary or on_error == "raise" else []
    if skipped and on_error == "raise":  # a cache written by an earlier on_error="skip" run
        raise RecordError(skipped[0].record_id, skipped[0].path, skipped[0].reason)
    return (dataset, summarize(dataset, skipped, layout=layout)) if return_summary else dataset


def _find_record_error(err: Optional[BaseException]) -> Optional[RecordError]:
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, RecordError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _raised_in_worker(error_dir: str) -> Optional[RecordError]:
    path = Path(error_dir, RAISED_FILE)
    if not path.exists():
        return None
    item = json.loads(path.read_text())
    return RecordError(item["record_id"], item["path"], item["reason"])


def _datasets_cache() -> Path:
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE)


def skipped_records(dataset, records: Sequence[dict[str, Any]], error_dir: Optional[str]) -> list[SkippedRecord]:
    """Records listed but absent from the dataset, with the reason logged when they were skipped."""
    present = set(_column(dataset, "record_id").tolist())
    reasons: dict[str, str] = {}
    if error_dir and os.path.isdir(error_dir):
        for name in sorted(n for n in os.listdir(error_dir) if n.startswith("skipped-")):
            with open(os.path.join(error_dir, name), encoding="utf-8") as f:
                for line in f:
                    item = json.loads(line)
                    reasons[item["record_id"]] = item["reason"]
    return [
        SkippedRecord(str(r["record_id"]), str(r["path"]), reasons.get(str(r["record_id"]), "unreadable record"))
        for r in records
        if str(r["record_id"]) not in present
    ]


def _column(dataset, name: str) -> np.ndarray:
    """One column as a numpy array (respecting `select`/`filter` index mappings), through Arrow."""
    return np.asarray(dataset.with_format("arrow", columns=[name])[name].to_numpy(zero_copy_only=False))


def summarize(dataset, skipped: Sequence[SkippedRecord] = (), layout: Optional[str] = None) -> DatasetSummary:
    """Counts of a prepared dataset: records, skipped, positives per label, non-empty reports, records per fold."""
    meta = _metadata(dataset)
    names = meta.get("label_names", [])
    counts = np.zeros(len(names), dtype=np.int64)
    reports = 0
    for batch in dataset.with_format("arrow", columns=["labels", "report"]).iter(batch_size=65536):
        if len(names) and batch.num_rows:
            labels = batch.column("labels").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            counts += (labels.reshape(-1, len(names)) > 0).sum(0)
        reports += sum(bool(r and r.strip()) for r in batch.column("report").to_pylist())
    folds, fold_counts = np.unique(_column(dataset, "fold"), return_counts=True)
    return DatasetSummary(
        layout=layout or meta.get("layout", "?"),
        label_set=meta.get("label_set"),
        records=len(dataset),
        skipped=list(skipped),
        label_counts={n: int(c) for n, c in zip(names, counts)},
        reports=int(reports),
        folds={int(f): int(c) for f, c in zip(folds, fold_counts) if f >= 0},
    )
