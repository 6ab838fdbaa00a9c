"""Subcommands of the `cgdmer` CLI (see `cgdmer_hf.cli`)."""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

STAGING_PREFIX = ".cgdmer-staging-"
REPLACED_INFIX = ".replaced-"  # `.NAME.replaced-*`: where a replaced folder waits until its successor is in place


def check_inputs(model_dir: str, data: str) -> None:
    """Fail early, naming the path, when the model folder or the data is missing; then quiet transformers'
    progress bars (the commands print their own)."""
    if not (Path(model_dir) / "config.json").is_file():
        raise FileNotFoundError(f"Model folder not found: {model_dir} (no config.json)")
    if not Path(data).exists():
        raise FileNotFoundError(f"Data folder not found: {data}")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


# ---- staged outputs: what a command replaces is replaced only once the new version is written ----------------


def _renamable(folder: Path) -> bool:
    """Whether a folder can be renamed as a whole: not a symlink (a folder cannot be renamed onto a link) and not
    a mount point (renaming one fails with EBUSY)."""
    return not (folder.is_symlink() or os.path.ismount(folder))


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _swap_folder(src: Path, dst: Path) -> None:
    """Replace the folder `dst` by `src` with two renames: `dst` into a hidden `.NAME.replaced-*` folder beside it,
    then `src` onto `dst`; the old one is deleted last. Not atomic: a failing second rename moves the old folder
    back; a kill between the two leaves it in `.NAME.replaced-*`, which the next `staged_output` names."""
    aside = Path(tempfile.mkdtemp(prefix=f".{dst.name}{REPLACED_INFIX}", dir=dst.parent))
    try:
        os.replace(dst, aside / dst.name)
    except OSError:
        aside.rmdir()
        raise
    try:
        os.replace(src, dst)
    except OSError:
        os.replace(aside / dst.name, dst)
        aside.rmdir()
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _move_entries(src: Path, dst: Path, drop: Optional[Sequence[str]]) -> None:
    """Move every entry of folder `src` onto the entry of the same name in folder `dst` (see `_replace`), then
    delete the entries of `dst` that `src` did not have and `drop` names (`None`: every one that is not hidden)."""
    new = sorted(p.name for p in src.iterdir())
    for name in new:
        _replace(src / name, dst / name)
    for old in sorted(dst.iterdir()):
        if old.name not in new and not old.name.startswith(".") and (drop is None or old.name in drop):
            _delete(old)


def _replace(src: Path, dst: Path) -> None:
    """Move `src` onto `dst`: a file (or onto a new name) atomically with `os.replace`; a folder as a whole
    (`_swap_folder`), or entry by entry when `dst` is a folder that cannot be renamed (a symlink, a mount point)."""
    if not (src.is_dir() and dst.is_dir()):
        os.replace(src, dst)
    elif _renamable(dst):
        _swap_folder(src, dst)
    else:
        _move_entries(src, dst, drop=None)


def _check_leftovers(home: Path, label: str, names: Sequence[str], target: Path) -> None:
    """Refuse (one line, `FileExistsError`) to start while a killed earlier run's hidden folders are in `home`: its
    staging folder (new output, maybe complete) or a `.NAME.replaced-*` folder (the previous NAME, inside it)."""
    if not home.is_dir():
        return
    found = [f"{p} (new output, not moved in yet)" for p in sorted(home.glob(f"{STAGING_PREFIX}{label}-*"))]
    for name in names:
        found += [f"{p / name} (the previous {name})" for p in sorted(home.glob(f".{name}{REPLACED_INFIX}*"))]
    if found:
        raise FileExistsError(f"An interrupted earlier run left {'; '.join(found)}: move what you want to keep to "
                              f"{target}, delete the rest and run again")


@contextmanager
def staged_output(target: Union[str, os.PathLike], names: Optional[Sequence[str]] = None) -> Iterator[Path]:
    """Write a command's output into a new hidden staging folder and move it onto `target` only when the block
    succeeds; when it fails, `target` is unchanged. Refuses to start while a killed earlier run's staging or
    `.replaced-*` folders are there (see `_check_leftovers`).

    - `names=None`: the block writes the new content of the folder `target`, which replaces the old one as a
      whole. The stage is beside `target` and swapped in by two renames; a symlink or a mount point, which cannot
      be renamed, is staged inside and its entries are replaced instead.
    - `names` given (the entries the command writes into the folder `target`): the stage is inside `target`; each
      entry written replaces the entry of the same name (a subfolder as a whole), the `names` not written this
      time are deleted, and every other entry is kept.

    Each file is replaced atomically, a set of entries one after the other: a kill in between leaves the rest in
    the staging folder, which the next run names.
    """
    target = Path(os.path.abspath(target))  # a real name and parent (for `.`), symlinks kept
    whole = names is None
    in_place = not whole or (target.is_dir() and not _renamable(target))
    home = target if in_place else target.parent
    label = target.name if whole else names[0]
    _check_leftovers(home, label, [target.name] if whole else names, target)
    created = not home.exists()
    home.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{label}-", dir=home))
    try:
        yield stage
        if not in_place:
            _replace(stage, target)
        else:
            _move_entries(stage, target, drop=None if whole else names)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not any(home.iterdir()):
            home.rmdir()
