"""CG-DMER ECG feature extractor: everything between a raw 12-lead ECG (array, `wfdb.Record` or WFDB file) and
the model's `ecg_values`, `lead_mask` and `ecg_attention_mask`.

Pipeline per record (every setting is an init argument, saved in `preprocessor_config.json`):
read -> reorder leads by name -> repair short NaN gaps -> optional powerline notch (input rate) -> polyphase
resampling to `sampling_rate` -> zero-phase band-pass -> crop or pad to `duration` -> per-lead normalisation.
"""

from __future__ import annotations

import math
import os
import re
from fractions import Fraction
from functools import lru_cache
from typing import Any, Optional, Sequence, Union

import numpy as np
from scipy import signal as sps
from transformers import BatchFeature, SequenceFeatureExtractor
from transformers.utils import TensorType

from .configuration_cgdmer import STANDARD_LEADS

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

# WFDB units to millivolts (other units are kept as they are).
_TO_MILLIVOLT = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3, "v": 1e3, "nv": 1e-6}

EcgInput = Union[np.ndarray, "torch.Tensor", "wfdb.Record", str, os.PathLike]  # noqa: F821


def canonical_lead_name(name: str) -> Optional[str]:
    """Standard name (`"aVL"`, `"V1"`, ...) of a lead name such as `"AVL"`, `"lead II"`, `"MLII"` or `"C3"`;
    `None` if unknown. Inverted leads such as `"-aVR"` are not aliases of their positive lead."""
    key = re.sub(r"^lead[\s_\-:]*", "", str(name).strip().lower())
    key = re.sub(r"[\s_.]", "", key)
    return _LEAD_ALIASES.get(key)


# ----------------------------------------------------------------------------------------------------------
# Cached filter design (designed once per rate, never per record)
# ----------------------------------------------------------------------------------------------------------
def _resample_factors(orig_rate: float, target_rate: float) -> tuple[int, int]:
    ratio = Fraction(round(target_rate * 1000), round(orig_rate * 1000))
    if max(ratio.numerator, ratio.denominator) > 1000:
        ratio = ratio.limit_denominator(1000)
    return ratio.numerator, ratio.denominator


@lru_cache(maxsize=32)
def _polyphase_fir(up: int, down: int) -> np.ndarray:
    """The Kaiser-windowed anti-aliasing FIR that `scipy.signal.resample_poly` designs by default."""
    max_rate = max(up, down)
    return sps.firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


@lru_cache(maxsize=32)
def _bandpass_sos(rate: float, low: Optional[float], high: Optional[float], order: int) -> Optional[np.ndarray]:
    if low and high:
        return sps.butter(order, [low, high], btype="bandpass", fs=rate, output="sos")
    if low:
        return sps.butter(order, low, btype="highpass", fs=rate, output="sos")
    if high:
        return sps.butter(order, high, btype="lowpass", fs=rate, output="sos")
    return None


@lru_cache(maxsize=32)
def _notch_sos(rate: float, freq: float, quality: float) -> np.ndarray:
    return sps.tf2sos(*sps.iirnotch(freq, quality, fs=rate))


def _filtfilt(sos: np.ndarray, x: np.ndarray, rate: float) -> np.ndarray:
    """Zero-phase filtering with 1 s of mirror (even) padding: PTB-XL records often end in a step or plateau,
    and scipy's default short odd extension turns it into a transient that leaks into the signal."""
    padlen = min(int(round(rate)), x.shape[-1] - 1)
    return sps.sosfiltfilt(sos, x, axis=-1, padtype="even", padlen=max(padlen, 0))


# ----------------------------------------------------------------------------------------------------------
# WFDB reading
# ----------------------------------------------------------------------------------------------------------
def _record_base(path: Union[str, os.PathLike]) -> str:
    base = os.fspath(path)
    for ext in (".hea", ".dat", ".mat"):
        if base.endswith(ext):
            return base[: -len(ext)]
    return base


def _fast_read_format16(base: str) -> Optional[tuple[np.ndarray, float, list[str], list[str]]]:
    """Read the common single-file, format-16 WFDB layout (PTB-XL `.dat`, CinC `.mat` = format `16+24`) with
    numpy. Returns `None` for anything else so that `wfdb.rdrecord` reads it (wfdb parses headers with pandas
    at about 4 ms a record, which alone would cap throughput below 250 records/s)."""
    with open(base + ".hea", encoding="utf-8", errors="strict") as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return None
    rec = lines[0].split()
    if len(rec) < 4 or "/" in rec[0]:
        return None
    n_sig, n_samp = int(rec[1]), int(rec[3])
    fs = float(re.split(r"[/(]", rec[2])[0])
    sig_lines = [ln.split() for ln in lines[1 : 1 + n_sig]]
    if len(sig_lines) != n_sig or n_sig == 0 or any(len(s) < 9 for s in sig_lines):
        return None
    files = {s[0] for s in sig_lines}
    fmts = {s[1] for s in sig_lines}
    if len(files) != 1 or len(fmts) != 1:
        return None
    fmt = re.fullmatch(r"16(?:\+(\d+))?", fmts.pop())
    if fmt is None:
        return None
    offset = int(fmt.group(1) or 0)
    gains, baselines, units, names = [], [], [], []
    for s in sig_lines:
        m = re.fullmatch(r"([-+\d.eE]+)(?:\(([-+\d]+)\))?(?:/(\S+))?", s[2])
        if m is None:
            return None
        gain = float(m.group(1)) or 200.0
        gains.append(gain)
        baselines.append(float(m.group(2)) if m.group(2) is not None else float(s[4]))
        units.append(m.group(3) or "mV")
        names.append(" ".join(s[8:]))
    data_path = os.path.join(os.path.dirname(base), files.pop())
    held = (os.path.getsize(data_path) - offset) // 2
    if held != n_samp * n_sig:  # truncated, or a header that names fewer/more signals than the file holds
        raise ValueError(f"WFDB signal file {data_path} holds {held} values, header says {n_sig} signals x "
                         f"{n_samp} samples = {n_samp * n_sig}")
    digital = np.fromfile(data_path, dtype="<i2", count=n_samp * n_sig, offset=offset)
    digital = digital.reshape(n_samp, n_sig).T
    physical = (digital - np.asarray(baselines)[:, None]) / np.asarray(gains)[:, None]
    physical[digital == -32768] = np.nan  # WFDB's invalid-sample marker for format 16
    return physical, fs, names, units


def read_wfdb_record(path: Union[str, os.PathLike]) -> tuple[np.ndarray, float, list[str]]:
    """Read a WFDB record (`path` with or without `.hea`/`.dat`/`.mat`) as `(signal, fs, lead_names)`, with
    `signal` (leads, samples) float64 in millivolts where the header gives the units."""
    base = _record_base(path)
    if not os.path.isfile(base + ".hea"):
        raise FileNotFoundError(f"WFDB record not found: no header file {base}.hea")
    try:
        fast = _fast_read_format16(base)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"WFDB record {base}: signal file missing ({err})") from None
    except (ValueError, UnicodeDecodeError, IndexError) as err:
        raise ValueError(f"Could not read WFDB record {base}: corrupt header or signal file ({err})") from None
    if fast is not None:
        sig, fs, names, units = fast
    else:
        sig, fs, names, units = _read_with_wfdb(base)
    scale = np.array([_TO_MILLIVOLT.get(str(u).strip().lower(), 1.0) for u in units])
    if np.any(scale != 1.0):
        sig = sig * scale[:, None]
    return sig, fs, names


def _read_with_wfdb(base: str) -> tuple[np.ndarray, float, list[str], list[str]]:
    import wfdb

    try:
        record = wfdb.rdrecord(base)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"WFDB record {base}: file missing ({err})") from None
    except Exception as err:  # wfdb raises many types for malformed headers
        raise ValueError(f"Could not read WFDB record {base}: corrupt header or signal file ({err})") from None
    return _wfdb_record_arrays(record)


def _wfdb_record_arrays(record: Any) -> tuple[np.ndarray, float, list[str], list[str]]:
    if type(record).__name__ == "MultiRecord":
        record = record.multi_to_single(physical=True)
    sig = record.p_signal
    if sig is None:
        if record.d_signal is None:
            raise ValueError(f"wfdb.Record {record.record_name!r} holds no signal")
        sig = record.dac()
    if record.fs is None:
        raise ValueError(f"wfdb.Record {record.record_name!r} has no sampling frequency (fs)")
    names = list(record.sig_name or [])
    units = list(record.units or ["mV"] * sig.shape[1])
    return np.asarray(sig, dtype=np.float64).T, float(record.fs), names, units


def _is_wfdb_record(obj: Any) -> bool:
    return type(obj).__name__ in ("Record", "MultiRecord") and hasattr(obj, "sig_name") and hasattr(obj, "fs")


# ----------------------------------------------------------------------------------------------------------
# Feature extractor
# ----------------------------------------------------------------------------------------------------------
class CGDMERFeatureExtractor(SequenceFeatureExtractor):
    r"""Turns raw 12-lead ECGs into CG-DMER model input.

    Accepts a numpy array or torch tensor `(leads, samples)`, a batch `(batch, leads, samples)`, a list of ECGs of
    different lengths, a `wfdb.Record`, or the path of a WFDB record (header + `.dat`, or CinC `.mat`). Arrays
    need `sampling_rate` (their rate in Hz); WFDB input brings its own rate and lead names.

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
        on_bad_lead (`str`, defaults to `"raise"`): a lead that is all NaN or has a longer NaN run raises a
            `ValueError` naming it (`"raise"`), or becomes a missing lead with `lead_mask = 0` (`"mask"`).
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
        return int(round(self.sampling_rate * self.duration))

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
            elif self.on_bad_lead == "raise":
                raise ValueError(f"{problem} (set on_bad_lead='mask' to treat it as a missing lead)")
            else:
                x[lead] = 0.0
                present[lead] = 0
        return x

    def notch(self, x: np.ndarray, rate: float) -> np.ndarray:
        """Powerline notch at the input rate (no-op when off or not representable at `rate`)."""
        if self.notch_frequency is None or self.notch_frequency >= rate / 2:
            return x
        return _filtfilt(_notch_sos(float(rate), float(self.notch_frequency), float(self.notch_quality)), x, rate)

    def resample(self, x: np.ndarray, rate: float) -> np.ndarray:
        """Polyphase resampling (Kaiser-windowed FIR anti-aliasing, as `scipy.signal.resample_poly`) from `rate`
        to `self.sampling_rate`."""
        up, down = _resample_factors(rate, self.sampling_rate)
        if up == down:
            return x
        return sps.resample_poly(x, up, down, axis=-1, window=_polyphase_fir(up, down), padtype="line")

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
        """Per-lead normalisation over the real samples; flat and absent leads become zeros (never divided)."""
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
        zero = flat | (present == 0) | ~(scale > 0)
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
                x, present, valid = self._process_one(item, rate, item_names, crop, rng)
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

    def _load(self, item: Any, rate: Any, names: Any) -> tuple[np.ndarray, float, Optional[list[str]]]:
        if isinstance(item, (str, os.PathLike)) or _is_wfdb_record(item):
            if isinstance(item, (str, os.PathLike)):
                x, fs, header_names = read_wfdb_record(item)
                source = f"WFDB record {os.fspath(item)}"
            else:
                x, fs, header_names, units = _wfdb_record_arrays(item)
                scale = np.array([_TO_MILLIVOLT.get(str(u).strip().lower(), 1.0) for u in units])
                x = x * scale[:, None]
                source = f"wfdb.Record {item.record_name!r}"
            if rate is not None and not math.isclose(float(rate), fs, rel_tol=1e-6):
                raise ValueError(f"sampling_rate={rate} conflicts with the {fs} Hz in the header of {source}")
            if names is not None and [canonical_lead_name(n) for n in names] != [
                canonical_lead_name(n) for n in header_names
            ]:
                raise ValueError(f"lead_names={list(names)} conflict with {header_names} in the header of {source}")
            return x, fs, header_names
        x = _to_numpy(item)
        if rate is None:
            raise ValueError(
                "sampling_rate is required for array input: pass the rate of your ECG in Hz (e.g. "
                f"sampling_rate=500); it is resampled to the model's {self.sampling_rate} Hz"
            )
        try:
            fs = float(rate)
        except (TypeError, ValueError):
            raise ValueError(f"sampling_rate must be a number, got {rate!r}") from None
        if not math.isfinite(fs) or fs <= 0:
            raise ValueError(f"sampling_rate must be a positive number, got {rate!r}")
        return x, fs, None if names is None else list(names)

    def _process_one(
        self, item: Any, rate: Any, names: Any, crop: str, rng: Optional[np.random.Generator]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, fs, names = self._load(item, rate, names)
        if x.ndim != 2:
            raise ValueError(
                f"Each ECG must be 2-D (leads, samples), got shape {tuple(x.shape)}; a single lead is x[None] with "
                "lead_names=[name], a batch is 3-D (batch, leads, samples)"
            )
        if x.shape[1] == 0 or x.shape[0] == 0:
            raise ValueError(f"ECG has zero length: shape {tuple(x.shape)}")
        x, present = self.reorder_leads(x, names)
        up, down = _resample_factors(fs, self.sampling_rate)
        n_out = -(-x.shape[1] * up // down)
        if n_out < self.patch_size:
            raise ValueError(
                f"ECG has {x.shape[1]} samples at {fs:g} Hz ({x.shape[1] / fs:.3f} s), shorter than one patch "
                f"({self.patch_size} samples at {self.sampling_rate} Hz = {self.patch_size / self.sampling_rate:g} s)"
            )
        x = x.astype(np.float64, copy=False)
        x = self.repair_nans(x, fs, present)
        x = self.notch(x, fs)
        x = self.resample(x, fs)
        x = self.bandpass(x)
        x, valid = self.crop_or_pad(x, crop, rng)
        x = self.normalize(x, valid, present)
        if not present.any():
            raise ValueError("No usable lead: every lead is missing, flat or masked")
        return x, present, valid


def _longest_run(mask: np.ndarray) -> int:
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
