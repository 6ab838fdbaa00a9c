"""MIMIC-IV-ECG reader on a *layout fixture*: real PTB-XL records from the bundled sample, arranged in the
MIMIC-IV-ECG layout (see `fixtures/data_layouts.build_mimic_layout`); it is not MIMIC-IV-ECG data."""

import numpy as np
import pytest
from datasets import IterableDataset
from datasets.distributed import split_dataset_by_node
from fixtures.data_layouts import build_mimic_layout, read_rows

from cgdmer_hf.data import LayoutError, detect_layout, label_names, load_mimic_iv_ecg, read_mimic_metadata
from cgdmer_hf.data.mimic import join_report

N = 6


@pytest.fixture(scope="module")
def mimic_root(tmp_path_factory):
    return build_mimic_layout(tmp_path_factory.mktemp("mimic-layout-fixture"), n_records=N)


def test_join_report():
    assert join_report(["Sinus rhythm", float("nan"), " ", "Borderline ECG", None]) == "Sinus rhythm. Borderline ECG"
    assert join_report(["Sinus rhythm.", "Normal ECG."]) == "Sinus rhythm. Normal ECG."
    assert join_report([float("nan")] * 18) == ""


def test_metadata(mimic_root):
    specs = read_mimic_metadata(mimic_root)
    records = read_rows(mimic_root / "record_list.csv")
    assert [s["record_id"] for s in specs] == [r["study_id"] for r in records]
    assert [s["patient_id"] for s in specs] == [r["subject_id"] for r in records]
    assert specs[0]["path"].endswith("files/p1000/p10000032/s40689238/40689238")
    assert specs[0]["report"] == "" and all(s["report"] for s in specs[1:])
    measurement = read_rows(mimic_root / "machine_measurements.csv")[1]
    lines = [measurement[f"report_{k}"] for k in range(18) if measurement[f"report_{k}"]]
    assert specs[1]["report"] == ". ".join(lines)
    assert len(read_mimic_metadata(mimic_root, min_report_words=1)) == N - 1
    assert detect_layout(mimic_root) == "mimic"


def test_streaming_rows(mimic_root):
    stream = load_mimic_iv_ecg(mimic_root, num_shards=4)
    assert isinstance(stream, IterableDataset) and stream.num_shards == 4 and label_names(stream) == []
    rows = list(stream)
    assert [r["record_id"] for r in rows] == [s["record_id"] for s in read_mimic_metadata(mimic_root)]
    ecg = np.asarray(rows[1]["ecg_values"], dtype=np.float32)
    assert ecg.shape == (12, 1000) and rows[1]["labels"] == [] and rows[1]["fold"] == -1
    assert sum(rows[1]["ecg_attention_mask"]) == 1000 and rows[1]["lead_mask"] == [1] * 12


def test_split_dataset_by_node_gives_each_rank_its_own_shards(mimic_root):
    stream = load_mimic_iv_ecg(mimic_root, num_shards=N)
    parts = [[r["record_id"] for r in split_dataset_by_node(stream, rank=rank, world_size=2)] for rank in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == N // 2 and not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == sorted(s["record_id"] for s in read_mimic_metadata(mimic_root))


def test_prepared_dataset_matches_stream(mimic_root, tmp_path):
    dataset, summary = load_mimic_iv_ecg(mimic_root, streaming=False, cache_dir=tmp_path, return_summary=True)
    stream = list(load_mimic_iv_ecg(mimic_root, num_shards=2))
    assert dataset["record_id"][:] == [r["record_id"] for r in stream]
    np.testing.assert_array_equal(dataset.with_format("numpy")[2]["ecg_values"], np.asarray(stream[2]["ecg_values"]))
    assert summary.records == N and summary.reports == N - 1 and summary.label_counts == {}


def test_not_a_mimic_folder(mimic_root, tmp_path):
    (tmp_path / "record_list.csv").write_text((mimic_root / "record_list.csv").read_text())
    with pytest.raises(LayoutError, match="missing machine_measurements.csv"):
        load_mimic_iv_ecg(tmp_path)
    with pytest.raises(LayoutError, match="missing record_list.csv"):
        load_mimic_iv_ecg(mimic_root / "files")
