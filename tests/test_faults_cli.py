"""Nothing lost, nothing silently wrong: the `cgdmer` commands under faults.

Each test reproduces a reported fault (or one of its class) and checks the behaviour the user sees: exit codes,
one-line messages, the files left after a failure, the step a run resumes from.
"""

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import load_from_disk
from fixtures.data_layouts import SAMPLE_DIR, copy_ptbxl, corrupt_truncate, sample_rows

from cgdmer_hf.cli import COMMANDS
from cgdmer_hf.cli import main as cli_main
from cgdmer_hf.data import load_ptbxl, read_ptbxl_metadata
from cgdmer_hf.reports import load_default_tokenizer
from cgdmer_hf.training import CGDMERPretrainer, pretrain

BASE_MODEL = Path(__file__).resolve().parents[1] / "cgdmer-base"
FAST_ARGS = dict(use_cpu=True, disable_tqdm=True, report_to="none", learning_rate=1e-3, warmup_steps=0)
TINY_RUN = ["--data", "sample", "--preset", "tiny", "--tokenizer", "default", "--batch-size", "4", "--save-steps", "2",
            "--logging-steps", "1", "--zero-shot", "none", "--disable-tqdm", "--cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")


def run_cli(capsys, *argv) -> tuple[int, list[str], str]:
    """Exit code, the `cgdmer ...` error lines of stderr, and stdout."""
    code = cli_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, [line for line in captured.err.splitlines() if line.startswith("cgdmer ")], captured.out


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> content hash of every file under `folder`."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def staging_leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


# ------------------------------------------------------------------------------------------------ 1. prepare


@pytest.fixture(scope="module")
def small_ptbxl(tmp_path_factory):
    ids = sorted(int(float(r["ecg_id"])) for r in sample_rows())[:8]
    return copy_ptbxl(tmp_path_factory.mktemp("ptbxl"), ids)


@pytest.fixture()
def prepared(small_ptbxl, tmp_path, capsys):
    out = tmp_path / "prepared"
    assert cli_main(["prepare", str(small_ptbxl), "-o", str(out), "--cache-dir", str(tmp_path / "c0")]) == 0
    capsys.readouterr()
    return out


def test_prepare_refuses_a_prepared_dataset_without_overwrite(small_ptbxl, prepared, tmp_path, capsys):
    before = snapshot(prepared)
    code, err, _ = run_cli(capsys, "prepare", small_ptbxl, "-o", prepared, "--split", "test",
                           "--cache-dir", tmp_path / "c1")
    assert code == 2 and len(err) == 1 and "holds a prepared dataset" in err[0] and "--overwrite" in err[0]
    assert snapshot(prepared) == before


def test_prepare_overwrite_that_fails_keeps_the_old_dataset(small_ptbxl, prepared, tmp_path, capsys):
    before, ids = snapshot(prepared), load_from_disk(str(prepared))["record_id"][:]
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err, _ = run_cli(capsys, "prepare", empty, "--layout", "ptbxl", "-o", prepared, "--overwrite")
    assert code == 2 and len(err) == 1 and "ptbxl_database.csv" in err[0]

    damaged = copy_ptbxl(tmp_path / "damaged", [int(r["record_id"]) for r in read_ptbxl_metadata(small_ptbxl)[0]])
    corrupt_truncate(Path(read_ptbxl_metadata(damaged)[0][2]["path"]))
    code, err, _ = run_cli(capsys, "prepare", damaged, "-o", prepared, "--overwrite", "--on-error", "raise",
                           "--cache-dir", tmp_path / "c2")
    assert code == 2 and len(err) == 1
    assert snapshot(prepared) == before and load_from_disk(str(prepared))["record_id"][:] == ids
    assert staging_leftovers(tmp_path) == []


def test_prepare_overwrite_swaps_in_the_new_dataset_and_never_deletes_other_files(small_ptbxl, prepared, tmp_path,
                                                                                  capsys):
    code, _, _ = run_cli(capsys, "prepare", small_ptbxl, "-o", prepared, "--overwrite", "--split", "train",
                         "--cache-dir", tmp_path / "c3")
    assert code == 0 and set(load_from_disk(str(prepared))["fold"][:]) <= set(range(1, 9))
    assert json.loads((prepared / "prepare_summary.json").read_text())["split"] == "train"
    assert staging_leftovers(tmp_path) == []

    (prepared / "notes.txt").write_text("mine")  # a folder with the user's own files is never replaced
    before = snapshot(prepared)
    code, err, _ = run_cli(capsys, "prepare", small_ptbxl, "-o", prepared, "--overwrite")
    assert code == 2 and len(err) == 1 and "notes.txt" in err[0] and snapshot(prepared) == before


def test_prepare_overwrite_replaces_a_dataset_that_was_read_since(small_ptbxl, prepared, tmp_path, capsys):
    from cgdmer_hf.data import split_by_fold

    dataset = load_from_disk(str(prepared))
    split_by_fold(dataset), dataset.shuffle(seed=0)  # `datasets` writes cache-*.arrow files into the folder
    assert list(prepared.glob("cache-*.arrow"))
    (prepared / ".DS_Store").write_bytes(b"\0")
    (prepared / ".ipynb_checkpoints").mkdir()
    code, err, _ = run_cli(capsys, "prepare", small_ptbxl, "-o", prepared, "--overwrite", "--split", "test",
                           "--cache-dir", tmp_path / "c4")
    assert code == 0 and err == [] and set(load_from_disk(str(prepared))["fold"][:]) == {10}
    assert not list(prepared.glob("cache-*.arrow")) and staging_leftovers(tmp_path) == []


def test_prepare_overwrite_through_a_symlink_replaces_the_linked_folder(small_ptbxl, prepared, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(prepared, target_is_directory=True)
    code, err, _ = run_cli(capsys, "prepare", small_ptbxl, "-o", link, "--overwrite", "--split", "test",
                           "--cache-dir", tmp_path / "c5")
    assert code == 0 and err == [] and link.is_symlink() and link.resolve() == prepared.resolve()
    assert set(load_from_disk(str(prepared))["fold"][:]) == {10}
    assert json.loads((prepared / "prepare_summary.json").read_text())["split"] == "test"
    assert staging_leftovers(prepared) == [] and sorted(staging_leftovers(tmp_path)) == []


def test_prepare_overwrite_of_a_mount_point_replaces_its_entries(small_ptbxl, prepared, tmp_path, capsys,
                                                                  monkeypatch):
    replace, ismount = os.replace, os.path.ismount

    def busy_replace(src, dst):  # what renaming a mount point does
        if prepared in (Path(src), Path(dst)):
            raise OSError(errno.EBUSY, "Device or resource busy", str(prepared))
        replace(src, dst)

    monkeypatch.setattr(os.path, "ismount", lambda path: Path(path) == prepared or ismount(path))
    monkeypatch.setattr(os, "replace", busy_replace)
    code, err, _ = run_cli(capsys, "prepare", small_ptbxl, "-o", prepared, "--overwrite", "--split", "test",
                           "--cache-dir", tmp_path / "c6")
    assert code == 0 and err == [] and set(load_from_disk(str(prepared))["fold"][:]) == {10}
    assert staging_leftovers(prepared) == [] and staging_leftovers(tmp_path) == []


def test_prepare_overwrite_whose_swap_fails_moves_the_old_dataset_back(small_ptbxl, prepared, tmp_path, capsys,
                                                                       monkeypatch):
    before, replace = snapshot(prepared), os.replace

    def failing_swap(src, dst):
        if Path(src).name.startswith(".cgdmer-staging-"):
            raise OSError(errno.EIO, "Input/output error", str(dst))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_swap)
    code, err, _ = run_cli(capsys, "prepare", small_ptbxl, "-o", prepared, "--overwrite", "--split", "test",
                           "--cache-dir", tmp_path / "c7")
    assert code == 2 and len(err) == 1 and "Input/output error" in err[0]
    assert snapshot(prepared) == before and staging_leftovers(tmp_path) == []


def test_prepare_after_a_kill_between_the_two_renames_names_the_hidden_folders(small_ptbxl, prepared, tmp_path,
                                                                               capsys, monkeypatch):
    before, replace, rmtree = snapshot(prepared), os.replace, shutil.rmtree

    def killed_swap(src, dst):
        if Path(src).name.startswith(".cgdmer-staging-"):
            raise _Killed
        replace(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", killed_swap)  # a SIGKILL runs no cleanup either:
        patch.setattr(shutil, "rmtree", lambda path, **kw: None if ".cgdmer-staging-" in str(path)
                      else rmtree(path, **kw))
        with pytest.raises(_Killed):
            cli_main(["prepare", str(small_ptbxl), "-o", str(prepared), "--overwrite", "--split", "test",
                      "--cache-dir", str(tmp_path / "c8")])
    hidden = sorted(staging_leftovers(tmp_path))
    assert not prepared.exists() and [name.split("-")[0] for name in hidden] == [".cgdmer", ".prepared.replaced"]
    left = snapshot(tmp_path)
    code, err, _ = run_cli(capsys, "prepare", small_ptbxl, "-o", prepared, "--overwrite",
                           "--cache-dir", tmp_path / "c9")
    assert code == 2 and len(err) == 1 and all(str(tmp_path / name) in err[0] for name in hidden)
    assert "interrupted" in err[0] and snapshot(tmp_path) == left
    os.replace(tmp_path / hidden[1] / "prepared", prepared)  # the recovery the message describes
    assert snapshot(prepared) == before


# ------------------------------------------------------------------------------------------------ evaluate, embed


def test_evaluate_overwrite_that_fails_while_writing_keeps_the_old_results(tmp_path, capsys, monkeypatch):
    import cgdmer_hf.evaluation.report as evaluation

    out = tmp_path / "eval"
    argv = ["evaluate", BASE_MODEL, "--data", SAMPLE_DIR, "--output", out, "--tasks", "zero-shot",
            "--no-random-baseline", "--bootstrap", "0", "--label-set", "super"]
    assert run_cli(capsys, *argv)[0] == 0 and list((out / "roc").iterdir())
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)

    def crash(*args, **kwargs):
        raise RuntimeError("killed while writing the ROC curves")

    monkeypatch.setattr(evaluation, "plot_roc_curves", crash)
    with pytest.raises(RuntimeError, match="killed"):
        cli_main([str(a) for a in argv] + ["--overwrite"])
    assert snapshot(out) == before and staging_leftovers(out) == []

def test_evaluate_overwrite_drops_the_earlier_outputs_it_does_not_write(tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["evaluate", BASE_MODEL, "--data", SAMPLE_DIR, "--output", out, "--tasks", "zero-shot",
            "--no-random-baseline", "--bootstrap", "0", "--label-set", "super"]
    assert run_cli(capsys, *argv)[0] == 0 and list((out / "roc").iterdir())
    (out / "notes.txt").write_text("mine")
    code, err, _ = run_cli(capsys, *argv, "--overwrite", "--no-plots")
    assert code == 0 and err == [] and not (out / "roc").exists() and (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["card_results.json", "notes.txt", "results.json", "results.md"]


def test_embed_overwrite_that_fails_while_writing_keeps_the_old_files(tmp_path, capsys, monkeypatch):
    out = tmp_path / "emb.npy"
    argv = ["embed", BASE_MODEL, "--data", SAMPLE_DIR, "--output", out, "--split", "test"]
    assert run_cli(capsys, *argv)[0] == 0
    before = snapshot(tmp_path)
    save = np.save

    def save_then_die(*args, **kwargs):  # the array is written, the record ids are not
        save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        cli_main([str(a) for a in argv] + ["--overwrite", "--split", "all"])
    assert snapshot(tmp_path) == before and staging_leftovers(tmp_path) == []


def test_embed_refuses_to_replace_record_ids_without_overwrite(tmp_path, capsys):
    ids = tmp_path / "emb.record_ids.txt"
    ids.write_text("mine\n")
    code, err, _ = run_cli(capsys, "embed", BASE_MODEL, "--data", SAMPLE_DIR, "--output", tmp_path / "emb.npy")
    assert code == 2 and len(err) == 1 and "emb.record_ids.txt exists" in err[0] and ids.read_text() == "mine\n"


# ------------------------------------------------------------------------------------------------ 2. resume


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """`cgdmer pretrain` to step 4 with checkpoints at 2 and 4."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert cli_main(["pretrain", *TINY_RUN, "--max-steps", "4", "--output-dir", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A run to step 6 killed while writing checkpoint-4 (its optimizer.pt still empty); checkpoint-6 is what a
    kill while saving the model leaves (only a code file)."""
    out = tmp_path_factory.mktemp("killed") / "run"
    save_states = CGDMERPretrainer._save_optimizer_and_scheduler

    def killed_at_step_4(self, output_dir):
        if self.state.global_step == 4:
            (Path(output_dir) / "optimizer.pt").write_bytes(b"")
            raise _Killed
        save_states(self, output_dir)

    CGDMERPretrainer._save_optimizer_and_scheduler = killed_at_step_4
    try:
        with pytest.raises(_Killed):
            pretrain(load_ptbxl(SAMPLE_DIR, split="train"), out, config="tiny", tokenizer=load_default_tokenizer(),
                     training_args=dict(max_steps=6, per_device_train_batch_size=4, save_steps=2, logging_steps=1,
                                        seed=0, **FAST_ARGS))
    finally:
        CGDMERPretrainer._save_optimizer_and_scheduler = save_states
    (out / "checkpoint-6").mkdir()
    shutil.copy(out / "checkpoint-2" / "modeling_cgdmer.py", out / "checkpoint-6")
    return out


def test_a_kill_during_a_checkpoint_save_never_looks_complete(killed_run):
    from cgdmer_hf.training import checkpoint_problem

    assert checkpoint_problem(killed_run / "checkpoint-2") is None
    assert (killed_run / "checkpoint-4" / "trainer_state.json").exists() is False
    assert "interrupted" in checkpoint_problem(killed_run / "checkpoint-4")
    assert "interrupted" in checkpoint_problem(killed_run / "checkpoint-6")


def test_resume_takes_the_newest_complete_checkpoint_and_names_the_skipped(killed_run, tmp_path, capsys, caplog,
                                                                          monkeypatch):
    run, resumed_from = tmp_path / "run", []
    shutil.copytree(killed_run, run)
    train = CGDMERPretrainer.train

    def recording_train(self, resume_from_checkpoint=None, **kwargs):
        resumed_from.append(resume_from_checkpoint)
        return train(self, resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    import cgdmer_hf.training.checkpoints as checkpoints

    checked, check_files = [], checkpoints.check_checkpoint_files
    monkeypatch.setattr(checkpoints, "check_checkpoint_files",
                        lambda folder: checked.append(folder) or check_files(folder))
    monkeypatch.setattr(CGDMERPretrainer, "train", recording_train)
    code, err, out = run_cli(capsys, "pretrain", *TINY_RUN, "--max-steps", "6", "--output-dir", run, "--resume")
    assert code == 0 and err == [] and resumed_from == [str(run / "checkpoint-2")]
    assert checked == [run / "checkpoint-2"]  # once: `pretrain` takes the command's resolved checkpoint
    assert f"Resuming from {run / 'checkpoint-2'}" in out
    skipped = " ".join(r.getMessage() for r in caplog.records if "skipped" in r.getMessage())
    assert "checkpoint-4" in skipped and "checkpoint-6" in skipped
    assert json.loads((run / "trainer_state.json").read_text())["global_step"] == 6
    # the re-written checkpoint-4 is complete
    assert (run / "checkpoint-4" / "optimizer.pt").stat().st_size > 0
    assert json.loads((run / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4


def test_a_kill_before_a_checkpoint_is_marked_complete_keeps_the_previous_one(tmp_path, monkeypatch):
    """save_total_limit=1: the older checkpoint is rotated out only once the new one is complete."""
    import cgdmer_hf.training as training
    from cgdmer_hf.training import trainer  # CGDMERPretrainer writes the markers

    out, write_marker = tmp_path / "run", trainer._write_marker
    args = dict(max_steps=4, per_device_train_batch_size=4, save_steps=2, save_total_limit=1, logging_steps=1,
                seed=0, **FAST_ARGS)

    def killed_before_complete(folder, **content):
        if content.get("complete") and content.get("global_step") == 4:
            raise _Killed
        write_marker(folder, **content)

    with monkeypatch.context() as patch:
        patch.setattr(trainer, "_write_marker", killed_before_complete)
        with pytest.raises(_Killed):
            pretrain(load_ptbxl(SAMPLE_DIR, split="train"), out, config="tiny", tokenizer=load_default_tokenizer(),
                     training_args=args)
    assert (out / "checkpoint-4" / "trainer_state.json").exists()  # every file written, the marker not yet
    assert training.checkpoint_problem(out / "checkpoint-2") is None
    assert "interrupted" in training.checkpoint_problem(out / "checkpoint-4")
    pretrain(load_ptbxl(SAMPLE_DIR, split="train"), out, tokenizer=load_default_tokenizer(), training_args=args,
             resume_from_checkpoint=True)  # from checkpoint-2; checkpoint-4 is re-written, then 2 rotated out
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4"]
    assert training.checkpoint_problem(out / "checkpoint-4") is None


def test_resume_from_a_named_incomplete_checkpoint_says_what_to_pass(killed_run, capsys):
    code, err, _ = run_cli(capsys, "pretrain", *TINY_RUN, "--output-dir", killed_run,
                           "--resume", killed_run / "checkpoint-4")
    assert code == 2 and len(err) == 1 and "checkpoint-4" in err[0] and "interrupted" in err[0]
    assert str(killed_run) in err[0]  # resume from the run folder instead


def test_resume_with_only_incomplete_checkpoints_names_them(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoint-2").mkdir(parents=True)
    (run / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (run / "checkpoint-2" / "optimizer.pt").write_bytes(b"")  # saved without a marker by an older version
    code, err, _ = run_cli(capsys, "pretrain", *TINY_RUN, "--output-dir", run, "--resume")
    assert code == 2 and len(err) == 1 and "No complete checkpoint" in err[0] and "optimizer.pt is empty" in err[0]


class _RunsCode:
    def __init__(self, witness: Path):
        self.witness = witness

    def __reduce__(self):
        return os.system, (f"touch {self.witness}",)


def test_resume_from_a_malicious_rng_state_is_one_line_and_runs_nothing(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    witness = tmp_path / "code-ran"
    torch.save({"python": _RunsCode(witness)}, run / "checkpoint-4" / "rng_state.pth")
    code, err, _ = run_cli(capsys, "pretrain", *TINY_RUN, "--max-steps", "6", "--output-dir", run, "--resume")
    assert code == 2 and len(err) == 1 and "rng_state.pth" in err[0] and "weights_only" in err[0]
    assert not witness.exists() and not (run / "checkpoint-6").exists()


def test_pretrain_overwrite_that_fails_keeps_the_previous_model(finished_run, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = snapshot(run)

    def crash(self, *args, **kwargs):
        raise RuntimeError("crashed during training")

    monkeypatch.setattr(CGDMERPretrainer, "train", crash)
    with pytest.raises(RuntimeError, match="crashed"):
        cli_main(["pretrain", *TINY_RUN, "--tokenizer", "train", "--max-steps", "4", "--output-dir", str(run),
                  "--overwrite"])
    after = snapshot(run)
    kept = {name: digest for name, digest in before.items() if not name.startswith("checkpoint-")}
    assert {name: after[name] for name in kept} == kept  # weights, tokenizer, config untouched
    aside = [p for p in run.iterdir() if p.name.startswith(".previous-checkpoints-")]
    assert len(aside) == 1 and snapshot(aside[0]) == {k: v for k, v in before.items() if k.startswith("checkpoint-")}
    # ... and a later --resume does not continue the previous run as if it were the new one
    code, err, _ = run_cli(capsys, "pretrain", *TINY_RUN, "--output-dir", run, "--resume")
    assert code == 2 and len(err) == 1 and "No checkpoint to resume from" in err[0]


# ------------------------------------------------------------------------------------------------ 8. CLI


def test_malformed_yaml_config_is_one_line(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("data: sample\nmax_steps: [3\n")
    code, err, _ = run_cli(capsys, "pretrain", "--config", config, "--output-dir", tmp_path / "out")
    assert code == 2 and len(err) == 1 and "not valid YAML" in err[0] and str(config) in err[0]
    assert not (tmp_path / "out").exists()


def test_config_values_are_read_as_their_option_types(tmp_path, capsys):
    from argparse import Namespace

    from cgdmer_hf.commands.pretrain import DEFAULTS, load_options

    config = tmp_path / "run.yaml"
    config.write_text("data: sample\nlearning_rate: 1e-3\nmax_steps: '20'\n")  # YAML reads 1e-3 as a string
    options = load_options(Namespace(config=str(config), **{k: None for k in DEFAULTS}))
    assert options["learning_rate"] == 0.001 and options["max_steps"] == 20
    config.write_text("data: sample\nlearning_rate: fast\n")
    code, err, _ = run_cli(capsys, "pretrain", "--config", config, "--output-dir", tmp_path / "out")
    assert code == 2 and len(err) == 1 and "learning_rate" in err[0] and "'fast'" in err[0]
    config.write_text("data: sample\nmax_steps: 2.5\n")
    code, err, _ = run_cli(capsys, "pretrain", "--config", config, "--output-dir", tmp_path / "out")
    assert code == 2 and len(err) == 1 and "max_steps" in err[0] and "integer" in err[0]


def test_missing_tokenizer_folder_is_one_line(tmp_path, capsys):
    missing = tmp_path / "no-such-tokenizer"
    code, err, _ = run_cli(capsys, "pretrain", *TINY_RUN, "--tokenizer", missing, "--output-dir", tmp_path / "out")
    assert code == 2 and len(err) == 1 and "Tokenizer folder not found" in err[0] and str(missing) in err[0]
    assert not (tmp_path / "out").exists()


def test_tokenizer_folder_without_tokenizer_files_is_named_as_such(tmp_path, capsys):
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    code, err, _ = run_cli(capsys, "pretrain", *TINY_RUN, "--tokenizer", folder, "--output-dir", tmp_path / "out")
    assert code == 2 and len(err) == 1 and "a folder here, without loadable tokenizer files" in err[0]
    assert "Hub id" not in err[0] and not (tmp_path / "out").exists()


def test_help_texts_are_printed_as_written(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 0 and "(1/10/100 % labels)" in text and "option_strings" not in text
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            cli_main([name, "--help"])
        assert exit_.value.code == 0 and "usage: cgdmer" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ 10. push


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    from cgdmer_hf import CGDMERConfig, CGDMERFeatureExtractor, CGDMERModel, CGDMERProcessor
    from cgdmer_hf.hub import save_model_dir

    folder = tmp_path_factory.mktemp("model") / "tiny"
    torch.manual_seed(0)
    save_model_dir(folder, CGDMERModel(CGDMERConfig.from_preset("tiny")),
                   CGDMERProcessor(CGDMERFeatureExtractor(), load_default_tokenizer()))
    return folder


def test_push_refuses_an_object_array(model_folder, tmp_path, capsys):
    from cgdmer_hf.hub import validate_model_dir

    folder = tmp_path / "model"
    shutil.copytree(model_folder, folder)
    np.save(folder / "label_embeddings.npy", np.zeros((3, 4), np.float32))
    np.savez(folder / "arrays.npz", a=np.ones(2), b=np.arange(3))
    with open(folder / "v3.npy", "wb") as f:  # format 3.0 (utf-8 header)
        np.lib.format.write_array(f, np.zeros(2, dtype=[("\u00e9", "f4")]), version=(3, 0))
    validate_model_dir(folder)  # plain arrays are fine
    np.savez(folder / "mixed.npz", a=np.ones(2), b=np.array([None], dtype=object))
    np.save(folder / "extra.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"\['extra.npy', 'mixed.npz'\]"):
        validate_model_dir(folder)
    (folder / "mixed.npz").unlink()
    code, err, _ = run_cli(capsys, "push", folder, "--repo-id", "org/tiny", "--dry-run")
    assert code == 2 and len(err) == 1 and "extra.npy" in err[0]


class _FakeHub:
    """Records the commit `push_model_dir` would make (no network)."""

    commits: list = []

    def __init__(self, token=None):
        pass

    def create_repo(self, repo_id, **kwargs):
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def create_commit(self, repo_id, operations, **kwargs):
        _FakeHub.commits.append([op.path_in_repo for op in operations])
        return type("CommitInfo", (), {"commit_url": f"hub/{repo_id}/commit/1", "oid": "1" * 40})()


def test_push_uploads_a_pretrain_output_folder_without_its_training_files(finished_run, capsys, monkeypatch):
    import cgdmer_hf.hub as hub

    monkeypatch.setattr(hub, "HfApi", _FakeHub)
    code = cli_main(["push", str(finished_run), "--repo-id", "org/tiny"])
    captured = capsys.readouterr()
    assert code == 0 and "Pushed" in captured.out
    assert "Leaving out the training files checkpoint-2/, checkpoint-4/, training_args.bin" in captured.err
    uploaded = _FakeHub.commits[-1]
    assert {"model.safetensors", "config.json", "tokenizer.json", "modeling_cgdmer.py", "README.md"} <= set(uploaded)
    assert not [p for p in uploaded if p.startswith("checkpoint-") or p.endswith((".bin", ".pt", ".pth"))]
