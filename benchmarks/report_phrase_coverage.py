"""Coverage of the report phrase table (German/Swedish ECG device statements -> English) on the PTB-XL reports.

    python benchmarks/report_phrase_coverage.py [--data ../shared/data] [--examples 5]

Reports of `ptbxl_index.csv`, cleaned without translation (`clean_report(..., english=False)`), grouped by
`report_lang` (de/en/sv) and split (folds 1-8: the set the table was derived from; folds 9 and 10: held out).
Per group:
- `covered`: share of the word tokens (`report_words`: runs of letters) of the cleaned original that fall inside a
  matched phrase of the table or are passthrough words (lead names, abbreviations, words spelled the same in English);
- `english`: share of the word tokens of the translated text found in an English word list (the words of the
  English reports of folds 1-8, the table's English side and its passthrough words);
- `changed`: reports whose text the translation changes (English ones should stay as they are);
- `idempotent`: reports whose translation is unchanged by translating it again;
- the most frequent uncovered words and example translations (fold 10).
Prints a table and writes benchmarks/results/report_phrase_coverage.json. Skips with a message when the data is
absent.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

from cgdmer_hf.reports import clean_report, load_phrase_table, report_words, translate_report, translation_coverage

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
LANGUAGES = ("de", "en", "sv")
SPLITS = {"folds 1-8": range(1, 9), "fold 9": (9,), "fold 10": (10,)}


def read_reports(index: Path) -> list[dict]:
    """Rows `{lang, split, ecg_id, text}` with the cleaned, untranslated report; empty reports left out."""
    split_of = {fold: name for name, folds in SPLITS.items() for fold in folds}
    rows = []
    with open(index, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["report_lang"] not in LANGUAGES:
                continue
            try:
                text = clean_report(r["report"], english=False)
            except ValueError:
                continue
            rows.append({"lang": r["report_lang"], "split": split_of[int(r["strat_fold"])],
                         "ecg_id": int(r["ecg_id"]), "text": text})
    return rows


def english_words(rows: list[dict]) -> set[str]:
    """Words of the English reports of folds 1-8, of the table's English side and its passthrough words."""
    table = load_phrase_table()
    words = {w for r in rows if r["lang"] == "en" and r["split"] == "folds 1-8" for w in report_words(r["text"])}
    words |= {w for english in table.phrases.values() for w in report_words(english)}
    return words | set(table.passthrough)


def group_stats(rows: list[dict], vocabulary: set[str], examples: int) -> dict:
    covered = words = out_english = out_words = changed = idempotent = 0
    uncovered: Counter = Counter()
    shown = []
    for r in rows:
        n_covered, n_words = translation_coverage(r["text"])
        covered, words = covered + n_covered, words + n_words
        english = translate_report(r["text"])
        out = report_words(english)
        out_words += len(out)
        out_english += sum(w in vocabulary for w in out)
        changed += english != r["text"]
        idempotent += translate_report(english) == english
        uncovered.update(w for w in report_words(english) if w not in vocabulary)
        if english != r["text"] and len(shown) < examples and english not in {e["english"] for e in shown}:
            shown.append({"ecg_id": r["ecg_id"], "original": r["text"], "english": english})
    return {
        "reports": len(rows), "words": words, "covered": round(covered / max(words, 1), 4),
        "english": round(out_english / max(out_words, 1), 4), "changed": changed, "idempotent": idempotent,
        "top_uncovered": uncovered.most_common(10), "examples": shown,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                        help="folder with ptbxl_index.csv")
    parser.add_argument("--examples", type=int, default=5, help="example translations per group")
    args = parser.parse_args()
    index = args.data / "ptbxl_index.csv"
    if not index.exists():
        raise SystemExit(f"No ptbxl_index.csv in {args.data}: this benchmark needs ../shared/data; skipped.")
    rows = read_reports(index)
    vocabulary = english_words(rows)
    groups = defaultdict(list)
    for r in rows:
        groups[r["lang"], r["split"]].append(r)
    table = load_phrase_table()
    results = {
        "phrase_table": {"entries": len(table.phrases), "passthrough": len(table.passthrough)},
        "english_vocabulary": len(vocabulary),
        "groups": {f"{lang} {split}": group_stats(groups[lang, split], vocabulary, args.examples)
                   for lang in LANGUAGES for split in SPLITS if groups[lang, split]},
        "notes": "covered: share of word tokens of the cleaned original inside a table phrase or passthrough; "
                 "english: share of translated word tokens in the English word list; the table was derived from "
                 "folds 1-8 only (the text-only csv of ptb-xl-extra is a subset of ptbxl_index.csv).",
    }
    print(f"{'group':<16}{'reports':>8}{'words':>8}{'covered':>9}{'english':>9}{'changed':>9}{'idempotent':>11}")
    for name, g in results["groups"].items():
        print(f"{name:<16}{g['reports']:>8}{g['words']:>8}{g['covered']:>9.1%}{g['english']:>9.1%}"
              f"{g['changed']:>9}{g['idempotent']:>11}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "report_phrase_coverage.json"
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
