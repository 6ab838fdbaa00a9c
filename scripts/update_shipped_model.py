"""Rewrite the code files of the shipped model folder `cgdmer-base/` (and the top-level `MODEL_CARD.md`) from the
package, with the package's own save machinery; the weights, configs, tokenizer and card stay as they are.

    python scripts/update_shipped_model.py [--model cgdmer-base] [--check]

`cgdmer-base/*.py` are what `save_pretrained` / `register_for_auto_class` copy into a model folder (the remote code
that `trust_remote_code=True` runs). They must equal the package's model files: `tests/test_shipped_model.py`
fails when they differ (e.g. after a change to `cgdmer_hf/modeling_cgdmer.py`), naming this command. The model
is loaded with the package classes, saved with `cgdmer_hf.hub.save_model_dir` into a temporary folder, and only
the code files written there are copied back; then the folder is loaded again and its outputs on the bundled
sample compared with those before (they must be identical). `--check` only reports what differs (exit code 1).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def code_files_to_write(model_dir: Path) -> dict[str, bytes]:
    """The code files the package's save machinery writes for `model_dir`'s model, processor and pipeline."""
    import torch

    from cgdmer_hf import CGDMERForPreTraining, CGDMERProcessor
    from cgdmer_hf.hub import save_model_dir

    model = CGDMERForPreTraining.from_pretrained(str(model_dir), dtype=torch.float32)
    processor = CGDMERProcessor.from_pretrained(str(model_dir))
    with tempfile.TemporaryDirectory(prefix="cgdmer-ship-") as tmp:
        save_model_dir(tmp, model, processor)
        return {p.name: p.read_bytes() for p in sorted(Path(tmp).glob("*.py"))}


def outputs(model_dir: Path):
    """Zero-shot scores and ECG features of the folder's model on two bundled sample records."""
    import torch
    from transformers import pipeline

    import cgdmer_hf
    from cgdmer_hf.samples import sample_record_path

    classifier = pipeline("zero-shot-ecg-classification", model=str(model_dir))
    scores = [classifier(sample_record_path(i), candidate_labels=cgdmer_hf.load_prompt_set("ptbxl_super"))
              for i in (2, 3)]
    inputs = classifier.feature_extractor([str(sample_record_path(i)) for i in (2, 3)], return_tensors="pt")
    with torch.no_grad():
        features = classifier.model.get_ecg_representation(**inputs)
    return scores, features


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "cgdmer-base")
    parser.add_argument("--check", action="store_true", help="report the files that differ, change nothing")
    args = parser.parse_args()
    import torch

    written = code_files_to_write(args.model)
    stale = sorted(p.name for p in args.model.glob("*.py") if p.name not in written)
    changed = [name for name, data in written.items()
               if not (args.model / name).is_file() or (args.model / name).read_bytes() != data]
    card, shipped_card = REPO / "MODEL_CARD.md", args.model / "README.md"
    card_stale = shipped_card.is_file() and (not card.is_file() or card.read_bytes() != shipped_card.read_bytes())
    if args.check:
        for name in changed + stale + (["MODEL_CARD.md"] if card_stale else []):
            print(f"differs: {name}")
        return 1 if changed or stale or card_stale else 0
    before = outputs(args.model)
    for name in changed:
        (args.model / name).write_bytes(written[name])
    for name in stale:
        (args.model / name).unlink()
    if card_stale:
        shutil.copyfile(shipped_card, card)
    after = outputs(args.model)
    if before[0] != after[0] or not torch.equal(before[1], after[1]):
        print("The model's outputs changed after the update", file=sys.stderr)
        return 1
    print(f"updated {changed + stale or 'nothing'}{' and MODEL_CARD.md' if card_stale else ''}; outputs unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
