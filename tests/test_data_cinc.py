"""PhysioNet/CinC reader: `# Dx:` parsing (SNOMED CT codes and CPSC abbreviations), label sets, variable lengths."""

import csv

import numpy as np
import pytest
from fixtures.data_layouts import CPSC_SAMPLE_DIR

from cgdmer_hf.data import LayoutError, label_names, load_cinc, parse_dx, read_cinc_metadata
from cgdmer_hf.data.cinc import hash_fold, header_comments
from cgdmer_hf.data.labels import (
    CPSC2018_ABBREVIATIONS,
    CPSC2018_CLASSES,
    RESOURCES,
    cinc_code_map,
    cinc_label_names,
    cinc_record_labels,
    snomed_names,
)

CPSC = ["NORM", "AF", "I-AVB", "LBBB", "RBBB", "PAC", "PVC", "STD", "STE"]


def _mapping_rows():
    rows = []
    for kind in ("scored", "unscored"):
        with open(RESOURCES / f"cinc2021_dx_mapping_{kind}.csv", newline="") as f:
            rows += list(csv.DictReader(f))
    return {row["SNOMEDCTCode"]: row for row in rows}


def test_cpsc2018_codes_match_the_cinc_mapping():
    rows = _mapping_rows()
    assert list(CPSC2018_CLASSES) == CPSC == cinc_label_names("cpsc2018")
    for name, codes in CPSC2018_CLASSES.items():
        assert int(rows[codes[0]]["CPSC"]) > 0, name  # the code the CPSC records carry
        assert all(code in rows for code in codes)
    # the nine CPSC 2018 classes cover the whole CPSC source of CinC 2021 (6877 recordings, some multi-label)
    assert sum(int(rows[codes[0]]["CPSC"]) for codes in CPSC2018_CLASSES.values()) == 7359
    assert set(CPSC2018_ABBREVIATIONS.values()) == {codes[0] for codes in CPSC2018_CLASSES.values()}


def test_parse_dx_codes_and_abbreviations():
    assert parse_dx(["Age: 74", "Sex: Male", "Dx: AF,RBBB"]) == (["164889003", "59118001"], [])
    assert parse_dx(["Dx: 59118001, 426783006,foo"]) == (["59118001", "426783006"], ["foo"])
    assert parse_dx(["#Dx: Normal"]) == (["426783006"], [])
    assert parse_dx(["Age: 50"]) == ([], [])
    # CinC treats CRBBB as RBBB, SVPB as PAC, VPB as PVC
    assert cinc_record_labels(["713427006", "63593006", "17338001"], "cpsc2018") == ["RBBB", "PAC", "PVC"]
    assert cinc_record_labels(["713427006", "59118001", "426783006"], "cinc2021") == ["NSR", "RBBB"]


def test_label_set_tables():
    assert len(cinc_label_names("chapman")) == 38 and len(set(cinc_code_map("chapman").values())) == 38
    assert set(cinc_code_map("chapman")) <= set(snomed_names())  # every Chapman code is a CinC code
    assert cinc_code_map("chapman")["164889003"] == "AFIB" and cinc_code_map("chapman")["164890007"] == "AF"
    assert len(cinc_label_names("cinc2021")) == 26 and len(cinc_code_map("cinc2021")) == 30
    with pytest.raises(ValueError, match="Unknown CinC label_set"):
        cinc_label_names("georgia")


def test_cpsc_sample_labels_parse():
    records, names = read_cinc_metadata(CPSC_SAMPLE_DIR)
    assert names == CPSC and records
    for record in records:
        dx = next(c for c in header_comments(CPSC_SAMPLE_DIR / f"{record['record_id']}.hea") if c.startswith("Dx"))
        tokens = {"NORM" if t.strip() == "Normal" else t.strip() for t in dx.split(":")[1].split(",")}
        assert [n for n, v in zip(names, record["labels"]) if v] == [n for n in CPSC if n in tokens]
        assert record["fold"] == hash_fold(record["record_id"]) and 1 <= record["fold"] <= 10


def test_load_cinc_variable_lengths(tmp_path):
    import wfdb

    # a CinC 2021-style record (SNOMED codes) of 4 s at 500 Hz next to the CPSC sample's 2020-style headers
    sig = np.random.default_rng(0).normal(size=(2000, 12)) * 0.1
    leads = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    wfdb.wrsamp("Q0001", fs=500, units=["mV"] * 12, sig_name=leads, p_signal=sig, fmt=["16"] * 12,
                comments=["Age: 60", "Sex: Female", "Dx: 713427006,164889003"], write_dir=str(tmp_path))  # fmt: skip
    dataset, summary = load_cinc(tmp_path, cache_dir=tmp_path / "cache", return_summary=True)
    row = dataset.with_format("numpy")[0]
    assert label_names(dataset) == CPSC and [n for n, v in zip(CPSC, row["labels"]) if v] == ["AF", "RBBB"]
    assert row["ecg_attention_mask"].sum() == 400 and row["ecg_values"].shape == (12, 1000)  # 4 s padded to 10 s
    assert summary.label_counts["RBBB"] == 1 and summary.reports == 0
    chapman = load_cinc(tmp_path, label_set="chapman", cache_dir=tmp_path / "cache")
    assert [n for n, v in zip(label_names(chapman), chapman[0]["labels"]) if v] == ["AFIB"]


def test_load_cpsc_sample(tmp_path):
    dataset = load_cinc(CPSC_SAMPLE_DIR, cache_dir=tmp_path)
    records, _ = read_cinc_metadata(CPSC_SAMPLE_DIR)
    assert dataset["record_id"][:] == [r["record_id"] for r in records]
    masks = np.asarray(dataset.with_format("numpy")["ecg_attention_mask"])
    assert masks.shape == (len(records), 1000) and (masks.sum(1) >= 600).all()  # records of 6 s or more
    assert dataset["report"][:] == [""] * len(records)


def test_splits_and_folds(tmp_path):
    records, _ = read_cinc_metadata(CPSC_SAMPLE_DIR)
    parts = [read_cinc_metadata(CPSC_SAMPLE_DIR, split=s)[0] for s in ("train", "validation", "test")]
    assert sorted(r["record_id"] for p in parts for r in p) == sorted(r["record_id"] for r in records)
    no_folds, _ = read_cinc_metadata(CPSC_SAMPLE_DIR, folds=None)
    assert {r["fold"] for r in no_folds} == {-1}
    with pytest.raises(ValueError, match="needs folds"):
        read_cinc_metadata(CPSC_SAMPLE_DIR, split="test", folds=None)


def test_not_a_cinc_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("no records")
    with pytest.raises(LayoutError, match=r"missing \*\.hea"):
        load_cinc(tmp_path)


def test_shared_cpsc_labels(shared_data):
    records, names = read_cinc_metadata(shared_data / "cpsc2018-cinc2020")
    counts = dict(zip(names, np.sum([r["labels"] for r in records], 0).astype(int).tolist()))
    assert len(records) == 150
    # README: RBBB 28, Normal 20, AF 20, ..., AF+RBBB 4 -> AF 24 and RBBB 32 as multi-label counts
    assert counts == {"NORM": 20, "AF": 24, "I-AVB": 7, "LBBB": 8, "RBBB": 32, "PAC": 13, "PVC": 18, "STD": 19,
                      "STE": 13}  # fmt: skip
