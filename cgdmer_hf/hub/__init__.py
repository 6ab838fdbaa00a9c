"""Sharing CG-DMER models on the Hugging Face Hub: folder validation, the generated model card, and the push.

A shareable folder is what `model.save_pretrained(d)`, `processor.save_pretrained(d)` (and the pipeline's
`save_pretrained(d)`) write: safetensors weights, `config.json` with `auto_map`, the copied model/processing/
pipeline code, the feature extractor and tokenizer files. `push_model_dir` checks it, renders the model card from
the Jinja template `resources/model_card_template.md` and uploads everything in one commit, without writing into the
folder. Modules: `folder` (writing, reading and validating a folder), `card` (results rows and the model card); the
push is here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import validate_repo_id

from .card import (
    CARD_TAGS,
    DEFAULT_EVALUATION_PROTOCOL,
    DEFAULT_TRAINING_DATA,
    TEMPLATE_PATH,
    card_results,
    input_specification,
    load_results,
    make_model_card,
)
from .folder import (
    TRAINING_FILES,
    PathLike,
    _files_to_upload,
    code_files,
    count_parameters,
    left_out_training_files,
    save_model_dir,
    validate_model_dir,
)


def push_model_dir(
    model_dir: PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: Optional[str] = None,
    commit_message: str = "Upload CG-DMER model",
    results_json: Union[PathLike, dict, list, None] = None,
    token: Optional[str] = None,
    **card_kwargs: Any,
) -> CommitInfo:
    """Upload a saved CG-DMER model folder to the Hub as one commit, with a generated `README.md` model card.

    The folder is validated first (`validate_model_dir`) and never written to: the card is generated in memory
    and replaces any `README.md` of the folder in the upload. Everything goes into a single commit (one
    `create_commit` call), so a failed upload leaves the repository as it was.

    Args:
        model_dir: folder written by `model.save_pretrained` + `processor.save_pretrained` (+ the pipeline's).
        repo_id: `namespace/name` (or `name` in your own namespace); created if needed.
        private: create the repository as private (ignored when it exists already).
        revision: branch to push to (created from `main` if needed); default `main`.
        commit_message: summary of the commit.
        results_json: evaluation results for the card (see `load_results`).
        token: Hub token (default: the saved login / `HF_TOKEN`).
        **card_kwargs: passed to `make_model_card` (license, training_data, ...).

    Returns:
        The `CommitInfo` of the new commit (`.oid` is the revision to pin).

    Raises:
        ValueError / FileNotFoundError: invalid repo id, incomplete or invalid folder, invalid results.
        huggingface_hub.errors.HfHubHTTPError: the Hub refused or failed the upload (nothing was committed).
    """
    model_dir = Path(model_dir)
    try:
        validate_repo_id(repo_id)
    except ValueError as err:
        raise ValueError(f"Invalid repo id {repo_id!r}: {err}") from None
    validate_model_dir(model_dir)
    load_results(results_json)  # fail on bad results before any network call
    files = _files_to_upload(model_dir)
    api = HfApi(token=token)
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        card = make_model_card(model_dir, results_json, repo_id=repo_id, **card_kwargs)
        operations = [CommitOperationAdd(path_in_repo=p.relative_to(model_dir).as_posix(), path_or_fileobj=str(p))
                      for p in files]
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode("utf-8")))
        return api.create_commit(repo_id, operations, commit_message=commit_message, revision=revision)
    except HfHubHTTPError as err:
        err.append_to_message(f"\nPushing {model_dir} to {repo_id} failed; nothing was committed and the local "
                              "folder is unchanged.")
        raise



__all__ = [
    "CARD_TAGS",
    "DEFAULT_EVALUATION_PROTOCOL",
    "DEFAULT_TRAINING_DATA",
    "TEMPLATE_PATH",
    "TRAINING_FILES",
    "card_results",
    "code_files",
    "count_parameters",
    "input_specification",
    "left_out_training_files",
    "load_results",
    "make_model_card",
    "push_model_dir",
    "save_model_dir",
    "validate_model_dir",
]
