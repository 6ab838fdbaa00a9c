"""The real-data benchmark scripts: their skip message without data; for the PTB-XL mini benchmark, its guard
against mixing budgets in one table, the tables it writes (zero-shot columns: plain class names first, then the
prompts chosen on fold 9; calibration and retrieval tables; old results without them) and its model-card rows."""

import importlib.util
import json
import sys

import pytest

from conftest import REPO_ROOT


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ptbxl_mini():
    return load_script("ptbxl_mini")


def run_main(module, monkeypatch, *argv: str) -> int:
    monkeypatch.setattr(sys, "argv", ["script.py", *argv])
    return module.main()


@pytest.mark.parametrize("script", ["ptbxl_mini", "masked_ecg_curve", "loss_balance"])
def test_skips_with_message_without_data(script, monkeypatch, tmp_path, capsys):
    module = load_script(script)
    assert run_main(module, monkeypatch, "--data", str(tmp_path), "--results-dir", str(tmp_path / "r")) == 0
    assert "SKIP: PTB-XL data not found" in capsys.readouterr().out
    assert not (tmp_path / "r").exists()


def test_refuses_to_mix_budgets_in_one_table(ptbxl_mini, monkeypatch, tmp_path):
    (tmp_path / "ptbxl_index.csv").write_text("ecg_id\n")
    results = tmp_path / "results"
    results.mkdir()
    (results / "ptbxl_mini.json").write_text(json.dumps({"max_steps": 600, "rows": {"cgdmer": {}}}))
    with pytest.raises(SystemExit, match="max_steps.*600, 50.*--results-dir"):
        run_main(ptbxl_mini, monkeypatch, "--data", str(tmp_path), "--results-dir", str(results),
                 "--max-steps", "50")


def _zero_shot(dataset, selection, auc, **extra):
    return {"task": "zero-shot", "dataset": dataset, "label_set": dataset, "prompt_selection": selection,
            "roc_auc": auc, "ci95": [auc - 0.01, auc + 0.01], **extra}


def _results(evaluation, **row):
    return {"machine": "CPU", "preset": "small", "max_steps": 600, "batch_size": 32, "seeds": [0, 1],
            "test_records": {"super": 328, "cpsc2018": 150},
            "rows": {"cgdmer": {"training": {"seconds": 1.0}, "evaluation": evaluation, "description": "full",
                                **row}}}


def _cells(table: str, start: str = "| cgdmer") -> list[str]:
    row = next(line for line in table.splitlines() if line.startswith(start))
    return [c.strip() for c in row.strip("|").split("|")]


def test_table_of_old_results_without_plain_names(ptbxl_mini):
    evaluation = [_zero_shot("super", "ensemble", 0.6), _zero_shot("super", "fold 9", 0.7),
                  _zero_shot("cpsc2018", "ensemble", 0.65),
                  {"task": "linear-probe", "fraction": 0.01, "seed": 0, "roc_auc": 0.78, "ci95": None},
                  {"task": "linear-probe", "fraction": 0.01, "seed": 1, "roc_auc": 0.80, "ci95": None}]
    main_table, ensemble_table = ptbxl_mini.markdown(_results(evaluation)).split("With the full ensemble")
    cells = _cells(main_table)
    assert cells[2] == "– / 0.700" and cells[6] == "– / 0.650"  # super: plain names absent, fold 9; CPSC2018
    assert cells[3] == "– / –"  # sub was not evaluated
    assert cells[7] == "0.790 ± 0.010"  # probe 1 %: mean ± std over the two seeds
    assert _cells(ensemble_table)[1].startswith("0.600")
    assert _cells(main_table.split("STACH")[1])[1:] == ["–"] * 4  # no plain-name or calibration results
    assert _cells(main_table.split("report→ECG")[1])[2:] == ["–"] * 6  # no retrieval


def test_table_shows_plain_names_first_calibration_and_retrieval(ptbxl_mini):
    calibration = {"ece": 0.21, "brier": 0.18, "ece_calibrated": 0.03, "brier_calibrated": 0.12}
    evaluation = [_zero_shot("super", "plain names", 0.81, calibration=calibration),
                  _zero_shot("super", "fold 9", 0.84), _zero_shot("cpsc2018", "plain names", 0.76),
                  _zero_shot("cpsc2018", "ensemble", 0.7),
                  _zero_shot("rhythm", "plain names", 0.8, per_class={"STACH": 0.93, "SBRAD": 0.91, "SR": 0.7})]
    recall = {"R@1": 0.1, "R@5": 0.3, "R@10": 0.5}
    retrieval = [{"task": "retrieval", "encoder": "pretrained", "ecg_to_report": recall, "report_to_ecg": recall},
                 {"task": "retrieval", "encoder": "random_init", "ecg_to_report": recall,
                  "report_to_ecg": {"R@1": 0.0, "R@5": 0.01, "R@10": 0.02}}]
    table = ptbxl_mini.markdown(_results(evaluation, retrieval=retrieval))
    cells = _cells(table)
    assert cells[2] == "0.810 [0.800, 0.820] / 0.840" and cells[6] == "0.760 [0.750, 0.770] / 0.700"
    assert _cells(table.split("STACH")[1])[1:] == ["0.930", "0.910", "0.210 → 0.030", "0.180 → 0.120"]
    after = table.split("report→ECG")[1]
    assert _cells(after, "| cgdmer | pretrained")[2:] == ["0.100", "0.300", "0.500"] * 2
    assert _cells(after, "| cgdmer | random_init")[5:] == ["0.000", "0.010", "0.020"]


def test_card_rows_name_plain_names_and_drop_the_ptbxl_ensemble(ptbxl_mini):
    evaluation = [_zero_shot("super", "plain names", 0.81), _zero_shot("super", "fold 9", 0.84),
                  _zero_shot("super", "ensemble", 0.8), _zero_shot("cpsc2018", "plain names", 0.76),
                  _zero_shot("cpsc2018", "ensemble", 0.7),
                  {"task": "linear-probe", "dataset": "super", "label_set": "super", "fraction": 0.1, "seed": 0,
                   "roc_auc": 0.8}]
    rows = [(r["task"], r["dataset"], r["value"]) for r in ptbxl_mini.card_rows(evaluation)]
    assert rows == [("zero-shot plain names", "PTB-XL super", 0.81), ("zero-shot", "PTB-XL super", 0.84),
                    ("zero-shot plain names", "CPSC2018", 0.76), ("zero-shot", "CPSC2018", 0.7),
                    ("linear-probe 10%", "PTB-XL super", 0.8)]


def test_a_finished_row_is_evaluated_again_never_retrained_or_deleted(ptbxl_mini, tmp_path):
    """A row whose pretraining finished (final model, trainer state at the budget) but whose evaluation did not is
    evaluated from its folder; a folder that is neither finished nor resumable is refused, not deleted."""
    from types import SimpleNamespace

    run = tmp_path / "runs" / "cgdmer"
    run.mkdir(parents=True)
    (run / "model.safetensors").write_bytes(b"weights")
    state = {"max_steps": 50, "global_step": 50, "best_model_checkpoint": str(run / "checkpoint-50"),
             "best_metric": 9.5, "log_history": [{"loss": 12.0, "step": 25}, {"loss": 10.0, "step": 50},
                                                 {"train_runtime": 123.45, "step": 50}]}
    (run / "trainer_state.json").write_text(json.dumps(state))
    args = SimpleNamespace(work_dir=tmp_path / "runs", max_steps=50, force=False)
    spec = {"description": "full", "overrides": {}}
    out, training = ptbxl_mini.pretrain_row("cgdmer", spec, "tiny", {}, args)
    assert out == run and (run / "model.safetensors").read_bytes() == b"weights"
    assert training["steps"] == 50 and training["seconds"] == 123.5 and training["last_logged"]["loss"] == 10.0
    state["global_step"] = 20  # stopped early, and no checkpoint to resume from
    (run / "trainer_state.json").write_text(json.dumps(state))
    with pytest.raises(SystemExit, match="neither a finished nor a resumable run of 50 steps.*--force"):
        ptbxl_mini.pretrain_row("cgdmer", spec, "tiny", {}, args)
    assert (run / "model.safetensors").exists()


def test_zero_shot_scores_of_each_prompt_selection_are_kept(ptbxl_mini, tmp_path):
    """Two prompt selections name their zero-shot scores alike; the tag keeps both (the second used to overwrite
    the first), labels are stored once, untagged, and other rows' keys are left as they were."""
    import numpy as np

    labels = np.array([[1.0, 0.0], [0.0, 1.0]])
    ptbxl_mini.save_test_scores("cgdmer", "super", {"labels": labels, "zero-shot_pretrained": labels * 0.5},
                                tmp_path, "fold 9")  # fmt: skip
    ptbxl_mini.save_test_scores("cgdmer", "super", {"labels": labels, "zero-shot_pretrained": labels * 0.25},
                                tmp_path, "plain names")  # fmt: skip
    ptbxl_mini.save_test_scores("cgdmer", "super", {"linear-probe_pretrained_100pct_seed0": labels}, tmp_path)
    stored = dict(np.load(tmp_path / "ptbxl_mini_scores" / "cgdmer.npz"))
    assert sorted(stored) == ["super/labels", "super/linear-probe_pretrained_100pct_seed0",
                              "super/zero-shot_pretrained [fold 9]", "super/zero-shot_pretrained [plain names]"]
    assert stored["super/zero-shot_pretrained [fold 9]"].max() == 0.5
    assert stored["super/zero-shot_pretrained [plain names]"].max() == 0.25


@pytest.mark.parametrize("wording", ["PACE=", "PACE", "=pacemaker"])
def test_zero_shot_scoring_refuses_a_wording_without_text(wording, monkeypatch, tmp_path, capsys):
    module = load_script("zero_shot_scoring")
    with pytest.raises(SystemExit):
        run_main(module, monkeypatch, "--data", str(tmp_path), "--wording", wording)
    assert "--wording takes CODE=TEXT with both parts" in capsys.readouterr().err


def test_bench_pretrain_bf16_gain_is_the_ratio_of_medians_and_results_keep_other_modes(tmp_path):
    bench = load_script("bench_pretrain")
    row = dict(preset="small", design="default", device="CPU")
    rows = [dict(row, precision=p, pairs_per_s=v) for p, v in
            [("fp32", 30.0), ("bf16", 70.0), ("fp32", 40.0), ("bf16", 80.0), ("fp32", 35.0), ("bf16", 90.0)]]
    rows.append(dict(row, preset="base", precision="fp32", pairs_per_s=2.0))  # one precision only: no ratio
    assert bench.bf16_gains(rows) == {"small / default / CPU": round(80.0 / 35.0, 3)}
    out = tmp_path / "bench.json"
    bench.write_result(str(out), profile=[{"preset": "small"}], bf16_gain={"x": 2.0})
    bench.write_result(str(out), rows=[], bf16_gain=None)  # Trainer rows keep the profile, drop a stale gain
    assert json.loads(out.read_text()) == {"benchmark": "pretrain", "profile": [{"preset": "small"}], "rows": []}


def test_bench_pretrain_largest_batch_search():
    bench = load_script("bench_pretrain")
    calls = []

    def check(preset, batch, design):  # a step of up to 300 fits, its peak memory grows with the batch
        calls.append(batch)
        return batch <= 300, batch / 100

    found = bench.largest_batch("small", start=64, check=check)
    assert calls[:4] == [64, 128, 256, 512]  # doubling until one does not fit, then bisecting
    assert 300 - 300 // 16 <= found["largest_batch"] <= 300 and found["first_batch_that_did_not_fit"] > 300
    assert found["peak_memory_GiB"] == found["largest_batch"] / 100
    assert bench.largest_batch("small", check=lambda *a: (False, 0.0))["largest_batch"] == 0  # nothing fits
    assert bench.largest_batch("small", limit=256, check=lambda *a: (True, 1.0))["largest_batch"] == 256


def test_bench_pretrain_precision_check_bf16_matches_fp32_on_the_cpu():
    bench = load_script("bench_pretrain")
    check = bench.precision_check("tiny", 4)
    assert set(check["loss_relative_difference"]) == set(bench.PRECISION_CHECK_LOSSES)
    # bf16 autocast (written-out attention on the CPU) against fp32 SDPA, same masks: within bf16 rounding
    assert max(v for k, v in check["loss_relative_difference"].items() if k != "orthogonality_loss") < 0.05
    assert max(check["relative_error"].values()) < 0.05
