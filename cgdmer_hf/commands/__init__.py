"""Subcommands of the `cgdmer` CLI (see `cgdmer_hf.cli`)."""

from pathlib import Path


def check_inputs(model_dir: str, data: str) -> None:
    """Fail early, naming the path, when the model folder or the data is missing; then quiet transformers'
    progress bars (the commands print their own)."""
    if not (Path(model_dir) / "config.json").is_file():
        raise FileNotFoundError(f"Model folder not found: {model_dir} (no config.json)")
    if not Path(data).exists():
        raise FileNotFoundError(f"Data folder not found: {data}")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
