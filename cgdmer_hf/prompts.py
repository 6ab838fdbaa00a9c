"""Class prompt sets for zero-shot ECG classification (`cgdmer_hf/resources/prompts/*.json`).

Each set maps a class name of a label set (`cgdmer_hf.data`) to English descriptions: first the plain class name
(`cgdmer_hf.data.labels.plain_class_names`), then findings phrased as the reports phrase them. The descriptions
were written from domain knowledge and the SCP-ECG statement descriptions of PTB-XL's `scp_statements.csv`, with
report wording taken from training folds (1-8) only (no test-fold record was read), and passed through
`cgdmer_hf.reports.clean_report`, which maps the German and Swedish device statements to English as it does for
the pretraining reports. Pass a set to the pipeline as `candidate_labels=load_prompt_set("ptbxl_super")`: the
descriptions of a class are a prompt ensemble.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Optional, Union

PROMPT_SETS = ("ptbxl_super", "ptbxl_sub", "ptbxl_form", "ptbxl_rhythm", "cpsc2018")
# Label set name (as stored by `cgdmer_hf.data` readers) -> prompt set.
LABEL_SET_PROMPTS = {"super": "ptbxl_super", "sub": "ptbxl_sub", "form": "ptbxl_form", "rhythm": "ptbxl_rhythm",
                     "cpsc2018": "cpsc2018"}  # fmt: skip


def _read(path: Union[str, Path], source: str) -> dict[str, list[str]]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"Prompt set {source} is not valid JSON: {err}") from None
    return validate_prompt_set(data, source)


def validate_prompt_set(data: object, source: str = "prompt set") -> dict[str, list[str]]:
    """Check a `{label: [description, ...]}` mapping with the pipeline's rules (`build_prompts`: string labels
    and descriptions, valid Unicode, no empty or duplicated label); blank descriptions are dropped. A `ValueError`
    prefixed with `source` names the problem."""
    from .pipeline_cgdmer import build_prompts

    if not isinstance(data, dict) or not data:
        raise ValueError(f"{source} must be a non-empty JSON object {{label: [descriptions]}}")
    try:
        prompts = build_prompts(data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from None
    return {label: list(descriptions) for label, descriptions in prompts}


def load_prompt_set(name: str) -> dict[str, list[str]]:
    """A shipped prompt set by name (`PROMPT_SETS`), or a JSON file path `{label: [descriptions]}`."""
    if name in PROMPT_SETS:
        path = resources.files("cgdmer_hf") / "resources" / "prompts" / f"{name}.json"
        return _read(path, name)
    if Path(name).suffix == ".json" or Path(name).exists():
        if not Path(name).is_file():
            raise FileNotFoundError(f"Prompt set file not found: {name}")
        return _read(name, name)
    raise ValueError(f"Unknown prompt set {name!r}; choose one of {PROMPT_SETS} or give a JSON file path")


def prompt_set_for_label_set(label_set: Optional[str]) -> str:
    """The shipped prompt set of a label set; a `ValueError` naming label sets without one."""
    if label_set not in LABEL_SET_PROMPTS:
        raise ValueError(
            f"No prompt set for label set {label_set!r}: zero-shot classification knows "
            f"{sorted(LABEL_SET_PROMPTS)}; pass your own prompts (a JSON file {{label: [descriptions]}})"
        )
    return LABEL_SET_PROMPTS[label_set]


__all__ = ["PROMPT_SETS", "LABEL_SET_PROMPTS", "load_prompt_set", "prompt_set_for_label_set", "validate_prompt_set"]
