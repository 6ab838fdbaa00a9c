"""Regenerate the bundled sample `cgdmer_hf/sample_data/` from ../shared/data (deterministic).

    python scripts/make_sample.py [--shared ../shared/data] [--out cgdmer_hf/sample_data]

PTB-XL: 50 records of the `ptb-xl` folder (official 100 Hz and 500 Hz files, v1.0.1 metadata), 30 from
strat_fold 1-8, 10 from fold 9 and 10 from fold 10, no `dropped_in_v103` duplicate, no empty report. Each
group holds every diagnostic superclass and the German, English and Swedish reports; the training group
spreads over folds 1-8. All 50 ship at 100 Hz; the 500 Hz file ships for the fold 9 and 10 records and 6
training records (the whole sample stays under ~6 MB). CPSC2018: the 60 s record A0113 plus the shortest
record of five classes.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
from pathlib import Path

SUPERCLASSES = ["HYP", "CD", "MI", "STTC", "NORM"]  # rarest first
LANGUAGES = ["sv", "en", "de"]
GROUPS = {  # name: (folds, size, minimum records per superclass, records shipped at 500 Hz)
    "train": (set(range(1, 9)), 30, 3, 6),
    "val": ({9}, 10, 2, 10),
    "test": ({10}, 10, 2, 10),
}
CPSC_LONG = "A0113"
CPSC_CLASSES = ["Normal", "AF", "RBBB", "LBBB", "PVC"]
SEED = 0
REPO = Path(__file__).resolve().parents[1]


def select_group(rows: list[dict], folds: set[int], size: int, per_class: int, rng: random.Random) -> list[dict]:
    pool = [r for r in rows if int(r["strat_fold"]) in folds]
    rng.shuffle(pool)
    chosen: list[dict] = []

    def take(pred) -> None:
        for r in pool:
            if r not in chosen and pred(r):
                chosen.append(r)
                return
        raise RuntimeError("no candidate left for the sample")

    for cls in SUPERCLASSES:
        while sum(r[cls] == "1" for r in chosen) < per_class:
            take(lambda r, c=cls: r[c] == "1")
    for lang in LANGUAGES:
        if not any(r["report_lang"] == lang for r in chosen):
            take(lambda r, lang=lang: r["report_lang"] == lang)
    ordered_folds = sorted(folds)
    i = 0
    while len(chosen) < size:  # fill round-robin over the folds
        fold = ordered_folds[i % len(ordered_folds)]
        if any(int(r["strat_fold"]) == fold and r not in chosen for r in pool):
            take(lambda r, f=fold: int(r["strat_fold"]) == f)
        i += 1
    return chosen


def copy_record(src_root: Path, rel: str, out: Path) -> None:
    for ext in (".hea", ".dat"):
        dst = out / (rel + ext)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src_root / (rel + ext), dst)


def make_ptbxl(shared: Path, out: Path) -> list[dict]:
    with open(shared / "ptbxl_index.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames
        rows = [
            r for r in reader
            if r["folder"] == "ptb-xl" and r["dropped_in_v103"] == "0" and r["report"].strip() and r["filename_hr"]
        ]
    rng = random.Random(SEED)
    sample: list[dict] = []
    for name, (folds, size, per_class, n_hr) in GROUPS.items():
        group = select_group(rows, folds, size, per_class, rng)
        for k, r in enumerate(group):
            r = dict(r, folder=".")
            if k >= n_hr:
                r["filename_hr"] = ""
            sample.append(r)
    sample.sort(key=lambda r: int(r["ecg_id"]))
    src = shared / "ptb-xl"
    for r in sample:
        copy_record(src, r["filename_lr"], out)
        if r["filename_hr"]:
            copy_record(src, r["filename_hr"], out)
    with open(out / "index.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(sample)
    # A PTB-XL layout of its own: the official metadata rows of the sampled ids (filename_hr blanked where the
    # 500 Hz file is not shipped) and the official statements table.
    hr = {r["ecg_id"]: r["filename_hr"] for r in sample}
    with open(src / "ptbxl_database.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        db_columns = reader.fieldnames
        db_rows = [dict(r, filename_hr=hr[r["ecg_id"]]) for r in reader if r["ecg_id"] in hr]
    with open(out / "ptbxl_database.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=db_columns)
        writer.writeheader()
        writer.writerows(db_rows)
    shutil.copyfile(src / "scp_statements.csv", out / "scp_statements.csv")
    shutil.copyfile(src / "LICENSE.txt", out / "LICENSE-PTB-XL.txt")
    return sample


def _cpsc_header(path: Path) -> dict:
    lines = path.read_text(encoding="utf-8").splitlines()
    name, _, fs, n = lines[0].split()[:4]
    meta = {k.strip("# "): v.strip() for k, v in (ln.split(":", 1) for ln in lines if ln.startswith("#"))}
    return {
        "record": name, "sampling_rate": fs, "num_samples": n, "duration_s": f"{int(n) / float(fs):g}",
        "dx": meta.get("Dx", ""), "age": meta.get("Age", ""), "sex": meta.get("Sex", ""),
    }


def make_cpsc(shared: Path, out: Path) -> list[dict]:
    src = shared / "cpsc2018-cinc2020"
    headers = [_cpsc_header(p) for p in sorted(src.glob("A*.hea"))]
    chosen = [h for h in headers if h["record"] == CPSC_LONG]
    for cls in CPSC_CLASSES:
        single = [h for h in headers if h["dx"] == cls and h not in chosen]
        chosen.append(min(single, key=lambda h: (int(h["num_samples"]), h["record"])))
    dst = out / "cpsc2018"
    dst.mkdir(parents=True, exist_ok=True)
    for h in chosen:
        for ext in (".hea", ".mat"):
            shutil.copyfile(src / (h["record"] + ext), dst / (h["record"] + ext))
    with open(dst / "index.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(chosen[0]))
        writer.writeheader()
        writer.writerows(chosen)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "cgdmer_hf" / "sample_data")
    args = parser.parse_args()
    for sub in ("records100", "records500", "cpsc2018"):
        shutil.rmtree(args.out / sub, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    ptbxl = make_ptbxl(args.shared, args.out)
    cpsc = make_cpsc(args.shared, args.out)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    folds = sorted({int(r["strat_fold"]) for r in ptbxl})
    print(f"PTB-XL: {len(ptbxl)} records ({sum(bool(r['filename_hr']) for r in ptbxl)} also at 500 Hz), folds {folds}")
    for cls in ["NORM", "MI", "STTC", "CD", "HYP"]:
        print(f"  {cls}: {sum(r[cls] == '1' for r in ptbxl)}")
    print(f"CPSC2018: {[(h['record'], h['dx'], h['duration_s']) for h in cpsc]}")
    print(f"total size {size / 1e6:.2f} MB in {args.out}")


if __name__ == "__main__":
    main()
