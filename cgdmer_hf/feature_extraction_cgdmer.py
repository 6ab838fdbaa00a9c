"""CG-DMER ECG feature extractor: everything between a raw 12-lead ECG (array, `wfdb.Record` or WFDB file) and
the model's `ecg_values`, `lead_mask` and `ecg_attention_mask`.

Pipeline per record (every setting is an init argument, saved in `preprocessor_config.json`):
read -> reorder leads by name -> flag bad leads (clipped, wrapped around, overflowing) -> repair short NaN gaps ->
optional powerline notch (input rate) -> polyphase resampling to `sampling_rate` -> zero-phase band-pass -> crop or
pad to `duration` -> per-lead normalisation.
"""

from __future__ import annotations

import logging
import math
import os
import re
from contextlib import contextmanager
from fractions import Fraction
from functools import lru_cache
from typing import Any, Iterator, NamedTuple, Optional, Sequence, Union

import numpy as np
from scipy import fft as sp_fft
from scipy import signal as sps
from transformers import BatchFeature, SequenceFeatureExtractor
from transformers.utils import TensorType

from .configuration_cgdmer import STANDARD_LEADS, num_samples

logger = logging.getLogger(__name__)

NORMALIZATIONS = ("zscore", "robust", "minmax", "none")
CROPS = ("center", "random", "start")
BAD_LEAD_POLICIES = ("raise", "mask")

# Lead aliases, keyed by the normalised spelling (lower case, no "lead" prefix, no spaces/underscores/dots).
# D1-D3 / DI-DIII are the continental names of the limb leads, C1-C6 the IEC names of the chest leads,
# ML I-III the modified (Mason-Likar / Holter) limb leads.
_LEAD_ALIASES: dict[str, str] = {}
for _name in STANDARD_LEADS:
    _LEAD_ALIASES[_name.lower()] = _name
for _roman, _num in (("i", "1"), ("ii", "2"), ("iii", "3")):
    _canonical = _roman.upper()
    for _alias in (f"d{_roman}", f"d{_num}", f"ml{_roman}", f"ml{_num}"):
        _LEAD_ALIASES[_alias] = _canonical
for _k in range(1, 7):
    _LEAD_ALIASES[f"c{_k}"] = f"V{_k}"

# Lowest accepted ECG sampling rate (Hz), for every input: below 50 Hz the QRS complex is lost (and a tiny rate
# would make resampling allocate without bound).
MIN_SAMPLING_RATE = 50.0
# Highest rate (Hz) accepted from a WFDB header (files and `wfdb.Record`s). 12-lead ECGs are recorded at 100-1000 Hz
# (PTB-XL 100/500, INCART 257, MIT-BIH 360, PTB 1000), and a header rate above 2000 Hz is more often a sample count
# in the rate field (`rec 12 5000`) than a real recording. Arrays have no such cap: their rate is the caller's, and
# `MAX_RESAMPLE_FACTOR` / `MAX_RESAMPLED_SAMPLES` bound the memory.
MAX_HEADER_SAMPLING_RATE = 2000.0
# Largest polyphase up/down factor: the anti-aliasing FIR has 20 * factor + 1 taps.
MAX_RESAMPLE_FACTOR = 1000
# Most samples per lead after resampling: 46 h at 100 Hz, 1.5 GiB of float64 for 12 leads.
MAX_RESAMPLED_SAMPLES = 2**24
# Shortest run of consecutive samples at a limit of the integer sample range that makes a lead clipped: 10 ms (5
# samples at 500 Hz; at least 2 samples). A saturated amplifier or ADC flattens each peak it clips for about that
# long or longer (R waves 10 ms and more); scattered single samples at the limits are not clipping (a file scaled to
# its own range, wfdb.wrsamp without adc_gain, puts each lead's extremes on the limits).
CLIP_MIN_S = 0.01
# Largest magnitude accepted in any unit (mV, uV, raw 32-bit ADC counts): larger values are an overflow, a wrong
# gain or garbage, which z-scoring would silently turn into zeros.
MAX_ABS_VALUE = 1e10
# Smallest normalisation scale, as a fraction of the lead's largest deviation from its centre: below it the scale
# is zero up to float64 rounding (the FFT resampler turns upfirdn's exact zeros into ~1e-17), so the lead is zeroed
# and masked instead of being divided into noise of ~1e16.
MIN_RELATIVE_SCALE = 1e-9

# Kinds of bad-lead faults ("NaN/inf", "ADC", "overflow") already logged as a warning in this process.
_WARNED_FAULT_KINDS: set[str] = set()

# WFDB units to millivolts (other units are kept as they are).
_TO_MILLIVOLT = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3, "v": 1e3, "nv": 1e-6}

EcgInput = Union[np.ndarray, "torch.Tensor", "wfdb.Record", str, os.PathLike]  # noqa: F821


def canonical_lead_name(name: str) -> Optional[str]:
    """Standard name (`"aVL"`, `"V1"`, ...) of a lead name such as `"AVL"`, `"lead II"`, `"MLII"` or `"C3"`;
    `None` if unknown. Inverted leads such as `"-aVR"` are not aliases of their positive lead."""
    return _canonical_lead_name(str(name))


@lru_cache(maxsize=1024)
def _canonical_lead_name(name: str) -> Optional[str]:
    key = re.sub(r"^lead[\s_\-:]*", "", name.strip().lower())
    key = re.sub(r"[\s_.]", "", key)
    return _LEAD_ALIASES.get(key)


# ----------------------------------------------------------------------------------------------------------
# Cached filter design (designed once per rate, never per record)
# ----------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def _resample_factors(orig_rate: float, target_rate: float) -> tuple[int, int]:
    """Polyphase factors `(up, down)`, `up / down` = `target_rate / orig_rate` to 1 part in `MAX_RESAMPLE_FACTOR`,
    both at most `MAX_RESAMPLE_FACTOR`: the anti-aliasing FIR has `20 * max(up, down) + 1` taps."""
    if not (math.isfinite(orig_rate) and orig_rate > 0):
        raise ValueError(f"Cannot resample from {orig_rate} Hz: a sampling rate must be a positive number")
    ratio = Fraction(target_rate) / Fraction(orig_rate)
    if not 1 / MAX_RESAMPLE_FACTOR <= ratio <= MAX_RESAMPLE_FACTOR:
        raise ValueError(
            f"Cannot resample from {orig_rate:g} Hz to {target_rate:g} Hz: the rate ratio {float(ratio):.3g} is beyond "
            f"the polyphase factor limit of {MAX_RESAMPLE_FACTOR} (the anti-aliasing filter grows to 20 taps per unit "
            "of factor, the output by the ratio); is the sampling rate right?"
        )
    if ratio <= 1:
        ratio = ratio.limit_denominator(MAX_RESAMPLE_FACTOR)
    else:
        ratio = 1 / (1 / ratio).limit_denominator(MAX_RESAMPLE_FACTOR)
    return ratio.numerator, ratio.denominator


@lru_cache(maxsize=32)
def _polyphase_fir(up: int, down: int) -> np.ndarray:
    """The Kaiser-windowed anti-aliasing FIR that `scipy.signal.resample_poly` designs by default."""
    max_rate = max(up, down)
    return sps.firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


@lru_cache(maxsize=32)
def _polyphase_spectrum(down: int, length: int) -> np.ndarray:
    """Conjugate spectra, at FFT length `length`, of the `down` phase filters of `_polyphase_fir(1, down)` (zero-padded
    to whole phases): row `r` is the filter of input samples `down * (m + q) + r`, q = 0, 1, ..., of output `m`;
    a correlation is a product with these."""
    h = _polyphase_fir(1, down)
    padded = np.zeros(-(-len(h) // down) * down)
    padded[: len(h)] = h
    return np.conj(sp_fft.rfft(padded.reshape(-1, down).T, n=length, axis=-1))


def _decimate(x: np.ndarray, down: int) -> np.ndarray:
    """`scipy.signal.resample_poly(x, 1, down, axis=-1, window=_polyphase_fir(1, down), padtype="line")` of
    `(rows, n)` samples, n >= 2, as the sum of the `down` polyphase correlations, taken as products of FFTs
    (single-threaded pocketfft): about 3x faster than upfirdn's per-sample loop and equal to it up to float64
    rounding, about 1e-15 of the signal's size (where upfirdn gives an exact 0 this gives ~1e-17; `normalize`
    treats a scale that small as zero)."""
    h = _polyphase_fir(1, down)
    half, (rows, n) = (len(h) - 1) // 2, x.shape
    n_out = -(-n // down)
    frames = n_out + -(-len(h) // down)  # input frames of `down` samples that the outputs reach (taps per phase)
    slope = (x[:, -1:] - x[:, :1]) / (n - 1)  # upfirdn's "line" extension: the line through the end samples
    left = x[:, :1] - slope * np.arange(half, 0, -1)
    right = x[:, -1:] + slope * np.arange(1, frames * down - half - n + 1)
    phases = np.concatenate([left, x, right], axis=1).reshape(rows, frames, down).transpose(0, 2, 1)
    length = sp_fft.next_fast_len(frames, real=True)  # >= frames: the circular correlation never wraps
    spectrum = (sp_fft.rfft(phases, n=length, axis=-1) * _polyphase_spectrum(down, length)).sum(axis=1)
    return sp_fft.irfft(spectrum, n=length, axis=-1)[:, :n_out]


class _ZeroPhaseSos(NamedTuple):
    """Second-order sections and their step-response initial state (`scipy.signal.sosfilt_zi`), designed once:
    `sosfilt_zi` solves a linear system per section, a third of what `sosfiltfilt` spends on a 10 s record."""

    sos: np.ndarray
    zi: np.ndarray


def _with_zi(sos: np.ndarray) -> _ZeroPhaseSos:
    return _ZeroPhaseSos(sos, sps.sosfilt_zi(sos))


@lru_cache(maxsize=32)
def _bandpass_sos(rate: float, low: Optional[float], high: Optional[float], order: int) -> Optional[_ZeroPhaseSos]:
    if low and high:
        return _with_zi(sps.butter(order, [low, high], btype="bandpass", fs=rate, output="sos"))
    if low:
        return _with_zi(sps.butter(order, low, btype="highpass", fs=rate, output="sos"))
    if high:
        return _with_zi(sps.butter(order, high, btype="lowpass", fs=rate, output="sos"))
    return None


@lru_cache(maxsize=32)
def _notch_sos(rate: float, freq: float, quality: float) -> _ZeroPhaseSos:
    return _with_zi(sps.tf2sos(*sps.iirnotch(freq, quality, fs=rate)))


def _filtfilt(filt: _ZeroPhaseSos, x: np.ndarray, rate: float) -> np.ndarray:
    """Zero-phase filtering of `(rows, n)` samples with 1 s of mirror (even) padding: PTB-XL records often end in a
    step or plateau, and scipy's default short odd extension turns it into a transient that leaks into the signal.
    The steps of `scipy.signal.sosfiltfilt(sos, x, axis=-1, padtype="even", padlen=...)`, with its initial state
    designed once."""
    padlen = max(min(int(round(rate)), x.shape[-1] - 1), 0)
    if padlen:
        x = np.concatenate([x[:, padlen:0:-1], x, x[:, -2 : -padlen - 2 : -1]], axis=1)
    zi = filt.zi[:, None, :]  # (sections, 1, 2): broadcast over the rows
    y, _ = sps.sosfilt(filt.sos, x, axis=-1, zi=zi * x[:, :1])
    y, _ = sps.sosfilt(filt.sos, y[:, ::-1], axis=-1, zi=zi * y[:, -1:])
    y = y[:, ::-1]
    return y[:, padlen : y.shape[1] - padlen] if padlen else y


# ----------------------------------------------------------------------------------------------------------
# WFDB reading
# ----------------------------------------------------------------------------------------------------------
def _record_base(path: Union[str, os.PathLike]) -> str:
    base = os.fspath(path)
    for ext in (".hea", ".dat", ".mat"):
        if base.endswith(ext):
            return base[: -len(ext)]
    return base


class _Signal(NamedTuple):
    """A WFDB record's signal: `values` (leads, samples) float64 in millivolts where the units are known, the lead
    `names`, and `faults`: row -> clipping or wrap-around found in its digital samples."""

    values: np.ndarray
    names: list[str]
    faults: dict[int, str]


def _header_lines(base: str) -> list[str]:
    """The non-comment lines of the WFDB header `base.hea`."""
    with open(base + ".hea", encoding="utf-8", errors="strict") as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]


def _record_fields(lines: list[str]) -> dict[str, Any]:
    """`n_seg`, `n_sig`, `fs` and `sig_len` of the header's record line (wfdb's syntax); `fs` and `sig_len` are
    `None` when the line omits them (wfdb would silently assume 250 Hz)."""
    from wfdb.io.header import rx_record

    match = rx_record.match(lines[0]) if lines else None
    if match is None:
        raise ValueError(f"invalid record line {lines[0] if lines else ''!r}")
    fields, tokens = match.groupdict(), lines[0].split()
    if len(tokens) > 2 and not fields["fs"].strip("."):
        raise ValueError(f"invalid sampling rate field {tokens[2]!r} in record line {lines[0]!r}")
    return {
        "n_seg": int(fields["n_seg"]) if fields["n_seg"] else None,
        "n_sig": int(fields["n_sig"]),
        "fs": float(fields["fs"]) if fields["fs"].strip(".") else None,
        "sig_len": int(fields["sig_len"]) if fields["sig_len"] else None,
    }


def _signal_file_names(lines: list[str], fields: dict[str, Any]) -> list[str]:
    """The signal file names of a single-segment header, in order of first use (none for a multi-segment one)."""
    if fields["n_seg"] is not None:
        return []
    return list(dict.fromkeys(ln.split()[0] for ln in lines[1 : 1 + fields["n_sig"]]))


def is_inside(path: Union[str, os.PathLike], root: Union[str, os.PathLike]) -> bool:
    """Whether `path` resolves (symlinks followed) to the folder `root` or below it."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([os.path.realpath(path), real_root]) == real_root


def outside_data_folder(path: Union[str, os.PathLike], root: Union[str, os.PathLike]) -> Optional[str]:
    """Why the record file `path` is refused: it resolves (symlinks followed) outside the data folder `root`;
    `None` when it is inside."""
    if is_inside(path, root):
        return None
    return f"record file {os.fspath(path)} resolves to {os.path.realpath(path)}, outside the data folder {root}"


def _check_inside(paths: Sequence[str], root: Union[str, os.PathLike]) -> None:
    """Raise `ValueError` for the first of `paths` that resolves outside the data folder `root`."""
    for path in paths:
        reason = outside_data_folder(path, root)
        if reason:
            raise ValueError(reason)


def _check_signal_file_names(names: Sequence[str], base: str) -> None:
    """Refuse signal file names (from the header `base.hea`) that are not plain file names next to the header:
    `..`, paths with a folder, absolute paths."""
    for name in names:
        if name in (".", "..") or os.path.basename(name) != name or os.path.isabs(name):
            raise ValueError(
                f"signal file {name!r} named in {base}.hea is not a plain file name: WFDB signal files sit next to "
                "their header"
            )


def _adc_faults(digital: np.ndarray, bits: Sequence[int], fs: float, wfdb_invalid: bool) -> dict[int, str]:
    """Rows of integer samples (at `fs` Hz) that are clipped or wrapped around, with the problem found.

    Clipped: consecutive samples at a limit `±(2**(bits - 1) - 1)` of their `bits`-bit range for `CLIP_MIN_S` or
    longer (a saturated amplifier or ADC); scattered samples at the limits are not. Wrapped around: a jump
    of more than half that range between two samples, which no ECG makes. A row scaled to its own extremes
    (`_scaled_to_own_range`) touches both limits by construction and may jump that far: it is clipped only when it
    stays `CLIP_MIN_S` at each limit, and never wrapped. With `wfdb_invalid`, `-2**(bits - 1)` is WFDB's
    invalid-sample marker, not a value."""
    if digital.size == 0:
        return {}
    min_run = max(2, math.ceil(CLIP_MIN_S * fs))
    limits = 2 ** (np.asarray(bits, dtype=np.int64) - 1) - 1
    lo, hi = digital.min(axis=1).astype(np.int64), digital.max(axis=1).astype(np.int64)
    # a row that reaches neither limit and spans at most limit + 1 can neither clip nor jump that far
    suspect = (hi >= limits) | (lo <= -limits) | (hi - lo > limits + 1)
    faults = {}
    for row in map(int, np.flatnonzero(suspect)):
        problem = _adc_fault(digital[row].astype(np.int64), int(bits[row]), min_run, wfdb_invalid)
        if problem:
            faults[row] = problem
    return faults


def _adc_fault(d: np.ndarray, bits: int, min_run: int, wfdb_invalid: bool) -> Optional[str]:
    """The clipping and wrap-around (see `_adc_faults`) of one row `d` of `bits`-bit integer samples, `None` when
    it has neither; `min_run` is the shortest run of samples at a limit that is clipping."""
    limit = 2 ** (bits - 1) - 1
    valid = d != -limit - 1 if wfdb_invalid else np.ones(d.shape, dtype=bool)
    if not valid.any():
        return None
    at_low, at_high = valid & (d <= -limit), d >= limit
    run_low, run_high = _longest_run(at_low), _longest_run(at_high)
    if _scaled_to_own_range(d[valid], limit):
        clipped, wraps = min(run_low, run_high) >= min_run, 0
    else:
        clipped = max(run_low, run_high) >= min_run
        wraps = int(np.count_nonzero((np.abs(np.diff(d)) > limit + 1) & valid[1:] & valid[:-1]))
    problems = []
    if clipped:
        at_limits = int(np.count_nonzero(at_low | at_high))
        problems.append(f"{at_limits} samples at the ±{limit} limits of its {bits}-bit samples, up to "
                        f"{max(run_low, run_high)} in a row (clipped)")  # fmt: skip
    if wraps:
        problems.append(f"{wraps} jumps of more than {limit + 1} between consecutive samples (wrapped around)")
    return " and ".join(problems) or None


def _scaled_to_own_range(d: np.ndarray, limit: int) -> bool:
    """Whether integer samples were scaled to span their range: one extreme on a limit, the other within 0.1 % of
    the other limit (`wfdb.wrsamp` without `adc_gain` maps the minimum to `-limit`, the maximum near `limit`)."""
    lo, hi = int(d.min()), int(d.max())
    return (lo <= -limit and hi >= 0.999 * limit) or (hi >= limit and lo <= -0.999 * limit)


def _to_millivolt(values: np.ndarray, units: Sequence[str]) -> np.ndarray:
    """`values` (leads, samples) in millivolts: each row scaled by its WFDB unit (`uV`, `V`, ...); rows in unknown
    units are kept as they are."""
    scale = np.array([_TO_MILLIVOLT.get(str(u).strip().lower(), 1.0) for u in units])
    return values * scale[:, None] if np.any(scale != 1.0) else values


def _fast_read_format16(base: str, lines: list[str], fields: dict[str, Any], fs: float) -> Optional[_Signal]:
    """Read the common single-file, format-16 WFDB layout (PTB-XL `.dat`, CinC `.mat` = format `16+24` or
    `16x1+24`) with numpy. Returns `None` for anything else so that `wfdb.rdrecord` reads it (wfdb parses headers
    with pandas at about 4 ms a record, which alone would cap throughput below 250 records/s)."""
    from wfdb.io.header import rx_signal

    n_sig, n_samp = fields["n_sig"], fields["sig_len"]
    if fields["n_seg"] is not None or n_samp is None or n_sig == 0:
        return None
    matches = [rx_signal.match(ln) for ln in lines[1 : 1 + n_sig]]
    if len(matches) != n_sig or any(m is None or not m["sig_name"] for m in matches):
        return None
    sigs = [m.groupdict() for m in matches]
    if len({(s["file_name"], s["byte_offset"]) for s in sigs}) != 1:
        return None
    if any(s["fmt"] != "16" or s["samps_per_frame"] not in ("", "1") or s["skew"] not in ("", "0") for s in sigs):
        return None
    offset = int(sigs[0]["byte_offset"] or 0)
    gains = np.array([float(s["adc_gain"] or 0) or 200.0 for s in sigs])  # WFDB: gain 0 means the default 200
    baselines = np.array([float(s["baseline"] or s["adc_zero"] or 0) for s in sigs])
    data_path = os.path.join(os.path.dirname(base), sigs[0]["file_name"])
    held = (os.path.getsize(data_path) - offset) // 2
    if held != n_samp * n_sig:  # truncated, or a header that names fewer/more signals or samples than the file holds
        raise ValueError(f"WFDB signal file {data_path} holds {held} values, header says {n_sig} signals x "
                         f"{n_samp} samples = {n_samp * n_sig}")
    digital = np.fromfile(data_path, dtype="<i2", count=n_samp * n_sig, offset=offset).reshape(n_samp, n_sig).T
    physical = (digital - baselines[:, None]) / gains[:, None]
    physical[digital == -32768] = np.nan  # WFDB's invalid-sample marker for format 16
    units = [s["units"] or "mV" for s in sigs]
    faults = _adc_faults(digital, [16] * n_sig, fs, wfdb_invalid=True)
    return _Signal(_to_millivolt(physical, units), [s["sig_name"] for s in sigs], faults)


def read_wfdb_record(
    path: Union[str, os.PathLike], sampling_rate: Optional[float] = None
) -> tuple[np.ndarray, float, list[str]]:
    """Read a WFDB record (`path` with or without `.hea`/`.dat`/`.mat`) as `(signal, fs, lead_names)`, with
    `signal` (leads, samples) float64 in millivolts where the header gives the units.

    `fs` is the rate the header states. A header that states none (wfdb would silently assume 250 Hz) needs
    `sampling_rate`; one that states a rate must agree with a given `sampling_rate`. Header rates outside
    [`MIN_SAMPLING_RATE`, `MAX_HEADER_SAMPLING_RATE`] are refused."""
    signal, fs = _read_wfdb(path, sampling_rate)
    return signal.values, fs, signal.names


def _read_wfdb(
    path: Union[str, os.PathLike], sampling_rate: Any = None, data_root: Optional[Union[str, os.PathLike]] = None
) -> tuple[_Signal, float]:
    """`(signal, fs)` of the WFDB record `path` (see `read_wfdb_record`); with `data_root`, its header and signal
    files must resolve inside that folder (the header is not read otherwise)."""
    base = _record_base(path)
    if data_root is not None:
        _check_inside([base + ".hea"], data_root)
    if not os.path.isfile(base + ".hea"):
        raise FileNotFoundError(f"WFDB record not found: no header file {base}.hea")
    with _read_errors(base):
        lines = _header_lines(base)
        fields = _record_fields(lines)
        names = _signal_file_names(lines, fields)
    if data_root is not None:
        _check_inside([os.path.join(os.path.dirname(base), name) for name in names], data_root)
    with _read_errors(base):
        _check_signal_file_names(names, base)
    fs = _resolve_rate(fields["fs"], sampling_rate, f"WFDB record {base}")
    with _read_errors(base):
        fast = _fast_read_format16(base, lines, fields, fs)
    return (fast if fast is not None else _read_with_wfdb(base, fs)), fs


@contextmanager
def _read_errors(base: str) -> Iterator[None]:
    """Re-raise a failed read as `FileNotFoundError` (a missing file) or `ValueError` naming the record."""
    try:
        yield
    except FileNotFoundError as err:
        raise FileNotFoundError(f"WFDB record {base}: signal file missing ({err})") from None
    except (ValueError, UnicodeDecodeError, IndexError) as err:
        raise ValueError(f"Could not read WFDB record {base}: corrupt header or signal file ({err})") from None


def _read_with_wfdb(base: str, fs: float) -> _Signal:
    import wfdb

    try:
        record = wfdb.rdrecord(base)
        _check_signal_file_sizes(record, base)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"WFDB record {base}: file missing ({err})") from None
    except Exception as err:  # wfdb raises many types for malformed headers
        raise ValueError(f"Could not read WFDB record {base}: corrupt header or signal file ({err})") from None
    return _wfdb_record_signal(record, fs)


# Packed WFDB formats: (samples, bytes) per group (212: 2 samples in 3 bytes; 310/311: 3 in 4).
_PACKED_GROUPS = {"212": (2, 3), "310": (3, 4), "311": (3, 4)}


def _check_signal_file_sizes(record: Any, base: str) -> None:
    """Each signal file must hold exactly the header's `sig_len` frames: wfdb reads a longer file silently short.

    A file of `n` = `sig_len` x samples-per-frame samples holds at least their bytes, and less than one frame more
    or, in a packed format, up to its last group padded to full size."""
    from wfdb.io._signal import BYTES_PER_SAMPLE

    if type(record).__name__ == "MultiRecord":
        return
    files: dict[str, list] = {}
    for name, fmt, spf, offset in zip(record.file_name, record.fmt, record.samps_per_frame,
                                      record.byte_offset or [None] * record.n_sig):  # fmt: skip
        files.setdefault(name, [fmt, 0, offset or 0])[1] += spf
    for name, (fmt, samples_per_frame, offset) in files.items():
        if not BYTES_PER_SAMPLE.get(fmt):  # compressed (FLAC) formats have no fixed size
            continue
        group_samples, group_bytes = _PACKED_GROUPS.get(fmt, (1, int(BYTES_PER_SAMPLE[fmt])))
        data_path = os.path.join(os.path.dirname(base), name)
        size = os.path.getsize(data_path) - offset
        held = Fraction(size * group_samples, group_bytes)  # samples the bytes make, a fraction in packed formats
        n = record.sig_len * samples_per_frame
        padded = -(-n // group_samples) * group_bytes  # bytes of n samples, the last group padded
        if not (n <= held and (held < n + samples_per_frame or size <= padded)):
            raise ValueError(f"WFDB signal file {data_path} holds {math.floor(held / samples_per_frame)} samples per "
                             f"signal, header says {record.sig_len}")  # fmt: skip


def _wfdb_record_signal(record: Any, fs: float) -> _Signal:
    if type(record).__name__ == "MultiRecord":
        record = record.multi_to_single(physical=True)
    sig = record.p_signal
    if sig is None:
        if record.d_signal is None:
            raise ValueError(f"wfdb.Record {record.record_name!r} holds no signal")
        sig = record.dac()
    names = list(record.sig_name or [])
    units = list(record.units or ["mV"] * sig.shape[1])
    return _Signal(_to_millivolt(np.asarray(sig, dtype=np.float64).T, units), names, _record_faults(record, fs))


def _record_faults(record: Any, fs: float) -> dict[int, str]:
    """`_adc_faults` of a `wfdb.Record`'s digital samples (rebuilt from `p_signal` with its ADC fields); none when
    the record lacks the fields (`fmt`, `adc_gain`, `baseline`)."""
    from wfdb.io._signal import BIT_RES

    if not (record.fmt and record.adc_gain and record.baseline) or any(f not in BIT_RES for f in record.fmt):
        return {}
    digital = record.d_signal if record.d_signal is not None else record.adc()
    return _adc_faults(np.asarray(digital).T, [BIT_RES[f] for f in record.fmt], fs, wfdb_invalid=True)


def _resolve_rate(stated: Optional[float], given: Any, source: str) -> float:
    """The sampling rate of the ECG from `source`: the rate its WFDB header states (`stated`, `None` when it
    states none or `source` is an array), else the caller's `sampling_rate` (`given`). Refuses a missing rate, a
    conflict between the two, rates below `MIN_SAMPLING_RATE`, and header rates above `MAX_HEADER_SAMPLING_RATE`."""
    fs = None if given is None else _rate_number(given)
    if stated is None and fs is None:
        raise ValueError(
            f"The header of {source} states no sampling rate (wfdb would assume 250 Hz): pass sampling_rate=<its "
            "rate in Hz>"
        )
    if stated is not None and fs is not None and not math.isclose(fs, stated, rel_tol=1e-6):
        raise ValueError(f"sampling_rate={given} conflicts with the {stated} Hz in the header of {source}")
    if stated is None:
        if fs < MIN_SAMPLING_RATE:
            raise ValueError(f"sampling_rate={fs:g} Hz is below {MIN_SAMPLING_RATE:g} Hz, the lowest ECG sampling "
                             "rate accepted (MIN_SAMPLING_RATE)")  # fmt: skip
        return fs
    if not MIN_SAMPLING_RATE <= stated <= MAX_HEADER_SAMPLING_RATE:
        hint = ""
        if stated > MAX_HEADER_SAMPLING_RATE:
            hint = (" (is the header's rate field a misplaced sample count? A real recording at this rate can be "
                    "passed as an array with sampling_rate=<its rate>)")  # fmt: skip
        raise ValueError(
            f"The header of {source} states a sampling rate of {stated:g} Hz, outside [{MIN_SAMPLING_RATE:g}, "
            f"{MAX_HEADER_SAMPLING_RATE:g}] Hz, the range accepted from WFDB headers (MIN_SAMPLING_RATE, "
            f"MAX_HEADER_SAMPLING_RATE){hint}"
        )
    return float(stated)


def _rate_number(value: Any) -> float:
    """The caller's `sampling_rate` as a float; refuses non-numbers, NaN, infinities and rates <= 0."""
    try:
        fs = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"sampling_rate must be a number, got {value!r}") from None
    if not math.isfinite(fs) or fs <= 0:
        raise ValueError(f"sampling_rate must be a positive number, got {value!r}")
    return fs


def _is_wfdb_record(obj: Any) -> bool:
    return type(obj).__name__ in ("Record", "MultiRecord") and hasattr(obj, "sig_name") and hasattr(obj, "fs")


# ----------------------------------------------------------------------------------------------------------
# Feature extractor
# ----------------------------------------------------------------------------------------------------------
class CGDMERFeatureExtractor(SequenceFeatureExtractor):
    r"""Turns raw 12-lead ECGs into CG-DMER model input.

    Accepts a numpy array or torch tensor `(leads, samples)`, a batch `(batch, leads, samples)`, a list of ECGs of
    different lengths, a `wfdb.Record`, or the path of a WFDB record (header + `.dat`, or CinC `.mat`). Arrays
    need `sampling_rate` (their rate in Hz); WFDB input brings its own rate and lead names (a header without a rate
    needs `sampling_rate`). Rates below `MIN_SAMPLING_RATE` (50 Hz) are refused, and so are rates above
    `MAX_HEADER_SAMPLING_RATE` (2000 Hz) stated in WFDB headers (likely a misplaced sample count; arrays have no
    such cap) and ECGs longer than `MAX_RESAMPLED_SAMPLES` once resampled.

    Args:
        feature_size (`int`, defaults to 12): number of output leads (`len(lead_names)`).
        sampling_rate (`int`, defaults to 100): rate (Hz) of the model input; must match the model config.
        duration (`float`, defaults to 10.0): seconds per output ECG (`sampling_rate * duration` samples); longer
            ECGs are cropped, shorter ones padded with `padding_value` and masked in `ecg_attention_mask`.
        lead_names (`list[str]`, defaults to the standard I, II, III, aVR, aVL, aVF, V1-V6): output lead order.
            Input leads are matched by name (case-insensitive, aliases such as `AVL`, `lead II`, `MLII`, `DII`,
            `C1`), never by position; leads absent from the input are zeros with `lead_mask = 0`.
        patch_size (`int`, defaults to 25): model patch length in samples; shorter signals are rejected.
        padding_value (`float`, defaults to 0.0): value of padded samples.
        do_bandpass (`bool`, defaults to `True`): zero-phase Butterworth band-pass at the model rate.
        bandpass_low (`float`, defaults to 0.5): high-pass corner (Hz), removes baseline wander; `None` = none.
        bandpass_high (`float`, defaults to 40.0): low-pass corner (Hz), below the model's Nyquist; `None` = none.
        filter_order (`int`, defaults to 2): Butterworth order (doubled by forward-backward filtering).
        notch_frequency (`float`, *optional*): powerline frequency (50 or 60 Hz) to notch at the *input* rate
            before resampling. Off by default: at 100 Hz the anti-aliasing filter and the 40 Hz low-pass already
            remove it. Skipped for inputs whose Nyquist frequency is not above it.
        notch_quality (`float`, defaults to 30.0): quality factor of the notch.
        normalization (`str`, defaults to `"zscore"`): per-lead normalisation over the real (unpadded) samples:
            `"zscore"` (mean 0, std 1), `"robust"` (median 0, IQR/1.349 = 1), `"minmax"` (to [-1, 1]) or `"none"`
            (keep millivolts after filtering).
        flat_threshold (`float`, defaults to 1e-6): a lead whose standard deviation (after filtering, input units)
            is below this is flat: it becomes zeros, and with `mask_flat_leads` gets `lead_mask = 0`.
        mask_flat_leads (`bool`, defaults to `True`): treat flat leads as missing.
        max_nan_gap (`float`, defaults to 0.2): longest run of NaN/inf (seconds) repaired by linear interpolation.
        on_bad_lead (`str`, defaults to `"raise"`): a bad lead raises a `ValueError` naming it and the fault
            (`"raise"`), or becomes a missing lead (zeros, `lead_mask = 0`), logged (`"mask"`; a warning the first
            time per kind of fault in a process, then at DEBUG level). Bad leads: all NaN or a NaN run longer than
            `max_nan_gap`; clipped (digital samples at a limit of their integer range, e.g. ±32767 for WFDB format
            16 and int16 arrays, for `CLIP_MIN_S` = 10 ms in a row) or wrapped around (a jump of more than half that
            range between two samples), found in the digital samples of WFDB input and integer arrays; values
            beyond ±`MAX_ABS_VALUE` (overflow). A lead that normalisation turns into zeros for any other reason than
            flatness (e.g. an IQR of 0 with `"robust"`) always gets `lead_mask = 0`.
        crop (`str`, defaults to `"center"`): default crop of long ECGs: `"center"` (evaluation), `"random"`
            (training augmentation) or `"start"`; can be overridden per call.
        return_attention_mask (`bool`, defaults to `True`): return `ecg_attention_mask`.
    """

    model_input_names = ["ecg_values", "lead_mask", "ecg_attention_mask"]

    def __init__(
        self,
        feature_size: int = 12,
        sampling_rate: int = 100,
        duration: float = 10.0,
        lead_names: Optional[Sequence[str]] = None,
        patch_size: int = 25,
        padding_value: float = 0.0,
        do_bandpass: bool = True,
        bandpass_low: Optional[float] = 0.5,
        bandpass_high: Optional[float] = 40.0,
        filter_order: int = 2,
        notch_frequency: Optional[float] = None,
        notch_quality: float = 30.0,
        normalization: str = "zscore",
        flat_threshold: float = 1e-6,
        mask_flat_leads: bool = True,
        max_nan_gap: float = 0.2,
        on_bad_lead: str = "raise",
        crop: str = "center",
        return_attention_mask: bool = True,
        **kwargs: Any,
    ):
        lead_names = list(lead_names) if lead_names is not None else list(STANDARD_LEADS)
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        self.duration = duration
        self.lead_names = lead_names
        self.patch_size = patch_size
        self.do_bandpass = do_bandpass
        self.bandpass_low = bandpass_low
        self.bandpass_high = bandpass_high
        self.filter_order = filter_order
        self.notch_frequency = notch_frequency
        self.notch_quality = notch_quality
        self.normalization = normalization
        self.flat_threshold = flat_threshold
        self.mask_flat_leads = mask_flat_leads
        self.max_nan_gap = max_nan_gap
        self.on_bad_lead = on_bad_lead
        self.crop = crop
        self._validate_settings()

    # -- settings ---------------------------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """Samples per lead in the output: `sampling_rate * duration`."""
        return num_samples(self.sampling_rate, self.duration)

    def _validate_settings(self) -> None:
        unknown = [n for n in self.lead_names if canonical_lead_name(n) != n]
        if unknown:
            raise ValueError(f"lead_names must be standard lead names {STANDARD_LEADS}, got {unknown}")
        if len(set(self.lead_names)) != len(self.lead_names):
            raise ValueError(f"lead_names has duplicates: {self.lead_names}")
        if self.feature_size != len(self.lead_names):
            raise ValueError(f"feature_size={self.feature_size} but {len(self.lead_names)} lead_names")
        if not self.sampling_rate or self.sampling_rate <= 0 or self.duration <= 0 or self.patch_size < 1:
            raise ValueError("sampling_rate, duration and patch_size must be positive")
        if self.num_samples < self.patch_size:
            raise ValueError(f"duration {self.duration} s is shorter than one patch ({self.patch_size} samples)")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")
        if self.on_bad_lead not in BAD_LEAD_POLICIES:
            raise ValueError(f"on_bad_lead must be one of {BAD_LEAD_POLICIES}, got {self.on_bad_lead!r}")
        nyquist = self.sampling_rate / 2
        if self.do_bandpass:
            low, high = self.bandpass_low, self.bandpass_high
            if low is not None and not 0 < low < nyquist:
                raise ValueError(f"bandpass_low={low} Hz must be in (0, {nyquist}) at {self.sampling_rate} Hz")
            if high is not None and not 0 < high < nyquist:
                raise ValueError(
                    f"bandpass_high={high} Hz must be below the Nyquist frequency {nyquist} Hz of the model rate"
                )
            if low is not None and high is not None and low >= high:
                raise ValueError(f"bandpass_low={low} must be below bandpass_high={high}")
        if self.notch_frequency is not None and self.notch_frequency <= 0:
            raise ValueError(f"notch_frequency must be positive, got {self.notch_frequency}")

    # -- public stages (used by __call__ and by benchmarks) -----------------------------------------------------
    def reorder_leads(self, x: np.ndarray, names: Optional[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Map input rows to `self.lead_names` by name. Returns `(leads_out, samples)` with zeros for absent leads
        and the `(leads_out,)` presence mask."""
        n_out = len(self.lead_names)
        if names is None:
            if x.shape[0] != n_out:
                hint = " (got (samples, leads)? pass ecg.T)" if x.shape[-1] == n_out else ""
                raise ValueError(
                    f"ECG has {x.shape[0]} leads (rows) but no lead_names were given; without names the input must "
                    f"be the {n_out} leads {self.lead_names} in this order{hint}. Pass lead_names=[...]."
                )
            return x, np.ones(n_out, dtype=np.int64)
        names = [str(n) for n in names]
        if len(names) != x.shape[0]:
            hint = " (got (samples, leads)? pass ecg.T)" if x.shape[-1] == len(names) else ""
            raise ValueError(f"{len(names)} lead_names for an ECG with {x.shape[0]} leads (rows){hint}")
        canonical = [canonical_lead_name(n) for n in names]
        unknown = [n for n, c in zip(names, canonical) if c is None]
        if unknown:
            raise ValueError(
                f"Unknown lead names {unknown}; expected names of the 12 standard leads {STANDARD_LEADS} "
                "(case-insensitive; aliases such as AVL, lead II, MLII, DII, C1 are accepted)"
            )
        seen: dict[str, str] = {}
        duplicates = []
        for name, canon in zip(names, canonical):
            if canon in seen:
                duplicates.append(f"{seen[canon]!r} and {name!r} are both {canon}")
            seen[canon] = name
        if duplicates:
            raise ValueError(f"Duplicated leads: {'; '.join(duplicates)}")
        index = {c: i for i, c in enumerate(canonical)}
        rows = [index.get(lead, -1) for lead in self.lead_names]
        present = np.array([r >= 0 for r in rows], dtype=np.int64)
        if present.all():
            return x[rows], present
        out = np.zeros((n_out, x.shape[1]), dtype=x.dtype)
        out[present.astype(bool)] = x[[r for r in rows if r >= 0]]
        return out, present

    def repair_nans(self, x: np.ndarray, rate: float, present: np.ndarray) -> np.ndarray:
        """Linearly interpolate NaN/inf runs up to `max_nan_gap` seconds; longer runs or all-NaN leads raise or
        are masked (`on_bad_lead`). Modifies `present` in place for masked leads."""
        bad = ~np.isfinite(x)
        if not bad.any():
            return x
        x = x.copy()
        max_run = int(math.floor(self.max_nan_gap * rate))
        positions = np.arange(x.shape[1])
        for lead in np.flatnonzero(bad.any(axis=1)):
            name = self.lead_names[lead]
            mask = bad[lead]
            longest = _longest_run(mask)
            problem = None
            if mask.all():
                problem = f"lead {name} is entirely NaN/inf"
            elif longest > max_run:
                problem = (
                    f"lead {name} has a run of {longest} NaN/inf samples ({longest / rate:.3f} s), longer than "
                    f"max_nan_gap={self.max_nan_gap} s that can be interpolated"
                )
            if problem is None:
                x[lead, mask] = np.interp(positions[mask], positions[~mask], x[lead, ~mask])
            else:
                self._bad_lead(x, present, lead, problem, "NaN/inf")
        return x

    def drop_bad_leads(self, x: np.ndarray, present: np.ndarray, faults: dict[int, str]) -> np.ndarray:
        """Apply `on_bad_lead` to the leads (output rows) in `faults` (row -> problem) and to leads with values
        beyond ±`MAX_ABS_VALUE`. Modifies `present` in place for masked leads."""
        huge = (np.abs(x) > MAX_ABS_VALUE) & np.isfinite(x)  # inf is a NaN-like gap, for repair_nans
        problems = {lead: (f"lead {self.lead_names[lead]} has {problem}", "ADC") for lead, problem in faults.items()}
        for lead in np.flatnonzero(huge.any(axis=1)):
            peak = np.abs(x[lead][huge[lead]]).max()
            problems.setdefault(lead, (f"lead {self.lead_names[lead]} reaches {peak:.3g}, beyond ±{MAX_ABS_VALUE:g} "
                                       "(overflow or a wrong gain)", "overflow"))  # fmt: skip
        if not problems:
            return x
        x = x.copy()
        for lead in sorted(problems):
            if present[lead]:
                self._bad_lead(x, present, lead, *problems[lead])
        return x

    def _bad_lead(self, x: np.ndarray, present: np.ndarray, lead: int, problem: str, kind: str) -> None:
        """Raise for a bad lead (`on_bad_lead="raise"`) or make it a missing lead (`"mask"`), logged as a warning
        the first time per fault `kind` in this process and at DEBUG level after that (a large data set would
        flood the log; masked leads show in `lead_mask`)."""
        if self.on_bad_lead == "raise":
            raise ValueError(f"{problem} (set on_bad_lead='mask' to treat it as a missing lead)")
        if kind in _WARNED_FAULT_KINDS:
            logger.debug("Masking a bad lead: %s", problem)
        else:
            _WARNED_FAULT_KINDS.add(kind)
            logger.warning("Masking a bad lead: %s (further leads masked for %s faults are logged at DEBUG level)",
                           problem, kind)  # fmt: skip
        x[lead] = 0.0
        present[lead] = 0

    def notch(self, x: np.ndarray, rate: float) -> np.ndarray:
        """Powerline notch at the input rate (no-op when off or not representable at `rate`)."""
        if self.notch_frequency is None or self.notch_frequency >= rate / 2:
            return x
        return _filtfilt(_notch_sos(float(rate), float(self.notch_frequency), float(self.notch_quality)), x, rate)

    def resample(self, x: np.ndarray, rate: float) -> np.ndarray:
        """Polyphase resampling (Kaiser-windowed FIR anti-aliasing, as `scipy.signal.resample_poly`) from `rate`
        to `self.sampling_rate`; integer downsampling (500 -> 100 Hz) takes the faster FFT path `_decimate`."""
        up, down, _ = self._resample_plan(x.shape[-1], rate)
        if up == down:
            return x
        if up == 1 and x.ndim == 2 and x.shape[-1] >= 2:
            return _decimate(x, down)
        return sps.resample_poly(x, up, down, axis=-1, window=_polyphase_fir(up, down), padtype="line")

    def _resample_plan(self, n: int, rate: float) -> tuple[int, int, int]:
        """`(up, down, samples out)` for `n` samples at `rate` Hz; refuses more than `MAX_RESAMPLED_SAMPLES` out."""
        up, down = _resample_factors(float(rate), float(self.sampling_rate))
        n_out = -(-n * up // down)
        if n_out > MAX_RESAMPLED_SAMPLES:
            raise ValueError(
                f"ECG of {n} samples at {rate:g} Hz ({n / rate / 3600:.3g} h) would become {n_out} samples per lead at "
                f"{self.sampling_rate} Hz ({n_out * 8 * len(self.lead_names) / 2**30:.3g} GiB as float64), more than "
                f"MAX_RESAMPLED_SAMPLES={MAX_RESAMPLED_SAMPLES}; is the sampling rate right? (split longer ECGs)"
            )
        return up, down, n_out

    def bandpass(self, x: np.ndarray) -> np.ndarray:
        """Zero-phase Butterworth band-pass at the model rate (no-op when `do_bandpass` is off)."""
        if not self.do_bandpass:
            return x
        sos = _bandpass_sos(float(self.sampling_rate), self.bandpass_low, self.bandpass_high, int(self.filter_order))
        return x if sos is None else _filtfilt(sos, x, self.sampling_rate)

    def crop_or_pad(
        self, x: np.ndarray, crop: str, rng: Optional[np.random.Generator]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Crop (center / random / start) or pad to `num_samples`; returns the signal and the sample mask."""
        n, target = x.shape[1], self.num_samples
        if n >= target:
            if crop == "center":
                start = (n - target) // 2
            elif crop == "random":
                start = int((rng or np.random.default_rng()).integers(0, n - target + 1))
            else:
                start = 0
            return x[:, start : start + target], np.ones(target, dtype=np.int64)
        out = np.full((x.shape[0], target), self.padding_value, dtype=x.dtype)
        valid = np.zeros(target, dtype=np.int64)
        sl = slice(0, n) if self.padding_side == "right" else slice(target - n, target)
        out[:, sl] = x
        valid[sl] = 1
        return out, valid

    def normalize(self, x: np.ndarray, valid: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Per-lead normalisation over the real samples; flat and absent leads become zeros (never divided), and
        leads with no finite positive scale become zeros with `present = 0`."""
        real = valid.astype(bool)
        seg = x if real.all() else x[:, real]
        std = seg.std(axis=1)
        flat = std < self.flat_threshold
        if self.mask_flat_leads:
            present[flat] = 0
        if self.normalization == "zscore":
            center, scale = seg.mean(axis=1), std
        elif self.normalization == "robust":
            q25, center, q75 = np.percentile(seg, [25, 50, 75], axis=1)
            scale = (q75 - q25) / 1.349
        elif self.normalization == "minmax":
            lo, hi = seg.min(axis=1), seg.max(axis=1)
            center, scale = (hi + lo) / 2, (hi - lo) / 2
        else:
            center, scale = np.zeros(x.shape[0]), np.ones(x.shape[0])
        floor = 0.0 if self.normalization == "none" else MIN_RELATIVE_SCALE * np.abs(seg - center[:, None]).max(axis=1)
        present[~flat & ~(np.isfinite(scale) & (scale > floor))] = 0  # zeroed by normalisation: a missing lead
        zero = flat | (present == 0)
        scale = np.where(zero, 1.0, scale)
        out = (x - center[:, None]) / scale[:, None]
        out[zero] = 0.0
        if not real.all():
            out[:, ~real] = self.padding_value
        return out

    # -- __call__ -----------------------------------------------------------------------------------------------
    def __call__(
        self,
        ecg: Union[EcgInput, Sequence[EcgInput]],
        sampling_rate: Optional[Union[float, Sequence[float]]] = None,
        lead_names: Optional[Union[Sequence[str], Sequence[Sequence[str]]]] = None,
        crop: Optional[str] = None,
        rng: Optional[Union[np.random.Generator, int]] = None,
        return_attention_mask: Optional[bool] = None,
        return_tensors: Optional[Union[str, TensorType]] = None,
        data_root: Optional[Union[str, os.PathLike]] = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Preprocess one ECG or a batch.

        Args:
            ecg: array/tensor `(leads, samples)` or `(batch, leads, samples)`, a list of those (lengths may
                differ), a `wfdb.Record`, a WFDB record path, or a list mixing them.
            sampling_rate: rate (Hz) of array input, one value or one per item. Required for arrays; for WFDB
                input it must be omitted or equal the header's rate.
            lead_names: names of the input rows, one list for all items or one list per item. Default: the
                standard 12 leads in order (arrays) or the header's names (WFDB).
            crop: `"center"`, `"random"` or `"start"` for ECGs longer than `duration` (default: `self.crop`).
            rng: numpy Generator or seed for `crop="random"`.
            return_tensors: `"pt"` or `"np"`; `None` gives numpy arrays.
            data_root: a folder that WFDB record paths must stay in: a record whose header or signal files
                resolve outside it (`..`, absolute paths, symlinks followed) is refused with a `ValueError`.

        Returns:
            `BatchFeature` with `ecg_values` (batch, leads, num_samples) float32, `lead_mask` (batch, leads) int64
            (1 = present) and `ecg_attention_mask` (batch, num_samples) int64 (1 = real sample, 0 = padding).
        """
        if kwargs:
            raise TypeError(f"Unexpected arguments: {sorted(kwargs)}")
        crop = crop or self.crop
        if crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
        if rng is not None and not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        items = self._split_batch(ecg)
        rates = _per_item(sampling_rate, len(items), "sampling_rate", scalar=lambda v: not _is_sequence(v))
        names = _per_item(
            lead_names, len(items), "lead_names",
            scalar=lambda v: not (_is_sequence(v) and len(v) and _is_sequence(v[0])),
        )
        values, lead_masks, sample_masks = [], [], []
        for i, (item, rate, item_names) in enumerate(zip(items, rates, names)):
            try:
                x, present, valid = self._process_one(item, rate, item_names, crop, rng, data_root)
            except (ValueError, FileNotFoundError) as err:
                if len(items) == 1:
                    raise
                raise type(err)(f"ECG {i} of the batch: {err}") from None
            values.append(x)
            lead_masks.append(present)
            sample_masks.append(valid)
        data = {
            "ecg_values": np.stack(values).astype(np.float32),
            "lead_mask": np.stack(lead_masks).astype(np.int64),
        }
        if return_attention_mask if return_attention_mask is not None else self.return_attention_mask:
            data["ecg_attention_mask"] = np.stack(sample_masks).astype(np.int64)
        return BatchFeature(data, tensor_type=return_tensors)

    # -- helpers --------------------------------------------------------------------------------------------
    def _split_batch(self, ecg: Any) -> list[Any]:
        if ecg is None:
            raise ValueError("No ECG given")
        if isinstance(ecg, (str, os.PathLike)) or _is_wfdb_record(ecg):
            return [ecg]
        if _is_array(ecg):
            arr = _to_numpy(ecg)
            if arr.ndim == 3:
                return list(arr)
            return [arr]
        if isinstance(ecg, (list, tuple)):
            if len(ecg) == 0:
                raise ValueError("Empty batch: no ECG given")
            if all(_is_array(e) or isinstance(e, (str, os.PathLike, list, tuple)) or _is_wfdb_record(e) for e in ecg):
                if all(isinstance(e, (list, tuple)) for e in ecg) and _is_nested_numbers(ecg):
                    arr = _to_numpy(ecg)
                    return [arr] if arr.ndim == 2 else list(arr)
                return list(ecg)
        raise ValueError(
            f"Unsupported ECG input of type {type(ecg).__name__}; expected a numpy array or torch tensor "
            "(leads, samples), a batch of them, a wfdb.Record or a WFDB record path"
        )

    def _load(
        self, item: Any, rate: Any, names: Any, data_root: Optional[Union[str, os.PathLike]] = None
    ) -> tuple[np.ndarray, float, Optional[list[str]], Optional[dict[int, str]]]:
        """`(values, rate, input lead names, ADC faults by input row)`; faults are `None` for arrays (found after
        the cheap checks, for integer arrays). WFDB paths are confined to `data_root` when given."""
        if isinstance(item, (str, os.PathLike)):
            signal, fs = _read_wfdb(item, rate, data_root)
            source = f"WFDB record {os.fspath(item)}"
        elif _is_wfdb_record(item):
            source = f"wfdb.Record {item.record_name!r}"
            fs = _resolve_rate(item.fs, rate, source)
            signal = _wfdb_record_signal(item, fs)
        else:
            if rate is None:
                raise ValueError(
                    "sampling_rate is required for array input: pass the rate of your ECG in Hz (e.g. "
                    f"sampling_rate=500); it is resampled to the model's {self.sampling_rate} Hz"
                )
            x = _to_numpy(item)
            return x, _resolve_rate(None, rate, "array input"), None if names is None else list(names), None
        if names is not None and [canonical_lead_name(n) for n in names] != [
            canonical_lead_name(n) for n in signal.names
        ]:
            raise ValueError(f"lead_names={list(names)} conflict with {signal.names} in the header of {source}")
        return signal.values, fs, signal.names, signal.faults

    def _output_faults(self, faults: dict[int, str], names: Optional[Sequence[str]]) -> dict[int, str]:
        """Input-row faults keyed by output lead (faults of leads that are not output are dropped)."""
        canonical = list(self.lead_names) if names is None else [canonical_lead_name(n) for n in names]
        index = {lead: i for i, lead in enumerate(self.lead_names)}
        return {index[canonical[row]]: problem for row, problem in faults.items() if canonical[row] in index}

    def _process_one(
        self,
        item: Any,
        rate: Any,
        names: Any,
        crop: str,
        rng: Optional[np.random.Generator],
        data_root: Optional[Union[str, os.PathLike]] = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, fs, names, faults = self._load(item, rate, names, data_root)
        if x.ndim != 2:
            raise ValueError(
                f"Each ECG must be 2-D (leads, samples), got shape {tuple(x.shape)}; a single lead is x[None] with "
                "lead_names=[name], a batch is 3-D (batch, leads, samples)"
            )
        if x.shape[1] == 0 or x.shape[0] == 0:
            raise ValueError(f"ECG has zero length: shape {tuple(x.shape)}")
        x, present = self.reorder_leads(x, names)
        _, _, n_out = self._resample_plan(x.shape[1], fs)
        if n_out < self.patch_size:
            raise ValueError(
                f"ECG has {x.shape[1]} samples at {fs:g} Hz ({x.shape[1] / fs:.3f} s), shorter than one patch "
                f"({self.patch_size} samples at {self.sampling_rate} Hz = {self.patch_size / self.sampling_rate:g} s)"
            )
        faults = _integer_faults(x, fs) if faults is None else self._output_faults(faults, names)
        x = x.astype(np.float64, copy=False)
        x = self.drop_bad_leads(x, present, faults)
        x = self.repair_nans(x, fs, present)
        x = self.notch(x, fs)
        x = self.resample(x, fs)
        x = self.bandpass(x)
        x, valid = self.crop_or_pad(x, crop, rng)
        x = self.normalize(x, valid, present)
        if not present.any():
            raise ValueError("No usable lead: every lead is missing, flat or masked")
        return x, present, valid


def _integer_faults(x: np.ndarray, fs: float) -> dict[int, str]:
    """`_adc_faults` of an integer array of up to 32 bits (its dtype gives the ADC range); none for floats."""
    if x.dtype.kind != "i" or x.dtype.itemsize > 4:
        return {}
    return _adc_faults(x, [8 * x.dtype.itemsize] * x.shape[0], fs, wfdb_invalid=False)


def _longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of `True` in the 1-D boolean `mask` (0 when none)."""
    if not mask.any():
        return 0
    padded = np.concatenate(([0], mask.view(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max()) if edges.size else 0


def _is_array(obj: Any) -> bool:
    return isinstance(obj, np.ndarray) or type(obj).__module__.startswith("torch")


def _is_sequence(obj: Any) -> bool:
    return isinstance(obj, (list, tuple)) or (isinstance(obj, np.ndarray) and obj.ndim > 0)


def _is_nested_numbers(obj: Any) -> bool:
    first = obj
    while isinstance(first, (list, tuple)) and len(first):
        first = first[0]
    return isinstance(first, (int, float, np.number))


def _to_numpy(obj: Any) -> np.ndarray:
    if type(obj).__module__.startswith("torch"):
        obj = obj.detach().cpu()
        obj = obj.float().numpy() if obj.dtype in _torch_half_dtypes() else obj.numpy()
    try:
        arr = np.asarray(obj)
    except ValueError as err:
        raise ValueError(f"ECG is not a regular numeric array ({err})") from None
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"ECG values must be real numbers, got an array of dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"ECG must be 2-D (leads, samples) or 3-D (batch, leads, samples), got shape {tuple(arr.shape)}"
        )
    return arr


def _torch_half_dtypes() -> tuple:
    import torch

    return (torch.float16, torch.bfloat16)


def _per_item(value: Any, n: int, name: str, scalar) -> list[Any]:
    if value is None or scalar(value):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"{name} has {len(value)} entries for a batch of {n} ECGs")
    return value


__all__ = ["CGDMERFeatureExtractor", "canonical_lead_name", "read_wfdb_record"]
