"""Checkpoints of a pretraining run: the completion marker framing every save, finding the newest complete
checkpoint to resume from, checking its pickled files, and the output-folder rules of `pretrain`."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

import torch
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, sort_checkpoints
from transformers.trainer_utils import _re_checkpoint as _CHECKPOINT_NAME  # what get_last_checkpoint matches

logger = logging.getLogger("cgdmer_hf.training")

# Files whose presence marks a folder as holding a model (or a run) that `pretrain` must not overwrite.
_MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


# Written into each checkpoint folder by `CGDMERPretrainer`: `{"complete": false}` before its first file and
# `{"complete": true, ...}` after its last one, so that an interrupted save never looks complete.
CHECKPOINT_MARKER = "checkpoint_complete.json"


TRAINER_STATE_NAME = "trainer_state.json"


# Checkpoint files the Trainer unpickles on resume (always with `weights_only=True`).
_CHECKPOINT_PICKLES = ("*.pt", "*.pth")



def _write_marker(folder: Path, **content: Any) -> None:
    """Write the checkpoint's completion marker atomically (a temporary file renamed over it)."""
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{CHECKPOINT_MARKER}.tmp"
    temp.write_text(json.dumps(content), encoding="utf-8")
    os.replace(temp, folder / CHECKPOINT_MARKER)



def _json_or_none(path: Path) -> Any:
    """The parsed JSON file, or `None` when it is missing or unreadable (e.g. cut short by a kill)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None



def checkpoint_problem(folder: Union[str, os.PathLike]) -> Optional[str]:
    """Why `folder` is not a complete checkpoint, or `None` when it is one.

    Complete: its [`CHECKPOINT_MARKER`] says so (or, for a checkpoint saved without markers, by an older version
    or a plain `Trainer`, its `trainer_state.json`, which the Trainer writes after every other file, reads) and
    none of its weight, state or JSON files is empty."""
    folder = Path(folder)
    marker = _json_or_none(folder / CHECKPOINT_MARKER) if (folder / CHECKPOINT_MARKER).exists() else {}
    if not isinstance(marker, dict) or marker.get("complete") is False:
        return "its save was interrupted"
    if not marker and _json_or_none(folder / TRAINER_STATE_NAME) is None:
        return f"no readable {TRAINER_STATE_NAME}: its save was interrupted"
    empty = sorted(p.name for p in folder.iterdir() if p.suffix in (".safetensors", ".pt", ".pth", ".bin", ".json")
                   and p.is_file() and p.stat().st_size == 0)
    return f"{empty[0]} is empty" if empty else None



def _load_weights_only(path: Path) -> None:
    """`torch.load(path, weights_only=True)` as the Trainer resumes, memory-mapped (cheap) when the format allows."""
    from transformers.trainer_pt_utils import safe_globals

    with safe_globals():
        try:
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:  # torch's legacy (non-zip) format cannot be memory-mapped
            if "mmap" not in str(err):
                raise
            torch.load(path, map_location="cpu", weights_only=True)



def check_checkpoint_files(checkpoint: Union[str, os.PathLike]) -> None:
    """Load every file of the checkpoint that resuming unpickles, the way the Trainer does (`weights_only=True`),
    before any training starts: one that is not plain tensors and numbers (e.g. a pickle that would run code) is a
    `ValueError` naming it."""
    for path in sorted(p for pattern in _CHECKPOINT_PICKLES for p in Path(checkpoint).glob(pattern)):
        try:
            _load_weights_only(path)
        except Exception as err:  # noqa: BLE001 - any failure means the file cannot be resumed from
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            reason = next((line for line in lines if "unsupported" in line.lower()), lines[0] if lines else repr(err))
            raise ValueError(f"Checkpoint file {path} cannot be loaded safely with torch.load(weights_only=True), "
                             f"so it was not loaded: {reason}") from None



def _checkpoints(folder: Path) -> list[Path]:
    """The `checkpoint-<step>` folders of a run folder, newest (highest step) first (transformers' order and
    names)."""
    found = sort_checkpoints(str(folder)) if folder.is_dir() else []
    return [Path(p) for p in reversed(found) if _CHECKPOINT_NAME.search(Path(p).name)]



class VerifiedCheckpoint(str):
    """A checkpoint folder returned by [`resolve_checkpoint`]: complete and its pickled files checked.
    [`pretrain`] takes it as it is, without checking it again."""



def _verified(folder: Path) -> VerifiedCheckpoint:
    """`folder` after [`check_checkpoint_files`], which the local main process of each machine runs (the others
    read the same files)."""
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        check_checkpoint_files(folder)
    return VerifiedCheckpoint(folder)



def resolve_checkpoint(path: Union[str, os.PathLike, bool],
                       output_dir: Union[str, os.PathLike]) -> VerifiedCheckpoint:
    """The checkpoint folder to resume from: `path` itself when it is a checkpoint, else the newest *complete*
    `checkpoint-*` inside `path` (a run folder), or inside `output_dir` when `path` is `True`. Incomplete ones (an
    interrupted save, see [`checkpoint_problem`]) are skipped with a warning that names them; the chosen one's
    pickled files are checked with [`check_checkpoint_files`] (once per machine, see [`VerifiedCheckpoint`]).

    Raises:
        FileNotFoundError: no complete checkpoint (the message names the incomplete ones), or `path` names an
            incomplete checkpoint.
        ValueError: a file of the checkpoint cannot be loaded safely.
    """
    folder = Path(output_dir if path is True else path)
    if _CHECKPOINT_NAME.search(folder.name) or (folder / "scheduler.pt").is_file():
        problem = checkpoint_problem(folder) if folder.is_dir() else "it does not exist"
        if problem:
            raise FileNotFoundError(f"Cannot resume from {folder}: {problem}; resume from the run folder "
                                    f"{folder.parent} to use its newest complete checkpoint")
        return _verified(folder)
    skipped = []
    for candidate in _checkpoints(folder):
        problem = checkpoint_problem(candidate)
        if problem is None:
            if skipped:
                logger.warning("Resuming from %s, the newest complete checkpoint; skipped %s", candidate,
                               "; ".join(skipped))
            return _verified(candidate)
        skipped.append(f"the incomplete {candidate.name} ({problem})")
    if skipped:
        raise FileNotFoundError(f"No complete checkpoint to resume from in {folder}: {'; '.join(skipped)}")
    raise FileNotFoundError(f"No checkpoint to resume from in {folder} (expected a {PREFIX_CHECKPOINT_DIR}-* "
                            "folder written by the Trainer)")



def check_output_dir(output_dir: Union[str, os.PathLike], resume_from: Optional[str] = None,
                     overwrite: bool = False) -> None:
    """Refuse (`FileExistsError`) an output folder that already holds a model or training checkpoints, unless
    resuming from a checkpoint inside it or `overwrite=True`."""
    folder = Path(output_dir)
    if overwrite or not folder.exists():
        return
    if not folder.is_dir():
        raise FileExistsError(f"Output path {folder} exists and is not a folder")
    if resume_from is not None and Path(resume_from).resolve().parent == folder.resolve():
        return
    found = [name for name in _MODEL_FILES if (folder / name).exists()]
    found += sorted(p.name for p in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*"))[:1]
    if found:
        raise FileExistsError(f"Output folder {folder} already holds a model or run ({found[0]}); choose another "
                              "output folder, resume from its checkpoint, or overwrite it (--overwrite, "
                              "overwrite_output_dir=True)")



def _set_aside_checkpoints(output_dir: Union[str, os.PathLike]) -> Optional[Path]:
    """Move the `checkpoint-*` folders of a previous run in `output_dir` into a new hidden folder there, so that
    an overwriting run neither overwrites them before it succeeds nor resumes from them; `pretrain` deletes that
    folder once the new model is saved. Returns it (`None` when there was nothing to move)."""
    previous = _checkpoints(Path(output_dir))
    if not previous:
        return None
    aside = Path(tempfile.mkdtemp(prefix=".previous-checkpoints-", dir=output_dir))
    for folder in previous:
        os.replace(folder, aside / folder.name)
    logger.warning("Overwriting %s: the previous run's checkpoints are kept in %s until the new model is saved",
                   output_dir, aside)
    return aside

