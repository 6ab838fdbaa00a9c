"""Preprocessing benchmark: records/s from a 500 Hz WFDB file to model input, one process and all cores, and where the time goes.

    python benchmarks/bench_preprocessing.py [--data ../shared/data] [--limit 0] [--repeats 2]

Records: the 500 Hz PTB-XL files of ../shared/data (`ptb-xl` and `ptb-xl-extra`), or the bundled sample when that
is absent. End-to-end = `CGDMERFeatureExtractor()(path)` one record per call (and 32 per call), and
32 per call in `--num-proc` forked processes (default: one per CPU; pool start-up included); the split times the
extractor's own stages on the same records: reading (`read_wfdb_record`), lead reorder + NaN check, resampling
(500 -> 100 Hz polyphase), band-pass filtering, crop/pad + normalisation. For reference it also times
`wfdb.rdrecord` on the same files (the extractor's reader skips wfdb's pandas-based header parsing for plain
format-16 files). Prints a table and writes benchmarks/results/bench_preprocessing.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import scipy
import wfdb

from cgdmer_hf.feature_extraction_cgdmer import CGDMERFeatureExtractor, read_wfdb_record
from cgdmer_hf.samples import load_sample_index, sample_record_path

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def record_paths(data: Path, limit: int) -> tuple[list[str], str]:
    index = data / "ptbxl_index.csv"
    if index.exists():
        with open(index, newline="", encoding="utf-8") as f:
            paths = [str(data / r["folder"] / r["filename_hr"]) for r in csv.DictReader(f) if r["filename_hr"]]
        source = f"{data} (PTB-XL 500 Hz)"
    else:
        paths = [sample_record_path(r["ecg_id"], 500) for r in load_sample_index() if r["filename_hr"]]
        source = "bundled sample (PTB-XL 500 Hz)"
    return (paths[:limit] if limit else paths), source


def end_to_end(fe: CGDMERFeatureExtractor, paths: list[str], batch: int) -> tuple[float, float]:
    """(wall-clock s, CPU s of this process) to preprocess all `paths`, `batch` per call."""
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(paths), batch):
        fe(paths[i : i + batch] if batch > 1 else paths[i])
    return time.perf_counter() - start, time.process_time() - cpu


def _extract_chunk(paths: list[str]) -> int:
    """Worker: preprocess `paths` 32 per call with default settings; returns how many were done."""
    fe = CGDMERFeatureExtractor()
    for i in range(0, len(paths), 32):
        fe(paths[i : i + 32])
    return len(paths)


def parallel(paths: list[str], num_proc: int) -> float:
    """Wall-clock s to preprocess all `paths` in `num_proc` forked worker processes (pool start included)."""
    import multiprocessing

    chunks = [paths[i::num_proc] for i in range(num_proc)]
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(num_proc) as pool:
        done = sum(pool.map(_extract_chunk, chunks))
    assert done == len(paths)
    return time.perf_counter() - start


def stage_split(fe: CGDMERFeatureExtractor, paths: list[str]) -> dict[str, float]:
    """Seconds spent in each stage over all records (the same calls as `fe.__call__` makes)."""
    totals = dict.fromkeys(["read", "reorder+nan", "resample", "filter", "crop+normalise"], 0.0)
    for path in paths:
        t0 = time.perf_counter()
        x, fs, names = read_wfdb_record(path)
        t1 = time.perf_counter()
        x, present = fe.reorder_leads(x, names)
        x = fe.repair_nans(x, fs, present)
        t2 = time.perf_counter()
        x = fe.resample(fe.notch(x, fs), fs)
        t3 = time.perf_counter()
        x = fe.bandpass(x)
        t4 = time.perf_counter()
        x, valid = fe.crop_or_pad(x, fe.crop, None)
        fe.normalize(x, valid, present).astype(np.float32)
        t5 = time.perf_counter()
        for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            totals[key] += dt
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with ptbxl_index.csv")
    parser.add_argument("--limit", type=int, default=0, help="use the first N records (0 = all)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes; the best is reported")
    parser.add_argument("--num-proc", type=int, default=os.cpu_count() or 1,
                        help="worker processes of the parallel row (default: all CPUs)")
    args = parser.parse_args()
    paths, source = record_paths(args.data, args.limit)
    fe = CGDMERFeatureExtractor()
    end_to_end(fe, paths[:20], 1)  # warm-up: imports, filter design, page cache

    single, single_cpu = min(end_to_end(fe, paths, 1) for _ in range(args.repeats))
    batched, batched_cpu = min(end_to_end(fe, paths, 32) for _ in range(args.repeats))
    multi = min(parallel(paths, args.num_proc) for _ in range(args.repeats))
    splits = [stage_split(fe, paths) for _ in range(args.repeats)]
    split = min(splits, key=lambda s: sum(s.values()))
    n_wfdb = min(len(paths), 200)
    start = time.perf_counter()
    for path in paths[:n_wfdb]:
        wfdb.rdrecord(path)
    wfdb_ms = (time.perf_counter() - start) / n_wfdb * 1e3

    n = len(paths)
    staged = sum(split.values())
    print(f"{n} records from {source}; CGDMERFeatureExtractor() defaults (100 Hz, 10 s, band-pass, z-score)")
    print(f"{'mode':<28} {'records/s':>10} {'ms/record':>10} {'records/CPU-s':>14}")
    print(f"{'end-to-end, 1 per call':<28} {n / single:>10.1f} {single / n * 1e3:>10.3f} {n / single_cpu:>14.1f}")
    print(f"{'end-to-end, 32 per call':<28} {n / batched:>10.1f} {batched / n * 1e3:>10.3f} {n / batched_cpu:>14.1f}")
    print(f"{f'{args.num_proc} processes, 32 per call':<28} {n / multi:>10.1f} {multi / n * 1e3:>10.3f} {'':>14}")
    print(f"{'stage':<28} {'ms/record':>10} {'share':>10}")
    for key, total in split.items():
        print(f"{key:<28} {total / n * 1e3:>10.3f} {total / staged:>10.1%}")
    print(f"{'(reference) wfdb.rdrecord':<28} {wfdb_ms:>10.3f}   on {n_wfdb} of the files")
    print(f"load average during the run: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} CPUs")

    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "bench_preprocessing",
        "source": source,
        "records": n,
        "records_per_s_single": round(n / single, 1),
        "records_per_s_batch32": round(n / batched, 1),
        "num_proc": args.num_proc,
        "records_per_s_parallel": round(n / multi, 1),
        "ms_per_record_single": round(single / n * 1e3, 3),
        "records_per_cpu_s_single": round(n / single_cpu, 1),
        "records_per_cpu_s_batch32": round(n / batched_cpu, 1),
        "stage_ms_per_record": {k: round(v / n * 1e3, 3) for k, v in split.items()},
        "stage_share": {k: round(v / staged, 3) for k, v in split.items()},
        "wfdb_rdrecord_ms_per_record": round(wfdb_ms, 3),
        "extractor": fe.to_dict(),
        "load_average_1_5_15min": [round(v, 2) for v in os.getloadavg()],
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "scipy": scipy.__version__, "wfdb": wfdb.__version__},
        "notes": f"Wall-clock, one process, best of {args.repeats} passes, on a 2-core machine shared with other "
                 "jobs (see load_average); records/CPU-s divides by this process's CPU time, which contention "
                 "inflates less. Files in the page cache after the warm-up.",
    }  # fmt: skip
    (RESULTS / "bench_preprocessing.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'bench_preprocessing.json'}")


if __name__ == "__main__":
    main()
