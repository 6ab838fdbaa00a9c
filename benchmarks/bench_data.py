"""Data preparation benchmark: read + preprocess all PTB-XL records of ../shared/data into a cached Dataset.

    python benchmarks/bench_data.py [--data ../shared/data] [--num-proc 1 2] [--sampling-rate 100]

For each `num_proc`, a fresh `datasets` cache: `load_ptbxl` (WFDB read, feature extractor, Arrow write) timed as
records/s; then the same call again, which hits the cache (cache-hit time). Also times the CSV-only metadata
pass. Prints a table and writes benchmarks/results/bench_data.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets  # noqa: E402

from cgdmer_hf.data import load_ptbxl, read_ptbxl_metadata  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with ptbxl_index.csv")
    parser.add_argument("--num-proc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sampling-rate", type=int, default=100, choices=(100, 500))
    args = parser.parse_args()
    if not (args.data / "ptbxl_index.csv").exists():
        raise SystemExit(f"No ptbxl_index.csv in {args.data}: this benchmark needs ../shared/data.")
    datasets.disable_progress_bars()
    logging.getLogger("cgdmer_hf.data").setLevel(logging.ERROR)
    options = {"sampling_rate": args.sampling_rate, "drop_duplicates": False, "label_set": "super"}

    load_before = os.getloadavg()[0]
    (records, _), metadata_s = timed(read_ptbxl_metadata, args.data, **options)
    rows = []
    for num_proc in args.num_proc:
        cache = Path(tempfile.mkdtemp(prefix="cgdmer-bench-data-"))
        try:
            (dataset, summary), cold_s = timed(load_ptbxl, args.data, num_proc=num_proc, cache_dir=cache,
                                               return_summary=True, **options)  # fmt: skip
            (again, _), warm_s = timed(load_ptbxl, args.data, num_proc=num_proc, cache_dir=cache,
                                       return_summary=True, **options)  # fmt: skip
            assert again.cache_files == dataset.cache_files, "second call did not reuse the cache"
            size = sum(f.stat().st_size for f in cache.rglob("*.arrow"))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        rows.append({
            "num_proc": num_proc,
            "records": summary.records,
            "skipped": len(summary.skipped),
            "prepare_s": round(cold_s, 2),
            "records_per_s": round(summary.records / cold_s, 1),
            "cache_hit_s": round(warm_s, 3),
            "arrow_mib": round(size / 2**20, 1),
        })  # fmt: skip

    print(f"PTB-XL from {args.data}: {len(records)} records listed at {args.sampling_rate} Hz "
          f"(CSV-only metadata pass {metadata_s:.2f} s)")  # fmt: skip
    header = f"{'num_proc':>8} {'records':>8} {'skipped':>8} {'prepare s':>10} {'records/s':>10} {'cache hit s':>12}"
    print(header)
    for r in rows:
        print(f"{r['num_proc']:>8} {r['records']:>8} {r['skipped']:>8} {r['prepare_s']:>10} {r['records_per_s']:>10} "
              f"{r['cache_hit_s']:>12}")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "bench_data",
        "data": str(args.data),
        "sampling_rate": args.sampling_rate,
        "listed_records": len(records),
        "metadata_pass_s": round(metadata_s, 3),
        "runs": rows,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "datasets": datasets.__version__},
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "notes": "Wall-clock on a shared 2-core machine (other jobs running: see load_average_1min); the cache-hit "
        "time includes the fingerprint and the summary pass.",
    }  # fmt: skip
    (RESULTS / "bench_data.json").write_text(json.dumps(result, indent=2))
    print(f"load average (1 min) before/after: {load_before:.2f}/{os.getloadavg()[0]:.2f}")
    print(f"wrote {RESULTS / 'bench_data.json'}")


if __name__ == "__main__":
    main()
