"""Regenerate the shipped report tokenizer `cgdmer_hf/resources/tokenizer/`.

    python scripts/train_default_tokenizer.py [--index ../shared/data/ptbxl_index.csv] [--vocab-size 4096]

Trains on the cleaned PTB-XL reports of strat_fold 1-8 only (no validation or test-fold text), without the
`dropped_in_v103` duplicates, their German and Swedish statements translated to English (`clean_report`'s
default). Same data and settings give an equivalent tokenizer, not a byte-identical one:
`tokenizers`' WordPiece trainer breaks count ties in hash-map order (huggingface/tokenizers#1794); two runs
tokenise ~99 % of the PTB-XL reports identically. The shipped files are the reference.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from cgdmer_hf.reports import DEFAULT_TOKENIZER_DIR, SPECIAL_TOKENS, train_report_tokenizer

REPO = Path(__file__).resolve().parents[1]
TRAIN_FOLDS = set(range(1, 9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=REPO.parent / "shared" / "data" / "ptbxl_index.csv")
    parser.add_argument("--out", type=Path, default=DEFAULT_TOKENIZER_DIR)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--min-frequency", type=int, default=2)
    args = parser.parse_args()
    with open(args.index, newline="", encoding="utf-8") as f:
        rows = [
            r for r in csv.DictReader(f)
            if int(r["strat_fold"]) in TRAIN_FOLDS and r["dropped_in_v103"] != "1"
        ]
    texts = [r["report"] for r in rows]
    tokenizer = train_report_tokenizer(texts, vocab_size=args.vocab_size, min_frequency=args.min_frequency)
    tokenizer.save_pretrained(str(args.out))
    info = {
        "source": "PTB-XL reports (ptbxl_index.csv of ../shared/data), strat_fold 1-8, dropped_in_v103 removed",
        "text": "clean_report (device statements translated to English, resources/report_phrases_en.json)",
        "num_reports": len(texts),
        "vocab_size_requested": args.vocab_size,
        "min_frequency": args.min_frequency,
        "reproducibility": "not byte-identical across runs (huggingface/tokenizers#1794)",
        "vocab_size": len(tokenizer),
        "special_tokens": {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS},
    }
    (args.out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
