"""`cgdmer prepare`: saved dataset, summary table and JSON, output-folder safety, clear layout errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import load_from_disk
from fixtures.data_layouts import (
    CPSC_SAMPLE_DIR,
    SAMPLE_DIR,
    build_mimic_layout,
    copy_ptbxl,
    corrupt_truncate,
    sample_rows,
)

from cgdmer_hf.cli import main
from cgdmer_hf.data import detect_layout, label_names, read_ptbxl_metadata


@pytest.fixture(scope="module")
def small_ptbxl(tmp_path_factory):
    ids = sorted(int(float(r["ecg_id"])) for r in sample_rows())[:8]
    return copy_ptbxl(tmp_path_factory.mktemp("ptbxl"), ids)


def test_prepare_ptbxl(small_ptbxl, tmp_path, capsys):
    out = tmp_path / "prepared"
    code = main(["prepare", str(small_ptbxl), "--output", str(out), "--label-set", "super",
                 "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    assert code == 0
    dataset = load_from_disk(str(out))
    records, names = read_ptbxl_metadata(small_ptbxl)
    assert dataset["record_id"][:] == [r["record_id"] for r in records] and label_names(dataset) == names
    summary = json.loads((out / "prepare_summary.json").read_text())
    assert summary["records"] == len(records) and summary["skipped"] == [] and summary["layout"] == "ptbxl"
    expected = np.sum([r["labels"] for r in records], 0).astype(int).tolist()
    assert list(summary["label_counts"].values()) == expected and summary["report_coverage"] == 1.0
    printed = capsys.readouterr().out
    assert "report coverage" in printed and "NORM" in printed and str(out) in printed
    # --overwrite replaces a previous prepared dataset, here with the training folds and rhythm labels
    code = main(["prepare", str(small_ptbxl), "-o", str(out), "--split", "train", "--label-set", "rhythm",
                 "--cache-dir", str(tmp_path), "--overwrite"])  # fmt: skip
    again = load_from_disk(str(out))
    assert code == 0 and set(again["fold"][:]) <= set(range(1, 9)) and len(label_names(again)) == 12


def test_prepare_reports_skipped_records(small_ptbxl, tmp_path, capsys):
    root = copy_ptbxl(tmp_path / "damaged", [int(r["record_id"]) for r in read_ptbxl_metadata(small_ptbxl)[0]])
    bad = read_ptbxl_metadata(root)[0][2]
    corrupt_truncate(Path(bad["path"]))
    out = tmp_path / "out"
    assert main(["prepare", str(root), "-o", str(out), "--cache-dir", str(tmp_path / "c")]) == 0
    summary = json.loads((out / "prepare_summary.json").read_text())
    assert [s["path"] for s in summary["skipped"]] == [bad["path"]]
    assert summary["records"] == len(read_ptbxl_metadata(root)[0]) - 1
    assert bad["path"] in capsys.readouterr().out
    code = main(["prepare", str(root), "-o", str(tmp_path / "out2"), "--on-error", "raise",
                 "--cache-dir", str(tmp_path / "c2")])  # fmt: skip
    assert code == 2 and bad["path"] in capsys.readouterr().err


def test_prepare_cinc_with_a_saved_feature_extractor(tmp_path):
    from cgdmer_hf.feature_extraction_cgdmer import CGDMERFeatureExtractor

    CGDMERFeatureExtractor(duration=5.0).save_pretrained(tmp_path / "model")
    out = tmp_path / "cpsc"
    code = main(["prepare", str(CPSC_SAMPLE_DIR), "-o", str(out), "--feature-extractor", str(tmp_path / "model"),
                 "--cache-dir", str(tmp_path / "c")])  # fmt: skip
    dataset = load_from_disk(str(out))
    assert code == 0 and label_names(dataset)[:2] == ["NORM", "AF"]
    assert dataset.features["ecg_values"].shape == (12, 500)
    assert json.loads((out / "prepare_summary.json").read_text())["label_set"] == "cpsc2018"


def test_output_folder_safety_and_layout_errors(small_ptbxl, tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("keep me")
    assert main(["prepare", str(small_ptbxl), "-o", str(busy)]) == 2
    assert "not empty" in capsys.readouterr().err and (busy / "thesis.tex").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["prepare", str(empty), "-o", str(tmp_path / "x")]) == 2
    assert "missing ptbxl_database.csv" in capsys.readouterr().err
    assert main(["prepare", str(empty), "--layout", "mimic", "-o", str(tmp_path / "x")]) == 2
    assert "missing record_list.csv" in capsys.readouterr().err
    assert main(["prepare", str(small_ptbxl), "-o", str(small_ptbxl / "inside")]) == 2
    assert detect_layout(SAMPLE_DIR) == "ptbxl" and detect_layout(CPSC_SAMPLE_DIR) == "cinc"


def test_prepare_mimic_layout_fixture(tmp_path):
    root = build_mimic_layout(tmp_path / "mimic-layout-fixture", n_records=3)
    out = tmp_path / "mimic"
    assert main(["prepare", str(root), "-o", str(out), "--cache-dir", str(tmp_path / "c")]) == 0
    summary = json.loads((out / "prepare_summary.json").read_text())
    assert summary["layout"] == "mimic" and summary["records"] == 3 and summary["reports"] == 2
    assert load_from_disk(str(out))["labels"][:] == [[], [], []]
    assert main(["prepare", str(root), "-o", str(tmp_path / "m2"), "--split", "test"]) == 2


def test_every_reader_declares_itself_in_one_place():
    """Layout detection, `cgdmer prepare --layout`, the evaluation's data loading and the prompt sets read the
    readers' `READER` declarations."""
    from cgdmer_hf.commands import prepare
    from cgdmer_hf.data import DEFAULT_LABEL_SETS, LOADERS, READERS, dataset_name
    from cgdmer_hf.prompts import PROMPT_SETS, label_set_prompts

    assert list(READERS) == ["ptbxl", "mimic", "cinc"]
    assert LOADERS == {name: r.load for name, r in READERS.items()}
    assert DEFAULT_LABEL_SETS == {"ptbxl": "super", "mimic": None, "cinc": "cpsc2018"}
    assert detect_layout(SAMPLE_DIR) == "ptbxl" and detect_layout(CPSC_SAMPLE_DIR) == "cinc"
    assert [dataset_name(s) for s in ("super", "all", "cpsc2018", "chapman", "nothing")] == [
        "PTB-XL", "PTB-XL", "CPSC2018", "Chapman-Shaoxing-Ningbo", None]
    import argparse

    parser = argparse.ArgumentParser()
    prepare.add_arguments(parser)
    assert next(a for a in parser._actions if a.dest == "layout").choices == tuple(READERS)
    assert label_set_prompts() == {"super": "ptbxl_super", "sub": "ptbxl_sub", "form": "ptbxl_form",
                                   "rhythm": "ptbxl_rhythm", "cpsc2018": "cpsc2018"}
    shipped = Path(__file__).resolve().parents[1] / "cgdmer_hf" / "resources" / "prompts"
    assert set(PROMPT_SETS) == {p.stem for p in shipped.glob("*.json")}
