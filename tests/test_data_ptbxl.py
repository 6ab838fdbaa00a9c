"""PTB-XL reader: label sets, folds, label fractions, caching, dataset schema, and the shared data's counts."""

import csv

import numpy as np
import pytest
from datasets import Array2D
from fixtures.data_layouts import SAMPLE_DIR, copy_ptbxl, sample_rows

from cgdmer_hf.data import (
    LayoutError,
    PTBXL_LABEL_SETS,
    label_names,
    label_set,
    load_ptbxl,
    read_ptbxl_metadata,
    split_by_fold,
    summarize,
    train_fraction,
)
from cgdmer_hf.data.labels import (
    PTBXL_DROPPED_IN_V103,
    ptbxl_label_names,
    ptbxl_record_labels,
    read_scp_statements,
)

SUPER = ["CD", "HYP", "MI", "NORM", "STTC"]


@pytest.fixture(scope="module")
def statements():
    return read_scp_statements(SAMPLE_DIR / "scp_statements.csv")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    cache = tmp_path_factory.mktemp("hf-cache")
    dataset, summary = load_ptbxl(SAMPLE_DIR, cache_dir=cache, return_summary=True)
    return dataset, summary, cache


def test_label_set_sizes_follow_the_benchmark(statements):
    sizes = {name: len(ptbxl_label_names(statements, name)) for name in PTBXL_LABEL_SETS}
    assert sizes == {"super": 5, "sub": 23, "form": 19, "rhythm": 12, "diagnostic": 44, "all": 71}
    assert ptbxl_label_names(statements, "super") == SUPER
    with pytest.raises(ValueError, match="Unknown PTB-XL label_set"):
        ptbxl_label_names(statements, "superclass")


def test_any_likelihood_counts_including_zero(statements):
    codes = {"IMI": 0.0, "LVH": 15.0, "SR": 0.0, "NOT_A_CODE": 100.0}
    assert ptbxl_record_labels(codes, statements, "super") == ["HYP", "MI"]
    assert ptbxl_record_labels(codes, statements, "sub") == ["IMI", "LVH"]
    assert ptbxl_record_labels(codes, statements, "rhythm") == ["SR"]
    assert ptbxl_record_labels({"NDT": 100.0}, statements, "form") == ["NDT"]  # diagnostic and form


def test_metadata_matches_the_csv(statements):
    records, names = read_ptbxl_metadata(SAMPLE_DIR, "super", drop_duplicates=False)
    rows = {int(float(r["ecg_id"])): r for r in sample_rows()}
    assert names == SUPER and [int(r["record_id"]) for r in records] == sorted(rows)
    for record in records:
        row = rows[int(record["record_id"])]
        assert record["fold"] == int(row["strat_fold"]) and record["report"] == row["report"]
        assert record["path"] == str(SAMPLE_DIR / row["filename_lr"])
        expected = ptbxl_record_labels(record["scp_codes"], statements, "super")
        assert [n for n, v in zip(names, record["labels"]) if v] == expected


def test_dataset_schema_and_values(sample):
    dataset, summary, _ = sample
    assert dataset.column_names == ["ecg_values", "lead_mask", "ecg_attention_mask", "report", "labels",
                                    "record_id", "patient_id", "fold"]  # fmt: skip
    assert isinstance(dataset.features["ecg_values"], Array2D)
    assert dataset.features["ecg_values"].shape == (12, 1000)
    assert label_names(dataset) == SUPER and label_set(dataset) == "super"
    row = dataset.with_format("numpy")[0]
    assert row["ecg_values"].dtype == np.float32 and row["ecg_values"].shape == (12, 1000)
    assert row["lead_mask"].tolist() == [1] * 12 and row["ecg_attention_mask"].sum() == 1000
    np.testing.assert_allclose(row["ecg_values"].mean(1), 0, atol=1e-4)  # z-scored by the feature extractor
    records, _ = read_ptbxl_metadata(SAMPLE_DIR, "super")
    assert dataset["record_id"][:] == [r["record_id"] for r in records]
    labels = np.asarray(dataset.with_format("numpy")["labels"])
    np.testing.assert_array_equal(labels, np.array([r["labels"] for r in records], dtype=np.float32))
    assert summary.records == len(records) and summary.skipped == []
    assert summary.label_counts == dict(zip(SUPER, labels.sum(0).astype(int).tolist()))


def test_feature_extractor_output_is_stored_unchanged(sample):
    from cgdmer_hf.feature_extraction_cgdmer import CGDMERFeatureExtractor

    dataset, _, _ = sample
    row = dataset.with_format("numpy")[3]
    path = next(r["path"] for r in read_ptbxl_metadata(SAMPLE_DIR)[0] if r["record_id"] == row["record_id"])
    expected = CGDMERFeatureExtractor()(path, return_tensors="np")
    np.testing.assert_array_equal(row["ecg_values"], expected["ecg_values"][0])


def test_second_run_reuses_the_cache(sample):
    dataset, _, cache = sample
    again = load_ptbxl(SAMPLE_DIR, cache_dir=cache)
    assert again.cache_files == dataset.cache_files
    other = load_ptbxl(SAMPLE_DIR, cache_dir=cache, label_set="rhythm", split="test")
    assert other.cache_files != dataset.cache_files and len(label_names(other)) == 12


def test_num_proc_gives_the_same_rows(sample, tmp_path):
    dataset, _, _ = sample
    parallel = load_ptbxl(SAMPLE_DIR, cache_dir=tmp_path, num_proc=2)
    assert parallel["record_id"][:] == dataset["record_id"][:]
    np.testing.assert_array_equal(parallel.with_format("numpy")["ecg_values"][:],
                                  dataset.with_format("numpy")["ecg_values"][:])  # fmt: skip


def test_splits_are_disjoint_and_cover_the_folds(sample):
    dataset, _, _ = sample
    splits = split_by_fold(dataset)
    folds = {name: set(part["fold"][:]) for name, part in splits.items()}
    assert folds["train"] <= set(range(1, 9)) and folds["validation"] <= {9} and folds["test"] <= {10}
    ids = [set(part["record_id"][:]) for part in splits.values()]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert set().union(*ids) == set(dataset["record_id"][:])
    train_only, _ = read_ptbxl_metadata(SAMPLE_DIR, split="train")
    assert [r["record_id"] for r in train_only] == splits["train"]["record_id"][:]
    with pytest.raises(ValueError, match="Unknown split"):
        read_ptbxl_metadata(SAMPLE_DIR, split="val")


def test_label_fractions_are_reproducible_nested_and_inside_train():
    train = list(range(100, 2422))  # 2,322 training indices, as in PEERS.md
    one, ten = train_fraction(train, 0.01), train_fraction(train, 0.10)
    assert len(one) == 23 and len(ten) == 232 and len(train_fraction(train, 1.0)) == 2322
    assert one == train_fraction(train, 0.01, seed=0) and one != train_fraction(train, 0.01, seed=1)
    assert set(one) <= set(ten) <= set(train) and len(set(ten)) == len(ten)
    assert one == np.random.RandomState(0).permutation(train)[:23].tolist()
    with pytest.raises(ValueError, match="fraction"):
        train_fraction(train, 0.0)


def test_label_fraction_of_a_dataset(sample):
    dataset, _, _ = sample
    train = split_by_fold(dataset)["train"]
    part = train_fraction(train, 0.5, seed=0)
    expected = np.random.RandomState(0).permutation(len(train))[: round(0.5 * len(train))]
    assert part["record_id"][:] == [train["record_id"][int(i)] for i in expected]
    assert summarize(part).records == len(part)


def test_drop_duplicates_and_unlabeled():
    all_records, _ = read_ptbxl_metadata(SAMPLE_DIR, drop_duplicates=False)
    kept, _ = read_ptbxl_metadata(SAMPLE_DIR)
    dropped = {int(r["record_id"]) for r in all_records} - {int(r["record_id"]) for r in kept}
    assert dropped == {int(r["record_id"]) for r in all_records} & PTBXL_DROPPED_IN_V103
    labelled, _ = read_ptbxl_metadata(SAMPLE_DIR, label_set="form", drop_unlabeled=True)
    assert all(any(r["labels"]) for r in labelled) and len(labelled) < len(kept)


def test_several_roots_and_500_hz(tmp_path):
    ids = [int(float(r["ecg_id"])) for r in sample_rows()]
    a = copy_ptbxl(tmp_path / "a", ids[:3])
    b = copy_ptbxl(tmp_path / "b", ids[2:5])  # ids[2] in both: taken from the first root
    records, _ = read_ptbxl_metadata([a, b], drop_duplicates=False)
    assert [int(r["record_id"]) for r in records] == sorted(ids[:5])
    assert records[sorted(ids[:5]).index(ids[2])]["path"].startswith(str(a))
    hr, _ = read_ptbxl_metadata(a, sampling_rate=500, drop_duplicates=False)
    assert all("records500" in r["path"] or r["error"] for r in hr)
    with pytest.raises(ValueError, match="100 .* or 500"):
        read_ptbxl_metadata(a, sampling_rate=250)


def test_not_a_ptbxl_folder(tmp_path):
    with pytest.raises(LayoutError, match="missing ptbxl_database.csv"):
        load_ptbxl(tmp_path)
    (tmp_path / "ptbxl_database.csv").write_text("ecg_id\n")
    with pytest.raises(LayoutError, match="missing scp_statements.csv"):
        load_ptbxl(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_ptbxl(tmp_path / "nowhere")


# ------------------------------------------------------------------ ../shared/data (CSV only, no signal read)
def test_shared_superclass_counts_reproduced_from_raw_csvs(shared_data):
    records, names = read_ptbxl_metadata(shared_data, "super", drop_duplicates=False)
    with open(shared_data / "ptbxl_index.csv", newline="") as f:
        index = {int(r["ecg_id"]): r for r in csv.DictReader(f)}
    assert len(records) == len(index) == 2992
    for record in records:
        row = index[int(record["record_id"])]
        assert [int(v) for v in record["labels"]] == [int(row[n]) for n in names], record["record_id"]
        assert record["fold"] == int(row["strat_fold"]) and record["patient_id"] == row["patient_id"]
    totals = dict(zip(names, np.sum([r["labels"] for r in records], 0).astype(int).tolist()))
    assert totals == {"NORM": 1433, "MI": 665, "STTC": 703, "CD": 602, "HYP": 346}
    assert sum(not any(r["labels"]) for r in records) == 61


def test_shared_folds_and_dropped_ids(shared_data):
    records, _ = read_ptbxl_metadata(shared_data)
    sizes = {s: len(read_ptbxl_metadata(shared_data, split=s)[0]) for s in ("train", "validation", "test")}
    assert len(records) == 2980 and sizes == {"train": 2322, "validation": 330, "test": 328}
    patients = {}
    for record in records:
        patients.setdefault(record["patient_id"], set()).add(record["fold"])
    assert all(len(folds) == 1 for folds in patients.values())  # no patient in two folds
    hr, _ = read_ptbxl_metadata(shared_data, sampling_rate=500)
    assert sum(r["error"] is None for r in hr) == 762 - 12


def test_sample_superclasses_match_its_index():
    from cgdmer_hf.samples import load_sample_index

    index = {str(row["ecg_id"]): row for row in load_sample_index()}
    records, names = read_ptbxl_metadata(SAMPLE_DIR, "super", drop_duplicates=False)
    assert sorted(r["record_id"] for r in records) == sorted(index)
    for record in records:
        assert [int(v) for v in record["labels"]] == [index[record["record_id"]][n] for n in names]


def test_plain_class_names_are_the_statement_descriptions():
    from cgdmer_hf.data.labels import plain_class_names, ptbxl_label_names, read_scp_statements

    statements = read_scp_statements(SAMPLE_DIR / "scp_statements.csv")
    for label_set in ("super", "sub", "form", "rhythm"):
        names = plain_class_names(label_set, statements)
        assert sorted(names) == ptbxl_label_names(statements, label_set)
        assert all(name and name.isascii() for name in names.values()), label_set
    assert plain_class_names("super", statements)["MI"] == "myocardial infarction"
    rhythm = plain_class_names("rhythm", statements)
    assert (rhythm["STACH"], rhythm["SBRAD"], rhythm["AFIB"]) == ("sinus tachycardia", "sinus bradycardia",
                                                                   "atrial fibrillation")
    assert plain_class_names("sub", statements)["IRBBB"] == "incomplete right bundle branch block"
    with pytest.raises(ValueError, match="needs PTB-XL's scp_statements"):
        plain_class_names("super")
    cpsc = plain_class_names("cpsc2018")
    assert list(cpsc) == ["NORM", "AF", "I-AVB", "LBBB", "RBBB", "PAC", "PVC", "STD", "STE"]
    assert (cpsc["NORM"], cpsc["AF"], cpsc["STE"]) == ("sinus rhythm", "atrial fibrillation", "st elevation")
