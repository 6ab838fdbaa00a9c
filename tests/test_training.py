"""Pretraining with the Trainer: collator, logged loss components, non-finite stop, resume, saved folder, CLI."""

import json
import logging
import os

import numpy as np
import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import TrainerCallback

from cgdmer_hf import CGDMERConfig, CGDMERForPreTraining
from cgdmer_hf.cli import main as cli_main
from cgdmer_hf.data import load_ptbxl
from cgdmer_hf.reports import load_default_tokenizer
from cgdmer_hf.samples import sample_data_dir
from cgdmer_hf.training import (
    LOSS_COMPONENTS,
    CGDMERPretrainingCollator,
    NonFiniteLossError,
    prepare_pretraining_dataset,
    pretrain,
    pretraining_arguments,
)

pytestmark = pytest.mark.usefixtures("one_thread")


FAST_ARGS = dict(use_cpu=True, disable_tqdm=True, report_to="none", learning_rate=1e-3, warmup_steps=0)


@pytest.fixture(scope="module")
def splits():
    root = sample_data_dir()
    return load_ptbxl(root, split="train"), load_ptbxl(root, split="validation")


@pytest.fixture(scope="module")
def tokenizer():
    return load_default_tokenizer()


def _rows(dataset, n):
    return [dataset[i] for i in range(n)]


# ------------------------------------------------------------------------------------------------ collator


def test_collator_builds_forward_arguments(splits, tokenizer):
    config = CGDMERConfig.from_preset("tiny", text_config={"vocab_size": len(tokenizer)})
    collator = CGDMERPretrainingCollator(tokenizer, config=config)
    assert collator.mlm_probability == config.text_config.mlm_probability
    assert collator.max_length == config.text_config.max_position_embeddings
    batch = collator(_rows(splits[0], 6))
    assert set(batch) == {"ecg_values", "lead_mask", "ecg_attention_mask", "input_ids", "attention_mask",
                          "mlm_input_ids", "mlm_labels"}
    assert batch["ecg_values"].shape == (6, 12, 1000) and batch["ecg_values"].dtype == torch.float32
    assert batch["lead_mask"].shape == (6, 12) and batch["ecg_attention_mask"].shape == (6, 1000)
    ids, labels, masked = batch["input_ids"], batch["mlm_labels"], batch["mlm_input_ids"]
    assert ids.shape == labels.shape == masked.shape == batch["attention_mask"].shape
    # Labels hold the original token where masked, -100 elsewhere; unmasked positions are unchanged.
    chosen = labels != -100
    assert chosen.any()
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(masked[~chosen], ids[~chosen])
    # The reports are the cleaned ones.
    from cgdmer_hf.reports import clean_report

    first = tokenizer.decode(ids[0], skip_special_tokens=True).replace(" ", "")
    assert first == clean_report(splits[0][0]["report"]).replace(" ", "")
    # The model takes the batch as it is and returns every component.
    out = CGDMERForPreTraining(config)(**batch)
    assert all(torch.isfinite(out[name]) for name in ("loss", *LOSS_COMPONENTS))


def test_collator_never_masks_special_or_padding_tokens(splits, tokenizer):
    collator = CGDMERPretrainingCollator(tokenizer, mlm_probability=1.0, max_length=16, seed=0)
    batch = collator(_rows(splits[0], 8))
    ids, labels = batch["input_ids"], batch["mlm_labels"]
    assert ids.shape[1] <= 16  # truncated to max_length
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids)) | (batch["attention_mask"] == 0)
    assert special.any() and (labels[special] == -100).all()
    assert (labels[~special] != -100).all()  # probability 1: every ordinary token is a target


def test_collator_seed_reproducible_and_deferred_masking(splits, tokenizer):
    rows = _rows(splits[0], 8)
    a = CGDMERPretrainingCollator(tokenizer, max_length=32, seed=7)(rows)
    b = CGDMERPretrainingCollator(tokenizer, max_length=32, seed=7)(rows)
    assert torch.equal(a["mlm_input_ids"], b["mlm_input_ids"]) and torch.equal(a["mlm_labels"], b["mlm_labels"])
    deferred = CGDMERPretrainingCollator(tokenizer, max_length=32, mask_reports=False)
    batch = deferred(rows)
    assert "special_tokens_mask" in batch and "mlm_labels" not in batch
    masked = deferred.mask_reports(batch, generator=torch.Generator().manual_seed(0))
    assert "special_tokens_mask" not in masked and masked["mlm_labels"].shape == batch["input_ids"].shape


def test_collator_reports_missing_or_mixed(splits, tokenizer):
    collator = CGDMERPretrainingCollator(tokenizer, max_length=32)
    rows = _rows(splits[0], 3)
    ecg_only = collator([{k: v for k, v in r.items() if k != "report"} for r in rows])
    assert set(ecg_only) == {"ecg_values", "lead_mask", "ecg_attention_mask"}
    mixed = [dict(r) for r in rows]
    mixed[1]["report"] = "   "
    with pytest.raises(ValueError, match="1 of 3 reports in the batch are missing or empty"):
        collator(mixed)
    with pytest.raises(ValueError, match="ecg_values"):
        collator([{"report": "sinus rhythm"}])


def test_collator_pads_shorter_ecgs(tokenizer):
    rows = [{"ecg_values": np.ones((12, 1000), np.float32), "report": "sinus rhythm"},
            {"ecg_values": np.ones((12, 600), np.float32), "report": "atrial fibrillation"}]
    batch = CGDMERPretrainingCollator(tokenizer, max_length=32)(rows)
    assert batch["ecg_values"].shape == (2, 12, 1000)
    assert batch["ecg_attention_mask"][1].sum() == 600 and batch["ecg_values"][1, :, 600:].abs().sum() == 0


def test_prepare_drops_empty_reports_and_refuses_none(splits, caplog):
    train = splits[0].select(range(6))
    reports = list(train["report"])
    reports[2] = ""
    with_gap = train.remove_columns("report").add_column("report", reports)
    with caplog.at_level(logging.WARNING, logger="cgdmer_hf.training"):
        kept = prepare_pretraining_dataset(with_gap)
    assert len(kept) == 5 and "Dropped 1 of 6 training rows with an empty report" in caplog.text
    assert set(kept.column_names) == {"ecg_values", "lead_mask", "ecg_attention_mask", "report"}
    with pytest.raises(ValueError, match="no non-empty report"):
        prepare_pretraining_dataset(train.remove_columns("report").add_column("report", [""] * 6))
    with pytest.raises(ValueError, match="no 'report' column"):
        prepare_pretraining_dataset(train.remove_columns("report"))


def test_pretraining_arguments_keep_what_the_model_needs(tmp_path):
    args = pretraining_arguments(tmp_path, max_steps=100, warmup_ratio=0.1, use_cpu=True)
    assert args.remove_unused_columns is False and args.label_names == [] and args.prediction_loss_only
    assert args.warmup_steps == 10 and args.bf16 is False
    with pytest.raises(ValueError, match="remove_unused_columns=False"):
        pretraining_arguments(tmp_path, remove_unused_columns=True)


# ------------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def trained(splits, tokenizer, tmp_path_factory):
    """40 steps (20 logged windows of 2) on the bundled sample with gradient accumulation; evaluation every 20."""
    out = tmp_path_factory.mktemp("pretrain") / "model"
    trainer = pretrain(
        splits[0], out, eval_dataset=splits[1], config="tiny", tokenizer=tokenizer, zero_shot_prompts="auto",
        training_args=dict(max_steps=40, per_device_train_batch_size=4, gradient_accumulation_steps=2,
                           logging_steps=5, eval_strategy="steps", eval_steps=20, save_steps=20, seed=0,
                           **FAST_ARGS),
    )
    return trainer, out


def test_training_lowers_every_loss_component(trained):
    trainer, _ = trained
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in logs] == list(range(5, 45, 5))
    for name in (*LOSS_COMPONENTS, "logit_scale", "temperature", "logit_bias"):
        assert all(np.isfinite(h[name]) for h in logs), name
    first, last = logs[0], logs[-1]
    for name in ("loss", *LOSS_COMPONENTS):
        assert last[name] < first[name], (name, first[name], last[name])
    assert logs[-1]["temperature"] == pytest.approx(np.exp(logs[-1]["logit_scale"]))


def test_logged_loss_is_the_weighted_sum_not_inflated_by_accumulation(trained):
    trainer, _ = trained
    cfg = trainer.model.config
    for h in (h for h in trainer.state.log_history if "loss" in h):
        weighted = (cfg.ecg_loss_weight * h["ecg_loss"] + cfg.text_loss_weight * h["text_loss"]
                    + cfg.alignment_loss_weight * h["alignment_loss"]
                    + cfg.orthogonality_loss_weight * h["orthogonality_loss"])
        assert h["loss"] == pytest.approx(weighted, rel=1e-4)


def test_evaluation_reports_loss_components_and_zero_shot_auc(trained):
    trainer, _ = trained
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    assert [h["step"] for h in evals] == [20, 40]
    for h in evals:
        assert all(np.isfinite(h[f"eval_{name}"]) for name in LOSS_COMPONENTS)
        assert 0.0 <= h["eval_zero_shot_auc"] <= 1.0
    # Fixed report and ECG masks in evaluation: the same weights give the same validation loss.
    again = trainer.evaluate()
    assert again["eval_loss"] == pytest.approx(evals[-1]["eval_loss"], rel=1e-6)


def test_output_folder_is_a_complete_model(trained, splits):
    from transformers import AutoModel, AutoModelForPreTraining, AutoProcessor, pipeline

    trainer, out = trained
    names = set(os.listdir(out))
    assert {"model.safetensors", "config.json", "tokenizer.json", "processor_config.json", "modeling_cgdmer.py",
            "configuration_cgdmer.py", "processing_cgdmer.py", "feature_extraction_cgdmer.py",
            "pipeline_cgdmer.py"} <= names
    assert not any(n.endswith(".bin") and n != "training_args.bin" for n in names)
    assert (out / "checkpoint-20" / "model.safetensors").exists()
    config = json.loads((out / "config.json").read_text())
    processor = AutoProcessor.from_pretrained(out)
    assert config["text_config"]["vocab_size"] == len(processor.tokenizer)
    assert "zero-shot-ecg-classification" in config["custom_pipelines"]
    pretrained = AutoModelForPreTraining.from_pretrained(out)
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, pretrained.state_dict()[name]), name
    model = AutoModel.from_pretrained(out)
    assert type(model).__name__ == "CGDMERModel"
    classify = pipeline("zero-shot-ecg-classification", model=str(out), trust_remote_code=True)
    from cgdmer_hf.samples import sample_record_path

    scores = classify(sample_record_path(int(splits[1][0]["record_id"])), candidate_labels=["normal ecg", "mi"])
    assert {s["label"] for s in scores} == {"normal ecg", "mi"} and all(0 < s["score"] < 1 for s in scores)


def test_saved_model_holds_the_zero_shot_centre_of_its_training_data(trained, splits, tokenizer):
    from cgdmer_hf import CGDMERModel
    from cgdmer_hf.evaluation import fit_zero_shot_centre

    trainer, out = trained
    saved = CGDMERModel.from_pretrained(out)
    centre, offset = saved.config.zero_shot_centre, saved.config.zero_shot_centre_offset
    assert len(centre) == saved.config.projection_dim
    again = fit_zero_shot_centre(saved, tokenizer, splits[0])  # the same training split, the saved weights
    np.testing.assert_allclose(again, centre, atol=1e-6)
    assert saved.config.zero_shot_centre_offset == pytest.approx(offset, abs=1e-5)
    assert 0.1 < np.linalg.norm(centre) <= 1.0  # a mean of unit vectors, not one report nor zero
    # the report bank: the distinct cleaned training reports with their counts
    from collections import Counter

    from cgdmer_hf.reports import clean_report_or_empty

    assert saved.config.zero_shot_reports == dict(Counter(r for r in map(clean_report_or_empty, splits[0]["report"]) if r))


class _Interrupt(Exception):
    pass


class _InterruptAfterSave(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise _Interrupt


def test_interrupted_run_resumes_to_the_same_weights(splits, tokenizer, tmp_path):
    """30 training rows, batch 8: the checkpoint at step 6 falls in the middle of the second epoch."""
    args = dict(max_steps=12, per_device_train_batch_size=8, logging_steps=3, save_steps=6, seed=3, **FAST_ARGS)
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    pretrain(splits[0], full, config="tiny", tokenizer=tokenizer, training_args=args)
    with pytest.raises(_Interrupt):
        pretrain(splits[0], resumed, config="tiny", tokenizer=tokenizer, training_args=args,
                 callbacks=[_InterruptAfterSave(6)])
    assert not (resumed / "model.safetensors").exists() and (resumed / "checkpoint-6").is_dir()
    trainer = pretrain(splits[0], resumed, config="tiny", training_args=args, resume_from_checkpoint=True)
    assert trainer.state.global_step == 12
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=0, msg=name)
    logs = lambda d: [h["loss"] for h in json.loads((d / "trainer_state.json").read_text())["log_history"]  # noqa
                      if "loss" in h]
    assert logs(full) == pytest.approx(logs(resumed), rel=1e-6)


class _BreakLogitBias(TrainerCallback):
    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == 2:
            model.cgdmer.logit_bias.data.fill_(float("nan"))


def test_non_finite_loss_stops_with_step_and_component(splits, tokenizer, tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"at step 3: alignment_loss=nan"):
        pretrain(splits[0], tmp_path / "nan", config="tiny", tokenizer=tokenizer, callbacks=[_BreakLogitBias()],
                 training_args=dict(max_steps=5, per_device_train_batch_size=4, logging_steps=5, save_steps=5,
                                    **FAST_ARGS))


def test_streaming_dataset_trains(splits, tokenizer, tmp_path):
    stream = splits[0].to_iterable_dataset(num_shards=2)
    trainer = pretrain(stream, tmp_path / "stream", config="tiny", tokenizer=tokenizer,
                       training_args=dict(max_steps=3, per_device_train_batch_size=4, logging_steps=3, save_steps=3,
                                          **FAST_ARGS))
    assert trainer.state.global_step == 3 and (tmp_path / "stream" / "model.safetensors").exists()


# ------------------------------------------------------------------------------------------------ CLI


def _cli(capsys, *argv):
    code = cli_main(["pretrain", *map(str, argv)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("cgdmer ")]
    return code, err


def test_cli_trains_from_a_config_file(tmp_path, capsys):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"data": "sample", "preset": "tiny", "tokenizer": "default", "max-steps": 2,
                                  "batch_size": 4, "logging_steps": 1, "eval_steps": 2, "save_steps": 2,
                                  "zero_shot": "none", "disable_tqdm": True, "cpu": True}))
    code = cli_main(["pretrain", "--config", str(config), "--output-dir", str(tmp_path / "out"), "--max-steps", "3"])
    assert code == 0
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and state["max_steps"] == 3  # the command line wins over the file
    assert any("eval_loss" in h for h in state["log_history"])
    assert "Saved the pretrained model" in capsys.readouterr().out


def test_cli_bad_input_gives_one_line_and_overwrites_nothing(tmp_path, capsys, trained):
    code, err = _cli(capsys, "--data", "sample", "--preset", "huge", "--output-dir", tmp_path / "a")
    assert code == 2 and len(err) == 1 and "Unknown preset 'huge'" in err[0]
    assert not (tmp_path / "a").exists()

    _, model_dir = trained
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    code, err = _cli(capsys, "--data", "sample", "--preset", "tiny", "--output-dir", model_dir)
    assert code == 2 and len(err) == 1 and "already holds a model" in err[0]
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before

    code, err = _cli(capsys, "--data", "sample", "--preset", "tiny", "--output-dir", tmp_path / "b",
                     "--resume", tmp_path)
    assert code == 2 and len(err) == 1 and "No checkpoint to resume from" in err[0]

    code, err = _cli(capsys, "--data", sample_data_dir() / "cpsc2018", "--preset", "tiny", "--output-dir",
                     tmp_path / "c")
    assert code == 2 and len(err) == 1 and "no non-empty report" in err[0]
    assert not (tmp_path / "c").exists()


def test_cli_unknown_config_key(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("data: sample\nmax_stepz: 3\n")
    code, err = _cli(capsys, "--config", config, "--output-dir", tmp_path / "out")
    assert code == 2 and len(err) == 1 and "max_stepz" in err[0]


def test_collator_with_empty_dataset_reports():
    # A plain in-memory dataset (no reader) goes through the same checks.
    data = Dataset.from_dict({"ecg_values": [np.zeros((12, 1000), np.float32)], "report": [None]})
    with pytest.raises(ValueError, match="no non-empty report"):
        prepare_pretraining_dataset(data)
