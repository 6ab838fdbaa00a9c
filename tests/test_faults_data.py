"""Faulty WFDB headers, signals and record paths: each gets a clear error naming the record (or a `SkippedRecord`
with that reason), never a numpy/scipy/wfdb trace or silently wrong numbers. Corrupt inputs are built at test
time from the bundled sample (see `fixtures/data_layouts.py`)."""

import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures.data_layouts import (
    build_mimic_layout,
    copy_cinc,
    copy_ptbxl,
    edit_lead,
    edit_signal_lines,
    read_rows,
    sample_rows,
    set_record_line,
    write_rows,
)

from cgdmer_hf import feature_extraction_cgdmer
from cgdmer_hf.data import LayoutError, RecordError, load_cinc, load_mimic_iv_ecg, load_ptbxl, read_cinc_metadata
from cgdmer_hf.data.common import generate_examples
from cgdmer_hf.feature_extraction_cgdmer import CGDMERFeatureExtractor, read_wfdb_record

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


@pytest.fixture(scope="module")
def fe():
    return CGDMERFeatureExtractor()


@pytest.fixture()
def a0002(tmp_path) -> Path:
    """A copy of the CPSC 2018 record A0002 (10 s at 500 Hz, `16+24` `.mat`)."""
    return copy_cinc(tmp_path / "cinc", ["A0002"]) / "A0002"


def _reasons(summary) -> dict[str, str]:
    return {s.record_id: s.reason for s in summary.skipped}


# ---------------------------------------------------------------------------------------------------------
# 3. Sampling rate in WFDB headers
# ---------------------------------------------------------------------------------------------------------
def test_header_without_a_rate_needs_the_callers_rate(fe, a0002):
    reference = fe(str(a0002))
    set_record_line(a0002, "A0002 12")  # no rate, no sample count: wfdb would read it at 250 Hz (20 s)
    with pytest.raises(ValueError, match=r"A0002 states no sampling rate \(wfdb would assume 250 Hz\)"):
        fe(str(a0002))
    with pytest.raises(ValueError, match="states no sampling rate"):
        read_wfdb_record(a0002)
    out = fe(str(a0002), sampling_rate=500)
    np.testing.assert_allclose(out["ecg_values"], reference["ecg_values"], atol=1e-6)
    np.testing.assert_array_equal(out["ecg_attention_mask"], reference["ecg_attention_mask"])
    signal, fs, _ = read_wfdb_record(a0002, sampling_rate=500)
    assert fs == 500.0 and signal.shape == (12, 5000)


@pytest.mark.parametrize(
    "line, message",
    [
        ("A0002 12 5000", r"states a sampling rate of 5000 Hz, outside \[50, 2000\] Hz.*misplaced sample count"),
        ("A0002 12 0 5000", r"states a sampling rate of 0 Hz, outside \[50, 2000\] Hz"),
        ("A0002 12 fast 5000", r"corrupt header .*invalid sampling rate field 'fast'"),
    ],
)
def test_implausible_header_rate_is_refused(fe, a0002, line, message):
    set_record_line(a0002, line)
    with pytest.raises(ValueError, match=message) as info:
        fe(str(a0002))
    assert str(a0002) in str(info.value)
    with pytest.raises(ValueError, match="conflicts with the .* Hz in the header|corrupt header"):
        fe(str(a0002), sampling_rate=500)  # the caller's rate does not override a stated one


def test_high_rate_arrays_are_accepted_but_header_rates_are_capped(fe, a0002):
    from scipy.signal import resample_poly

    signal = read_wfdb_record(a0002)[0]
    fast = resample_poly(signal, 10, 1, axis=1)  # the same 10 s at 5 kHz
    out = fe(fast, sampling_rate=5000)
    assert out["ecg_values"].shape == (1, 12, 1000) and out["ecg_attention_mask"].all()
    np.testing.assert_allclose(out["ecg_values"], fe(signal, sampling_rate=500)["ecg_values"], atol=0.05)
    set_record_line(a0002, "A0002 12 5000 5000")
    message = r"states a sampling rate of 5000 Hz, outside \[50, 2000\] Hz.*misplaced sample count\? A real recording"
    with pytest.raises(ValueError, match=message + r" .* as an array with sampling_rate"):
        fe(str(a0002))


def test_header_rate_faults_are_skipped_records(tmp_path):
    root = copy_cinc(tmp_path / "cinc", ["A0002", "A0003", "A0010", "A0025"])
    for name, line in (("A0003", "A0003 12"), ("A0010", "A0010 12 5000"), ("A0025", "A0025 12 0 5000")):
        set_record_line(root / name, line)
    dataset, summary = load_cinc(root, cache_dir=tmp_path / "cache", return_summary=True)
    assert dataset["record_id"][:] == ["A0002"]
    reasons = _reasons(summary)
    assert "states no sampling rate" in reasons["A0003"] and str(root / "A0003") in reasons["A0003"]
    assert "5000 Hz, outside" in reasons["A0010"]
    assert "0 Hz, outside" in reasons["A0025"] and "ZeroDivision" not in reasons["A0025"]


# ---------------------------------------------------------------------------------------------------------
# 4. Sample count of the header against the signal file
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["16+24", "16x1+24"])  # CPSC 2018 / Georgia, Ningbo, PTB-XL in CinC
def test_short_sample_count_in_mat_header_is_refused(a0002, fmt):
    reference = read_wfdb_record(a0002)[0]
    edit_signal_lines(a0002, lambda line: line.replace("16+24", fmt))
    np.testing.assert_array_equal(read_wfdb_record(a0002)[0], reference)  # both formats read the same
    set_record_line(a0002, "A0002 12 500 4000")
    with pytest.raises(ValueError, match=r"A0002.mat holds 60000 values, header says 12 signals x 4000 samples"):
        read_wfdb_record(a0002)


def test_short_sample_count_read_by_wfdb_is_refused(tmp_path, a0002):
    """Formats that `wfdb.rdrecord` reads (here 212) are checked against the file size too."""
    import wfdb

    signal, fs, names = read_wfdb_record(a0002)
    wfdb.wrsamp("r212", fs=fs, units=["mV"] * 12, sig_name=names, p_signal=signal.T, fmt=["212"] * 12,
                write_dir=str(tmp_path))  # fmt: skip
    assert read_wfdb_record(tmp_path / "r212")[0].shape == (12, 5000)
    set_record_line(tmp_path / "r212", "r212 12 500 4000")
    with pytest.raises(ValueError, match=r"r212.dat holds 5000 samples per signal, header says 4000"):
        read_wfdb_record(tmp_path / "r212")


def _pack_10bit(digital: np.ndarray, fmt: str) -> bytes:
    """Samples `(samples, signals)` in WFDB format 310 or 311, the last group of 3 zero-padded (as wfdb reads it)."""
    s = digital.reshape(-1).astype(np.int64) & 0x3FF
    s = np.concatenate([s, np.zeros(-len(s) % 3, dtype=np.int64)]).reshape(-1, 3)
    if fmt == "311":  # one little-endian 32-bit word: bits 0-9, 10-19, 20-29
        return (s[:, 0] | s[:, 1] << 10 | s[:, 2] << 20).astype("<u4").tobytes()
    words = [s[:, 0] << 1 | (s[:, 2] & 0x1F) << 11, s[:, 1] << 1 | (s[:, 2] >> 5) << 11]  # two 16-bit words
    return np.stack(words, 1).astype("<u2").tobytes()


@pytest.mark.parametrize("fmt", ["310", "311"])
def test_10bit_packed_records_with_a_padded_last_group_are_read(tmp_path, fmt):
    import wfdb

    for n in (1000, 1001, 1002):  # 2 signals: 2000, 2002, 2004 samples, the last group of 3 padded
        digital = np.random.default_rng(n).integers(-500, 500, size=(n, 2))
        record = tmp_path / f"r{fmt}_{n}"
        record.with_suffix(".dat").write_bytes(_pack_10bit(digital, fmt))
        signal_lines = "".join(f"{record.name}.dat {fmt} 200/mV 10 0 0 0 0 {lead}\n" for lead in ("I", "II"))
        record.with_suffix(".hea").write_text(f"{record.name} 2 500 {n}\n{signal_lines}")
        np.testing.assert_array_equal(wfdb.rdrecord(str(record), physical=False).d_signal, digital)
        signal, fs, names = read_wfdb_record(record)
        np.testing.assert_allclose(signal, digital.T / 200, rtol=1e-12)
        assert fs == 500.0 and names == ["I", "II"]
    set_record_line(record, f"{record.name} 2 500 999")
    with pytest.raises(ValueError, match=rf"r{fmt}_1002.dat holds 1002 samples per signal, header says 999"):
        read_wfdb_record(record)


def test_212_records_of_odd_length_are_read(tmp_path, a0002):
    """wfdb writes the last odd sample of format 212 in 2 bytes; other writers pad it to a full 3-byte group."""
    import wfdb

    lead = read_wfdb_record(a0002)[0][1, :1001, None]
    wfdb.wrsamp("r212", fs=500, units=["mV"], sig_name=["II"], p_signal=lead, fmt=["212"], adc_gain=[200.0],
                baseline=[0], write_dir=str(tmp_path))  # fmt: skip
    record, dat = tmp_path / "r212", tmp_path / "r212.dat"
    assert dat.stat().st_size == 1502
    np.testing.assert_allclose(read_wfdb_record(record)[0], lead.T, atol=0.5 / 200)
    set_record_line(record, "r212 1 500 1000")
    with pytest.raises(ValueError, match=r"r212.dat holds 1001 samples per signal, header says 1000"):
        read_wfdb_record(record)
    set_record_line(record, "r212 1 500 1001")
    dat.write_bytes(dat.read_bytes() + b"\0")  # the last group padded to 3 bytes
    np.testing.assert_allclose(read_wfdb_record(record)[0], lead.T, atol=0.5 / 200)


# ---------------------------------------------------------------------------------------------------------
# 5. Clipped, wrapped-around and out-of-range signals
# ---------------------------------------------------------------------------------------------------------
def _assert_lead_masked(fe, path, lead: int, caplog, **kwargs):
    reference = fe(str(path), **kwargs) if kwargs else None
    masked = CGDMERFeatureExtractor(on_bad_lead="mask")
    with caplog.at_level(logging.DEBUG, logger="cgdmer_hf.feature_extraction_cgdmer"):  # warned once per kind
        out = masked(str(path))
    expected = np.ones(12, dtype=int)
    expected[lead] = 0
    np.testing.assert_array_equal(out["lead_mask"][0], expected)
    np.testing.assert_array_equal(out["ecg_values"][0, lead], 0.0)
    assert f"lead {LEADS[lead]}" in caplog.text
    return out, reference


def test_lead_saturated_at_the_int16_limits(fe, a0002, caplog):
    reference = fe(str(a0002))
    edit_lead(a0002, 1, lambda d: np.clip(d * 100, -32767, 32767))
    with pytest.raises(ValueError, match=r"lead II has \d+ samples at the ±32767 limits of its 16-bit samples, "
                                         r"up to \d+ in a row \(clipped\).*on_bad_lead='mask'"):  # fmt: skip
        fe(str(a0002))
    out, _ = _assert_lead_masked(fe, a0002, 1, caplog)
    others = np.arange(12) != 1
    np.testing.assert_allclose(out["ecg_values"][0, others], reference["ecg_values"][0, others], atol=1e-6)


def test_lead_wrapped_around(fe, a0002, caplog):
    edit_lead(a0002, 7, lambda d: d * 100)  # V2 beyond ±32767, stored as int16: wraps around
    with pytest.raises(ValueError, match=r"lead V2 has .*jumps of more than 32768 .*\(wrapped around\)"):
        fe(str(a0002))
    _assert_lead_masked(fe, a0002, 7, caplog)



def test_wrap_around_that_never_touches_the_limits(fe):
    """A jump of more than half the range is found even when no sample reaches a limit (the quick per-row range
    check must pass such a row to the full check), and a jump of exactly half the range is not a wrap."""
    x = np.round(500 + 400 * np.sin(2 * np.pi * 1.2 * np.arange(5000) / 500 + np.arange(12)[:, None]))
    x = x.astype(np.int16)
    x[5, 3000:] = -16384
    x[5, :3000] = 16384  # one jump of 32768: half the range, not more
    assert fe(x, sampling_rate=500)["lead_mask"][0].tolist() == [1] * 12
    x[5, :3000] = 16385
    with pytest.raises(ValueError, match=r"lead aVF has 1 jumps of more than 32768 between consecutive samples"):
        fe(x, sampling_rate=500)

def test_clipping_in_int16_arrays_and_wfdb_records(fe, a0002):
    import wfdb

    edit_lead(a0002, 1, lambda d: np.clip(d * 100, -32767, 32767))
    with pytest.raises(ValueError, match=r"lead II has \d+ samples at the ±32767 limits .* in a row \(clipped\)"):
        fe(wfdb.rdrecord(str(a0002)))  # a wfdb.Record (physical samples, ADC fields in the header)
    digital = wfdb.rdrecord(str(a0002), physical=False).d_signal.T.astype(np.int16)
    with pytest.raises(ValueError, match=r"lead II has \d+ samples at the ±32767 limits .* in a row \(clipped\)"):
        fe(digital, sampling_rate=500)


def test_clipping_is_a_run_at_the_limits_not_scattered_samples(fe):
    t = np.arange(5000) / 500
    x = np.round(500 + 400 * np.sin(2 * np.pi * 1.2 * t + np.arange(12)[:, None])).astype(np.int16)
    x[1, ::100] = 32767  # 50 single samples at the limit (100 ms in all), none next to another
    assert fe(x, sampling_rate=500)["lead_mask"][0].tolist() == [1] * 12
    x[4, 2000:2004] = 32767  # 4 in a row: 8 ms, shorter than CLIP_MIN_S (10 ms)
    assert fe(x, sampling_rate=500)["lead_mask"][0].tolist() == [1] * 12
    x[4, 2004] = 32767  # 5 in a row: 10 ms at 500 Hz, a saturated amplifier
    with pytest.raises(ValueError, match=r"lead aVL has 5 samples at the ±32767 limits of its 16-bit samples, up to "
                                         r"5 in a row \(clipped\)"):  # fmt: skip
        fe(x, sampling_rate=500)


def test_masked_leads_are_warned_once_per_fault_kind(a0002, caplog, monkeypatch):
    monkeypatch.setattr(feature_extraction_cgdmer, "_WARNED_FAULT_KINDS", set())
    edit_lead(a0002, 1, lambda d: np.clip(d * 100, -32767, 32767))  # II clipped
    edit_lead(a0002, 7, lambda d: d * 100)  # V2 wrapped around
    masked = CGDMERFeatureExtractor(on_bad_lead="mask")
    gappy = read_wfdb_record(a0002)[0]
    gappy[3, 1000:1500] = np.nan
    with caplog.at_level(logging.DEBUG, logger="cgdmer_hf.feature_extraction_cgdmer"):
        for _ in range(3):
            assert masked(str(a0002))["lead_mask"][0].tolist() == [1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1]
        masked(gappy, sampling_rate=500)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "lead II has" in warnings[0] and "lead aVR has a run of 500 NaN" in warnings[1]
    assert "further leads masked for ADC faults are logged at DEBUG level" in warnings[0]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debug) == 5 and sum("lead V2" in m for m in debug) == 3


def test_record_scaled_to_its_own_range_is_not_clipped(fe, tmp_path, a0002):
    """`wfdb.wrsamp` without `adc_gain` puts every lead's extremes on the ±32767 limits: not clipping."""
    import wfdb

    signal, fs, names = read_wfdb_record(a0002)
    wfdb.wrsamp("scaled", fs=fs, units=["mV"] * 12, sig_name=names, p_signal=signal.T, fmt=["16"] * 12,
                write_dir=str(tmp_path))  # fmt: skip
    digital = wfdb.rdrecord(str(tmp_path / "scaled"), physical=False).d_signal
    assert (digital.min(0) == -32767).all()
    np.testing.assert_allclose(fe(str(tmp_path / "scaled"))["ecg_values"], fe(str(a0002))["ecg_values"], atol=2e-3)


def test_overflowing_lead_is_flagged_not_zeroed(fe, a0002, caplog):
    signal = read_wfdb_record(a0002)[0]
    signal[4] *= 1e300
    with pytest.raises(ValueError, match=r"lead aVL reaches .*e\+\d+, beyond ±1e\+10 \(overflow"):
        fe(signal, sampling_rate=500)
    with caplog.at_level(logging.DEBUG, logger="cgdmer_hf.feature_extraction_cgdmer"):
        out = CGDMERFeatureExtractor(on_bad_lead="mask", normalization="none")(signal, sampling_rate=500)
    assert out["lead_mask"][0].tolist() == [1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1] and "lead aVL" in caplog.text
    assert np.isfinite(out["ecg_values"]).all()


def test_lead_that_normalisation_zeroes_is_masked(a0002):
    signal = read_wfdb_record(a0002)[0]
    signal[3] = 0.0
    signal[3, ::500] = 1.0  # a spike a second: not flat, but its IQR is 0
    out = CGDMERFeatureExtractor(normalization="robust", do_bandpass=False)(signal, sampling_rate=500)
    np.testing.assert_array_equal(out["ecg_values"][0, 3], 0.0)
    assert out["lead_mask"][0, 3] == 0 and out["lead_mask"][0].sum() == 11


# ---------------------------------------------------------------------------------------------------------
# 6. Resampling factors and output length
# ---------------------------------------------------------------------------------------------------------
def test_tiny_sampling_rate_is_refused_before_allocating(fe):
    x = np.zeros((12, 5000))
    with pytest.raises(ValueError, match=r"sampling_rate=0.001 Hz is below 50 Hz, the lowest ECG sampling rate "
                                         r"accepted \(MIN_SAMPLING_RATE\)"):  # fmt: skip
        fe(x, sampling_rate=1e-3)
    with pytest.raises(ValueError, match=r"from 0.001 Hz to 100 Hz: the rate ratio 1e\+05 is beyond the polyphase "
                                         r"factor limit of 1000"):  # fmt: skip
        fe.resample(x, 1e-3)


def test_resampled_length_is_bounded(fe, monkeypatch):
    monkeypatch.setattr(feature_extraction_cgdmer, "MAX_RESAMPLED_SAMPLES", 10_000)
    x = np.random.default_rng(0).normal(size=(12, 60_000))  # 120 s at 500 Hz -> 12,000 samples at 100 Hz
    with pytest.raises(ValueError, match=r"ECG of 60000 samples at 500 Hz .* would become 12000 samples per lead at "
                                         r"100 Hz .*GiB.*MAX_RESAMPLED_SAMPLES=10000"):  # fmt: skip
        fe(x, sampling_rate=500)
    with pytest.raises(ValueError, match="MAX_RESAMPLED_SAMPLES"):
        fe.resample(x, 500)
    assert fe(x[:, :40_000], sampling_rate=500)["ecg_values"].shape == (1, 12, 1000)


# ---------------------------------------------------------------------------------------------------------
# 9. Record paths confined to the data folder
# ---------------------------------------------------------------------------------------------------------
def test_cinc_signal_files_outside_the_folder_are_skipped(fe, tmp_path):
    root = copy_cinc(tmp_path / "cinc", ["A0002", "A0003", "A0010", "A0025", "A0044"])
    outside = tmp_path / "other"
    outside.mkdir()
    for name in ("A0003", "A0010", "A0025", "A0044"):
        shutil.copy(root / f"{name}.mat", outside / f"{name}.mat")
        shutil.copy(root / f"{name}.hea", outside / f"{name}.hea")
    edit_signal_lines(root / "A0003", lambda line: line.replace("A0003.mat", "../other/A0003.mat"))
    edit_signal_lines(root / "A0010", lambda line: line.replace("A0010.mat", str(outside / "A0010.mat")))
    (root / "A0025.mat").unlink()
    os.symlink(outside / "A0025.mat", root / "A0025.mat")  # a symlinked signal file
    (root / "A0044.hea").unlink()
    os.symlink(outside / "A0044.hea", root / "A0044.hea")  # a symlinked header
    spec = next(r for r in read_cinc_metadata(root, drop_unlabeled=True)[0] if r["record_id"] == "A0044")
    assert spec["codes"] == [] and f"A0044.hea resolves to {outside / 'A0044.hea'}, outside" in spec["error"]
    for drop_unlabeled in (False, True):  # a header not read has no labels: still skipped, with its reason
        dataset, summary = load_cinc(root, drop_unlabeled=drop_unlabeled, cache_dir=tmp_path / f"c{drop_unlabeled}",
                                     return_summary=True)  # fmt: skip
        assert dataset["record_id"][:] == ["A0002"] and summary.records == 1
        reasons = _reasons(summary)
        assert set(reasons) == {"A0003", "A0010", "A0025", "A0044"}
        for name, reason in reasons.items():
            assert f"outside the data folder {root}" in reason and str(outside / name) in reason, reason
    with pytest.raises(RecordError, match="A0003.*outside the data folder"):
        load_cinc(root, cache_dir=tmp_path / "cache2", on_error="raise")
    with pytest.raises(ValueError, match=r"signal file '../other/A0003.mat' named in .*A0003.hea is not a plain "
                                         r"file name"):  # fmt: skip
        fe(str(root / "A0003"))


def test_confinement_is_checked_where_the_header_is_parsed(fe, tmp_path, monkeypatch):
    root = copy_cinc(tmp_path / "cinc", ["A0002", "A0025"])
    (tmp_path / "other").mkdir()
    shutil.move(root / "A0025.mat", tmp_path / "other" / "A0025.mat")
    os.symlink(tmp_path / "other" / "A0025.mat", root / "A0025.mat")
    assert fe(str(root / "A0025"))["lead_mask"].all()  # without data_root, links are followed
    message = f"record file {root / 'A0025.mat'} resolves to {tmp_path / 'other' / 'A0025.mat'}, outside the data"
    with pytest.raises(ValueError, match=re.escape(message)):
        fe(str(root / "A0025"), data_root=root)
    parsed = []
    header_lines = feature_extraction_cgdmer._header_lines
    monkeypatch.setattr(feature_extraction_cgdmer, "_header_lines", lambda b: parsed.append(b) or header_lines(b))
    rows = list(generate_examples([read_cinc_metadata(root)[0]], fe))
    assert [row["record_id"] for row in rows] == ["A0002"]
    assert parsed == [str(root / "A0002"), str(root / "A0025")]  # each header parsed once


def test_ptbxl_paths_outside_the_folder_are_skipped(tmp_path):
    ids = sorted(int(float(r["ecg_id"])) for r in sample_rows())[:3]
    root = copy_ptbxl(tmp_path / "data" / "ptbxl", ids)
    rows = read_rows(root / "ptbxl_database.csv")
    outside = tmp_path / "outside"
    outside.mkdir()
    for ext in (".hea", ".dat"):  # a readable record outside the folder
        shutil.copy(root / (rows[1]["filename_lr"] + ext), outside / f"x{ext}")
    rows[1]["filename_lr"] = "../../outside/x"
    write_rows(root / "ptbxl_database.csv", rows, rows[0].keys())
    dat = root / (rows[2]["filename_lr"] + ".dat")
    shutil.move(dat, outside / dat.name)
    os.symlink(outside / dat.name, dat)  # a symlinked signal file
    dataset, summary = load_ptbxl(root, drop_duplicates=False, cache_dir=tmp_path / "cache", return_summary=True)
    bad = {rows[1]["ecg_id"], rows[2]["ecg_id"]}
    assert dataset["record_id"][:] == [rows[0]["ecg_id"]]
    reasons = _reasons(summary)
    assert set(reasons) == bad and all(f"outside the data folder {root}" in r for r in reasons.values())
    assert "../../outside/x.hea" in reasons[rows[1]["ecg_id"]]
    with pytest.raises(RecordError, match=rf"record {rows[1]['ecg_id']} .*outside the data folder"):
        load_ptbxl(root, drop_duplicates=False, cache_dir=tmp_path / "cache2", on_error="raise")


def test_ptbxl_index_folder_outside_the_folder_is_refused(tmp_path):
    copy_ptbxl(tmp_path / "elsewhere", sorted(int(float(r["ecg_id"])) for r in sample_rows())[:1])
    (tmp_path / "data").mkdir()
    write_rows(tmp_path / "data" / "ptbxl_index.csv", [{"ecg_id": "1", "folder": "../elsewhere"}], ["ecg_id", "folder"])
    with pytest.raises(LayoutError, match=r"names the folder '../elsewhere', which resolves outside"):
        load_ptbxl(tmp_path / "data")


def test_mimic_path_outside_the_folder_is_skipped(tmp_path):
    root = build_mimic_layout(tmp_path / "mimic", n_records=2)
    rows = read_rows(root / "record_list.csv")
    shutil.copytree(root / Path(rows[1]["path"]).parent, tmp_path / "outside")
    rows[1]["path"] = f"../outside/{Path(rows[1]['path']).name}"
    write_rows(root / "record_list.csv", rows, rows[0].keys())
    dataset, summary = load_mimic_iv_ecg(root, streaming=False, cache_dir=tmp_path / "cache", return_summary=True)
    assert dataset["record_id"][:] == [rows[0]["study_id"]]
    assert "outside the data folder" in _reasons(summary)[rows[1]["study_id"]]
