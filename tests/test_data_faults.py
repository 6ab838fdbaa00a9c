"""Faulty records are reported with their path and skipped (or raise); no other record is lost."""

import json
from pathlib import Path

import pytest
from fixtures.data_layouts import copy_ptbxl, corrupt_signal_count, corrupt_truncate, sample_rows

from cgdmer_hf.data import RecordError, load_ptbxl, read_ptbxl_metadata


@pytest.fixture()
def damaged(tmp_path):
    """Six PTB-XL records: one truncated .dat, one header announcing 13 signals, one .dat missing."""
    ids = sorted(int(float(r["ecg_id"])) for r in sample_rows())[:6]
    root = copy_ptbxl(tmp_path / "ptbxl", ids)
    records, _ = read_ptbxl_metadata(root, drop_duplicates=False)
    paths = {r["record_id"]: Path(r["path"]) for r in records}
    truncated, miscounted, missing = (records[i]["record_id"] for i in (1, 3, 4))
    corrupt_truncate(paths[truncated])
    corrupt_signal_count(paths[miscounted], 13)
    paths[missing].with_suffix(".dat").unlink()
    return root, paths, {"truncated": truncated, "miscounted": miscounted, "missing": missing}


def test_faulty_records_are_skipped_and_counted(damaged, tmp_path, caplog):
    root, paths, bad = damaged
    dataset, summary = load_ptbxl(root, drop_duplicates=False, cache_dir=tmp_path / "cache", return_summary=True)
    assert set(dataset["record_id"][:]) == set(paths) - set(bad.values())
    assert summary.records == 3 and len(summary.skipped) == 3
    skipped = {s.record_id: s for s in summary.skipped}
    assert set(skipped) == set(bad.values())
    for record_id in bad.values():
        assert skipped[record_id].path == str(paths[record_id])
        assert str(paths[record_id]) in caplog.text  # logged with its path
    assert "holds" in skipped[bad["truncated"]].reason  # size mismatch of the .dat
    assert "corrupt header" in skipped[bad["miscounted"]].reason
    assert ".dat" in skipped[bad["missing"]].reason or "missing" in skipped[bad["missing"]].reason
    assert "skipped records:" in summary.format_table() and str(paths[bad["truncated"]]) in summary.format_table()
    json.dumps(summary.to_dict())  # serialisable for the CLI's summary file


def test_skipped_records_are_found_again_after_a_cache_hit(damaged, tmp_path):
    root, _, bad = damaged
    first, s1 = load_ptbxl(root, drop_duplicates=False, cache_dir=tmp_path / "cache", return_summary=True)
    again, s2 = load_ptbxl(root, drop_duplicates=False, cache_dir=tmp_path / "cache", return_summary=True)
    assert again.cache_files == first.cache_files
    assert [(s.record_id, s.reason) for s in s2.skipped] == [(s.record_id, s.reason) for s in s1.skipped]


def test_on_error_raise_names_the_path(damaged, tmp_path):
    root, paths, bad = damaged
    with pytest.raises(RecordError) as info:
        load_ptbxl(root, drop_duplicates=False, cache_dir=tmp_path / "cache", on_error="raise")
    assert info.value.record_id == bad["truncated"] and str(paths[bad["truncated"]]) in str(info.value)
    with pytest.raises(ValueError, match="on_error"):
        load_ptbxl(root, on_error="ignore")


def test_missing_500hz_file_is_skipped_not_fatal(tmp_path):
    rows = [r for r in sample_rows() if r["filename_hr"]]
    root = copy_ptbxl(tmp_path / "ptbxl", [int(float(r["ecg_id"])) for r in rows[:2]])
    (root / "records500").rename(root / "elsewhere")
    dataset, summary = load_ptbxl(root, sampling_rate=500, drop_duplicates=False, cache_dir=tmp_path / "c",
                                  return_summary=True)  # fmt: skip
    assert len(dataset) == 0 and len(summary.skipped) == 2
    assert all("records500" in s.path for s in summary.skipped)


def test_faults_with_two_processes(tmp_path):
    ids = sorted(int(float(r["ecg_id"])) for r in sample_rows())[:40]  # two shards of records
    root = copy_ptbxl(tmp_path / "ptbxl", ids)
    records, _ = read_ptbxl_metadata(root, drop_duplicates=False)
    bad = records[35]
    corrupt_truncate(Path(bad["path"]))
    dataset, summary = load_ptbxl(root, drop_duplicates=False, num_proc=2, cache_dir=tmp_path / "c",
                                  return_summary=True)  # fmt: skip
    assert [s.record_id for s in summary.skipped] == [bad["record_id"]] and "holds" in summary.skipped[0].reason
    assert dataset["record_id"][:] == [r["record_id"] for r in records if r is not bad]
    with pytest.raises(RecordError, match=bad["path"]):
        load_ptbxl(root, drop_duplicates=False, num_proc=2, cache_dir=tmp_path / "c2", on_error="raise")


def test_raise_after_a_skip_run_hit_the_cache(damaged, tmp_path):
    root, paths, bad = damaged
    load_ptbxl(root, drop_duplicates=False, cache_dir=tmp_path / "cache")  # skips, and caches the result
    with pytest.raises(RecordError, match=str(paths[bad["truncated"]])):
        load_ptbxl(root, drop_duplicates=False, cache_dir=tmp_path / "cache", on_error="raise")
