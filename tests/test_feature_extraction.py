"""CGDMERFeatureExtractor on the bundled real sample: shapes, resampling, lead handling, crop/pad, NaN and
flat leads, bad input, save/load round trips."""

import json

import numpy as np
import pytest
import torch
import wfdb
from transformers import AutoFeatureExtractor

import cgdmer_hf  # noqa: F401  (registers the Auto classes)
from cgdmer_hf import STANDARD_LEADS, CGDMERFeatureExtractor, feature_extraction_cgdmer
from cgdmer_hf.feature_extraction_cgdmer import canonical_lead_name, read_wfdb_record
from cgdmer_hf.samples import (
    load_cpsc_index,
    load_sample_index,
    sample_cpsc_record_path,
    sample_data_dir,
    sample_record_path,
)


@pytest.fixture(scope="module")
def fe():
    return CGDMERFeatureExtractor()


@pytest.fixture(scope="module")
def index():
    return load_sample_index()


@pytest.fixture(scope="module")
def hr_ids(index):
    return [r["ecg_id"] for r in index if r["filename_hr"]]


@pytest.fixture(scope="module")
def record500(hr_ids):
    """(signal (12, 5000) mV, lead names) of one bundled 500 Hz PTB-XL record."""
    sig, fs, names = read_wfdb_record(sample_record_path(hr_ids[0], 500))
    assert fs == 500
    return sig, names


# ---------------------------------------------------------------------------------------------------------
# The bundled sample
# ---------------------------------------------------------------------------------------------------------
def test_sample_covers_folds_superclasses_and_rates(index):
    assert 45 <= len(index) <= 55
    folds = [r["strat_fold"] for r in index]
    assert folds.count(9) >= 10 and folds.count(10) >= 10 and set(range(1, 11)) <= set(folds)
    for group in ({9}, {10}, set(range(1, 9))):
        rows = [r for r in index if r["strat_fold"] in group]
        assert all(any(r[c] for r in rows) for c in ("NORM", "MI", "STTC", "CD", "HYP"))
    assert {"de", "en", "sv"} <= {r["report_lang"] for r in index}
    assert all(r["report"].strip() and not r["dropped_in_v103"] for r in index)
    for r in index:
        assert (sample_data_dir() / (r["filename_lr"] + ".dat")).exists()
        if r["filename_hr"]:
            assert (sample_data_dir() / (r["filename_hr"] + ".dat")).exists()
    assert (sample_data_dir() / "scp_statements.csv").exists() and (sample_data_dir() / "README.md").exists()
    size = sum(p.stat().st_size for p in sample_data_dir().rglob("*") if p.is_file())
    assert size < 6.5e6


def test_sample_helpers_reject_unknown_records(index):
    with pytest.raises(ValueError, match="not in the bundled sample"):
        sample_record_path(999999)
    lr_only = next(r["ecg_id"] for r in index if not r["filename_hr"])
    with pytest.raises(ValueError, match="100 Hz only"):
        sample_record_path(lr_only, 500)
    with pytest.raises(ValueError, match="not in the bundled sample"):
        sample_cpsc_record_path("A9999")


@pytest.mark.parametrize("kind", ["lr", "hr", "cpsc"])
def test_fast_reader_matches_wfdb(kind, index, hr_ids):
    path = {
        "lr": sample_record_path(index[0]["ecg_id"], 100),
        "hr": sample_record_path(hr_ids[0], 500),
        "cpsc": sample_cpsc_record_path("A0002"),
    }[kind]
    sig, fs, names = read_wfdb_record(path)
    record = wfdb.rdrecord(path)
    np.testing.assert_allclose(sig, record.p_signal.T, atol=1e-12)
    assert fs == record.fs and names == record.sig_name


# ---------------------------------------------------------------------------------------------------------
# Output and resampling
# ---------------------------------------------------------------------------------------------------------
def test_output_keys_shapes_dtypes(fe, index):
    out = fe([sample_record_path(r["ecg_id"]) for r in index[:3]], return_tensors="pt")
    assert set(out) == {"ecg_values", "lead_mask", "ecg_attention_mask"}
    assert out["ecg_values"].shape == (3, 12, 1000) and out["ecg_values"].dtype == torch.float32
    assert out["lead_mask"].shape == (3, 12) and out["lead_mask"].dtype == torch.int64
    assert out["ecg_attention_mask"].shape == (3, 1000) and out["ecg_attention_mask"].dtype == torch.int64
    assert bool(out["lead_mask"].all()) and bool(out["ecg_attention_mask"].all())
    x = out["ecg_values"].double()
    torch.testing.assert_close(x.mean(-1), torch.zeros(3, 12, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(-1, unbiased=False), torch.ones(3, 12, dtype=torch.float64), atol=1e-4, rtol=0)


def test_500hz_and_100hz_files_agree(fe, index, hr_ids):
    """Each bundled record at 500 Hz and at its official 100 Hz version gives Pearson r >= 0.95 per lead.
    Some official 100 Hz files carry an edge artefact of PTB's own downsampling in their last samples (the
    raw files disagree there by up to ~1 mV), so the whole 10 s is compared where the raw files agree at the
    edges, and the signal without its first and last 0.5 s everywhere."""
    whole_compared = 0
    for ecg_id in hr_ids:
        hr, lr = sample_record_path(ecg_id, 500), sample_record_path(ecg_id, 100)
        out = fe([hr, lr])["ecg_values"].astype(np.float64)
        inner = [np.corrcoef(out[0, k, 50:-50], out[1, k, 50:-50])[0, 1] for k in range(12)]
        assert min(inner) >= 0.95, (ecg_id, inner)
        diff = np.abs(fe.resample(read_wfdb_record(hr)[0], 500) - read_wfdb_record(lr)[0])
        if max(diff[:, :50].max(), diff[:, -50:].max()) <= 1.5 * diff[:, 50:-50].max():  # no edge artefact
            whole = [np.corrcoef(out[0, k], out[1, k])[0, 1] for k in range(12)]
            assert min(whole) >= 0.95, (ecg_id, whole)
            whole_compared += 1
    assert whole_compared >= len(hr_ids) // 3


@pytest.mark.parametrize("rate", [250, 257, 360, 1000])
def test_resampling_keeps_frequency_and_removes_drift_and_powerline(rate):
    """A 10 Hz component survives any input rate; 0.05 Hz baseline wander and 50 Hz mains are removed."""
    t = np.arange(int(12 * rate)) / rate
    beat = np.sin(2 * np.pi * 10 * t)
    x = np.tile(beat + 3 * np.sin(2 * np.pi * 0.05 * t) + 0.5 * np.sin(2 * np.pi * 50 * t), (12, 1))
    out = CGDMERFeatureExtractor(normalization="none")(x, sampling_rate=rate)["ecg_values"][0, 0]
    expected = np.sin(2 * np.pi * 10 * (np.arange(1000) / 100 + 1.0))  # centre crop starts at 1 s
    assert np.corrcoef(out[100:-100], expected[100:-100])[0, 1] > 0.99
    assert abs(np.std(out[100:-100]) - np.std(expected)) < 0.05


def test_array_torch_wfdb_record_and_path_inputs_agree(fe, hr_ids):
    path = sample_record_path(hr_ids[1], 500)
    record = wfdb.rdrecord(path)
    from_path = fe(path)["ecg_values"]
    np.testing.assert_array_equal(fe(record)["ecg_values"], from_path)
    array = record.p_signal.T
    np.testing.assert_allclose(fe(array, sampling_rate=500, lead_names=record.sig_name)["ecg_values"], from_path)
    np.testing.assert_allclose(fe(torch.from_numpy(array), sampling_rate=500)["ecg_values"], from_path)
    np.testing.assert_allclose(fe(array.tolist(), sampling_rate=500)["ecg_values"], from_path)
    batched = fe(np.stack([array, array]), sampling_rate=500)["ecg_values"]
    np.testing.assert_allclose(batched, np.concatenate([from_path, from_path]))


def test_mixed_batch_of_different_lengths_and_rates(fe, index):
    cpsc = sample_cpsc_record_path("A0113")
    lr = sample_record_path(index[0]["ecg_id"])
    short = read_wfdb_record(lr)[0][:, :600]
    out = fe([cpsc, lr, short], sampling_rate=[None, None, 100])
    assert out["ecg_values"].shape == (3, 12, 1000)
    assert out["ecg_attention_mask"].sum(-1).tolist() == [1000, 1000, 600]


# ---------------------------------------------------------------------------------------------------------
# Leads
# ---------------------------------------------------------------------------------------------------------
def test_shuffled_leads_with_names_give_identical_output(fe, record500):
    sig, names = record500
    perm = np.random.default_rng(0).permutation(12)
    a = fe(sig, sampling_rate=500, lead_names=names)
    b = fe(sig[perm], sampling_rate=500, lead_names=[names[i] for i in perm])
    np.testing.assert_array_equal(a["ecg_values"], b["ecg_values"])
    np.testing.assert_array_equal(a["lead_mask"], b["lead_mask"])


def test_lead_aliases(fe, record500):
    sig, _ = record500
    aliases = ["lead I", "MLII", "D3", "AVR", "avl", "a_VF", "C1", "v2", "V3 ", "Lead_V4", "c5", "V6"]
    assert [canonical_lead_name(n) for n in aliases] == STANDARD_LEADS
    assert canonical_lead_name("-aVR") is None
    np.testing.assert_array_equal(
        fe(sig, sampling_rate=500, lead_names=aliases)["ecg_values"], fe(sig, sampling_rate=500)["ecg_values"]
    )


def test_lead_subset_sets_lead_mask(fe, record500):
    sig, names = record500
    keep = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    rows = [names.index(n.upper()) for n in keep]
    full = fe(sig, sampling_rate=500)
    part = fe(sig[rows], sampling_rate=500, lead_names=keep)
    expected = np.array([[int(lead in keep) for lead in STANDARD_LEADS]])
    np.testing.assert_array_equal(part["lead_mask"], expected)
    present = expected[0].astype(bool)
    np.testing.assert_array_equal(part["ecg_values"][0, ~present], 0.0)
    np.testing.assert_allclose(part["ecg_values"][0, present], full["ecg_values"][0, present])


def test_flat_lead_is_zero_and_masked_without_nan(fe, record500):
    sig, _ = record500
    sig = sig.copy()
    sig[4] = 0.37  # a constant lead: std 0
    out = fe(sig, sampling_rate=500)
    assert np.isfinite(out["ecg_values"]).all()
    np.testing.assert_array_equal(out["ecg_values"][0, 4], 0.0)
    assert out["lead_mask"][0].tolist() == [1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1]
    kept = CGDMERFeatureExtractor(mask_flat_leads=False)(sig, sampling_rate=500)
    assert kept["lead_mask"][0, 4] == 1 and np.isfinite(kept["ecg_values"]).all()


# ---------------------------------------------------------------------------------------------------------
# Crop and pad (CPSC2018: 60 s and 10 s records at 500 Hz)
# ---------------------------------------------------------------------------------------------------------
def test_60s_record_is_cropped(fe):
    long = next(r for r in load_cpsc_index() if r["duration_s"] >= 55)
    path = sample_cpsc_record_path(long["record"])
    center = fe(path)
    assert center["ecg_values"].shape == (1, 12, 1000) and center["ecg_attention_mask"].all()
    start = fe(path, crop="start")["ecg_values"]
    assert not np.allclose(start, center["ecg_values"])
    r1 = fe(path, crop="random", rng=1)["ecg_values"]
    np.testing.assert_array_equal(r1, fe(path, crop="random", rng=1)["ecg_values"])
    assert not np.allclose(r1, fe(path, crop="random", rng=2)["ecg_values"])
    # the centre crop is the middle 10 s of the filtered record
    sig = read_wfdb_record(path)[0]
    none = CGDMERFeatureExtractor(normalization="none")
    whole = none.bandpass(none.resample(sig, 500))
    mid = whole[:, (whole.shape[1] - 1000) // 2:][:, :1000]
    np.testing.assert_allclose(none(path)["ecg_values"][0], mid, atol=1e-5)


def test_6s_record_is_padded_and_masked(fe, tmp_path):
    """No bundled CPSC record is shorter than 10 s: the first 6 s of a real one, written as a WFDB record."""
    sig, fs, names = read_wfdb_record(sample_cpsc_record_path("A0002"))
    six = sig[:, : int(6 * fs)]
    wfdb.wrsamp("short6", fs=fs, units=["mV"] * 12, sig_name=names, p_signal=six.T, fmt=["16"] * 12,
                write_dir=str(tmp_path))
    out = fe(str(tmp_path / "short6"))
    mask = out["ecg_attention_mask"][0]
    assert mask[:600].all() and not mask[600:].any()
    x = out["ecg_values"][0]
    np.testing.assert_array_equal(x[:, 600:], 0.0)
    np.testing.assert_allclose(x[:, :600].mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(x[:, :600].std(-1), 1.0, atol=1e-4)
    np.testing.assert_allclose(fe(six, sampling_rate=fs, lead_names=names)["ecg_values"], out["ecg_values"],
                               atol=2e-3)


# ---------------------------------------------------------------------------------------------------------
# NaN handling
# ---------------------------------------------------------------------------------------------------------
def test_short_nan_gap_is_interpolated(fe, record500):
    sig, _ = record500
    gappy = sig.copy()
    gappy[2, 2000:2030] = np.nan  # 60 ms
    gappy[7, 100:103] = np.inf
    out = fe(gappy, sampling_rate=500)["ecg_values"]
    ref = fe(sig, sampling_rate=500)["ecg_values"]
    assert np.isfinite(out).all()
    assert np.corrcoef(out[0, 2], ref[0, 2])[0, 1] > 0.99


def test_long_nan_gap_raises_naming_the_lead_or_is_masked(fe, record500):
    sig, _ = record500
    gappy = sig.copy()
    gappy[4, 1000:1500] = np.nan  # 1 s in aVL
    with pytest.raises(ValueError, match="lead aVL has a run of 500 NaN"):
        fe(gappy, sampling_rate=500)
    out = CGDMERFeatureExtractor(on_bad_lead="mask")(gappy, sampling_rate=500)
    assert out["lead_mask"][0, 4] == 0 and np.isfinite(out["ecg_values"]).all()
    gappy[9] = np.nan
    with pytest.raises(ValueError, match="lead V4 is entirely NaN"):
        CGDMERFeatureExtractor(max_nan_gap=2.0)(gappy, sampling_rate=500)


# ---------------------------------------------------------------------------------------------------------
# Normalisation options
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["zscore", "robust", "minmax", "none"])
def test_normalization_options(mode, record500):
    sig, _ = record500
    x = CGDMERFeatureExtractor(normalization=mode)(sig, sampling_rate=500)["ecg_values"][0].astype(np.float64)
    if mode == "zscore":
        np.testing.assert_allclose(x.std(-1), 1.0, atol=1e-4)
    elif mode == "robust":
        np.testing.assert_allclose(np.median(x, -1), 0.0, atol=1e-4)
        q25, q75 = np.percentile(x, [25, 75], axis=-1)
        np.testing.assert_allclose(q75 - q25, 1.349, atol=1e-3)
    elif mode == "minmax":
        np.testing.assert_allclose(x.max(-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(x.min(-1), -1.0, atol=1e-5)
    else:  # millivolts: a QRS reaches tenths of a mV to a few mV
        assert 0.2 < np.abs(x).max() < 10


# ---------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, kwargs, error, message",
    [
        (lambda s: s, {}, ValueError, "sampling_rate is required"),
        (lambda s: s, {"sampling_rate": "fast"}, ValueError, "sampling_rate must be a number"),
        (lambda s: s, {"sampling_rate": -5}, ValueError, "positive"),
        (lambda s: s.astype(str), {"sampling_rate": 500}, ValueError, "real numbers"),
        (lambda s: s[0], {"sampling_rate": 500}, ValueError, "got shape \\(5000,\\)"),
        (lambda s: s[None, None], {"sampling_rate": 500}, ValueError, "got shape \\(1, 1, 12, 5000\\)"),
        (lambda s: s[:, :0], {"sampling_rate": 500}, ValueError, "zero length"),
        (lambda s: s[:, :100], {"sampling_rate": 500}, ValueError, "shorter than one patch"),
        (lambda s: s.T, {"sampling_rate": 500}, ValueError, "pass ecg.T"),
        (lambda s: s[:8], {"sampling_rate": 500}, ValueError, "no lead_names were given"),
        (lambda s: s[:3], {"sampling_rate": 500, "lead_names": ["I", "II", "X7"]}, ValueError,
         "Unknown lead names \\['X7'\\]"),
        (lambda s: s[:3], {"sampling_rate": 500, "lead_names": ["I", "aVL", "AVL"]}, ValueError,
         "Duplicated leads: 'aVL' and 'AVL' are both aVL"),
        (lambda s: s[:3], {"sampling_rate": 500, "lead_names": ["I", "II"]}, ValueError, "2 lead_names"),
        (lambda s: {"x": s}, {"sampling_rate": 500}, ValueError, "Unsupported ECG input"),
        (lambda s: s, {"sampling_rate": 500, "crop": "middle"}, ValueError, "crop must be one of"),
    ],
)
def test_bad_array_input(fe, record500, make, kwargs, error, message):
    sig, _ = record500
    with pytest.raises(error, match=message):
        fe(make(sig), **kwargs)


def test_bad_wfdb_input(fe, tmp_path, index):
    with pytest.raises(FileNotFoundError, match="no header file .*nope.hea"):
        fe(str(tmp_path / "nope"))
    (tmp_path / "broken.hea").write_text("broken 12 five hundred\ngarbage\n")
    with pytest.raises(ValueError, match="corrupt header"):
        fe(str(tmp_path / "broken"))
    (tmp_path / "nodat.hea").write_text("nodat 1 100 1000\nnodat.dat 16 1000/mV 16 0 0 0 0 I\n")
    with pytest.raises(FileNotFoundError, match="signal file missing"):
        fe(str(tmp_path / "nodat"))
    path = sample_record_path(index[0]["ecg_id"])
    with pytest.raises(ValueError, match="conflicts with the 100.0 Hz in the header"):
        fe(path, sampling_rate=500)
    with pytest.raises(ValueError, match="ECG 1 of the batch"):
        fe([path, str(tmp_path / "broken")])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"bandpass_high": 50.0}, "below the Nyquist"),
        ({"normalization": "l2"}, "normalization must be one of"),
        ({"lead_names": ["I", "foo"], "feature_size": 2}, "standard lead names"),
        ({"duration": 0.1}, "shorter than one patch"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CGDMERFeatureExtractor(**kwargs)


# ---------------------------------------------------------------------------------------------------------
# Save / load
# ---------------------------------------------------------------------------------------------------------
def test_save_pretrained_round_trip(tmp_path, index):
    fe = CGDMERFeatureExtractor(normalization="robust", notch_frequency=50.0, bandpass_high=35.0)
    fe.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert config["normalization"] == "robust" and config["notch_frequency"] == 50.0
    assert config["auto_map"]["AutoFeatureExtractor"] == "feature_extraction_cgdmer.CGDMERFeatureExtractor"
    assert (tmp_path / "feature_extraction_cgdmer.py").exists()
    for loaded in (CGDMERFeatureExtractor.from_pretrained(tmp_path), AutoFeatureExtractor.from_pretrained(tmp_path)):
        assert isinstance(loaded, CGDMERFeatureExtractor)
        assert loaded.to_dict() == fe.to_dict()
        path = sample_record_path(index[0]["ecg_id"])
        np.testing.assert_array_equal(loaded(path)["ecg_values"], fe(path)["ecg_values"])


@pytest.mark.parametrize("fmt, units", [("212", "mV"), ("16", "uV"), ("24", "mV")])
def test_other_wfdb_layouts_are_read_by_wfdb(fmt, units, record500, tmp_path):
    """Formats other than plain 16 go through wfdb; microvolt headers are converted to millivolts."""
    sig, names = record500
    scale = 1000.0 if units == "uV" else 1.0
    wfdb.wrsamp("rec", fs=500, units=[units] * 12, sig_name=names, p_signal=sig.T * scale, fmt=[fmt] * 12,
                adc_gain=[200.0 / scale] * 12 if fmt != "24" else None, baseline=[0] * 12 if fmt != "24" else None,
                write_dir=str(tmp_path))
    read, fs, read_names = read_wfdb_record(tmp_path / "rec")
    assert fs == 500 and read_names == names
    np.testing.assert_allclose(read, sig, atol=0.01)
    np.testing.assert_allclose(read, wfdb.rdrecord(str(tmp_path / "rec")).p_signal.T / scale, atol=1e-9)



@pytest.mark.parametrize("down", [2, 5, 10])
@pytest.mark.parametrize("n", [2, 7, 101, 4999, 5000, 5003])
def test_fast_decimation_equals_resample_poly(down, n):
    """The FFT polyphase path (integer downsampling) gives scipy's `resample_poly` with the same FIR and "line"
    extension, to float64 rounding, for lengths that are and are not multiples of the factor."""
    from scipy.signal import resample_poly

    x = np.random.default_rng(n).normal(size=(3, n)).cumsum(axis=1) + 5.0
    fe = CGDMERFeatureExtractor(sampling_rate=100)
    fast = fe.resample(x, 100 * down)
    reference = resample_poly(x, 1, down, axis=-1, window=feature_extraction_cgdmer._polyphase_fir(1, down),
                              padtype="line")  # fmt: skip
    assert fast.shape == reference.shape == (3, -(-n // down))
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-12 * np.abs(reference).max())
    assert np.array_equal(fe.resample(np.zeros((2, n)), 100 * down), np.zeros((2, -(-n // down))))


@pytest.mark.parametrize("n", [1, 2, 50, 101, 1000])
def test_zero_phase_filter_equals_sosfiltfilt(n):
    """The band-pass with its initial state designed once is exactly scipy's `sosfiltfilt` (even padding, 1 s or
    as much as the signal allows)."""
    from scipy.signal import sosfiltfilt

    fe = CGDMERFeatureExtractor()
    x = np.random.default_rng(n).normal(size=(12, n)).cumsum(axis=1)
    filt = feature_extraction_cgdmer._bandpass_sos(100.0, fe.bandpass_low, fe.bandpass_high, fe.filter_order)
    reference = sosfiltfilt(filt.sos, x, axis=-1, padtype="even", padlen=max(min(100, n - 1), 0))
    assert np.array_equal(fe.bandpass(x), reference)


def test_scale_at_rounding_level_is_a_zero_scale():
    """A lead whose robust scale is float64 rounding of its spikes (IQR ~1e-17) is zeroed and masked, not divided
    into values of ~1e16."""
    x = np.random.default_rng(0).normal(size=(12, 1000))
    x[3] = 1e-17 * np.random.default_rng(1).normal(size=1000)
    x[3, ::100] = 1.0
    out = CGDMERFeatureExtractor(normalization="robust", do_bandpass=False)(x, sampling_rate=100)
    assert np.array_equal(out["ecg_values"][0, 3], np.zeros(1000))
    assert out["lead_mask"][0].tolist() == [1, 1, 1, 0] + [1] * 8
    assert np.abs(out["ecg_values"][0]).max() < 10

def test_powerline_notch_at_the_input_rate():
    """At a 250 Hz model rate 50 Hz mains survives the 100 Hz low-pass; `notch_frequency=50` removes it."""
    t = np.arange(5000) / 500
    x = np.tile(np.sin(2 * np.pi * 10 * t) + 0.5 * np.sin(2 * np.pi * 50 * t), (12, 1))
    settings = dict(sampling_rate=250, duration=8.0, bandpass_high=100.0, normalization="none")

    def mains_amplitude(fe):
        y = fe(x, sampling_rate=500)["ecg_values"][0, 0, 250:-250].astype(np.float64)
        spectrum = np.abs(np.fft.rfft(y)) / len(y) * 2
        return spectrum[np.argmin(np.abs(np.fft.rfftfreq(len(y), 1 / 250) - 50))]

    assert mains_amplitude(CGDMERFeatureExtractor(**settings)) > 0.4
    assert mains_amplitude(CGDMERFeatureExtractor(notch_frequency=50.0, **settings)) < 0.02


def test_header_naming_fewer_signals_than_the_file_holds_is_rejected(fe, tmp_path, index):
    """A header that lists 11 of the 12 signals must not be read as scrambled leads."""
    base = sample_record_path(index[0]["ecg_id"])
    lines = open(base + ".hea").read().splitlines()
    fields = lines[0].split()
    fields[1] = "11"
    lines = [" ".join(fields)] + lines[1:12] + lines[13:]
    name = base.rsplit("/", 1)[1]
    (tmp_path / f"{name}.hea").write_text("\n".join(lines) + "\n")
    (tmp_path / f"{name}.dat").write_bytes(open(base + ".dat", "rb").read())
    with pytest.raises(ValueError, match="holds 12000 values, header says 11 signals x 1000 samples"):
        fe(str(tmp_path / name))
