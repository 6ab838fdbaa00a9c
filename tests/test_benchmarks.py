"""The real-data benchmark scripts: their skip message without data; for the PTB-XL mini benchmark, its guard
against mixing budgets in one table and the table it writes (zero-shot columns use the prompts chosen on fold 9;
CPSC2018 the ensemble)."""

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


def test_table_uses_fold9_prompts_and_keeps_the_ensemble(ptbxl_mini):
    def zs(dataset, selection, auc):
        return {"task": "zero-shot", "dataset": dataset, "prompt_selection": selection, "roc_auc": auc,
                "ci95": [auc - 0.01, auc + 0.01]}

    evaluation = [zs("super", "ensemble", 0.6), zs("super", "fold 9", 0.7), zs("cpsc2018", "ensemble", 0.65),
                  {"task": "linear-probe", "fraction": 0.01, "seed": 0, "roc_auc": 0.78, "ci95": None},
                  {"task": "linear-probe", "fraction": 0.01, "seed": 1, "roc_auc": 0.80, "ci95": None}]
    results = {"machine": "CPU", "preset": "small", "max_steps": 600, "batch_size": 32, "seeds": [0, 1],
               "test_records": {"super": 328, "cpsc2018": 150},
               "rows": {"cgdmer": {"training": {"seconds": 1.0}, "evaluation": evaluation, "description": "full"}}}
    main_table, ensemble_table = ptbxl_mini.markdown(results).split("With the full ensemble")
    row = next(line for line in main_table.splitlines() if line.startswith("| cgdmer"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2].startswith("0.700") and cells[6].startswith("0.650")  # super (fold 9), CPSC2018
    assert cells[3] == "–"  # sub was not evaluated
    assert cells[7] == "0.790 ± 0.010"  # probe 1 %: mean ± std over the two seeds
    row = next(line for line in ensemble_table.splitlines() if line.startswith("| cgdmer"))
    assert row.split("|")[2].strip().startswith("0.600")


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
