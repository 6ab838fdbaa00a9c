"""Class prompt sets for zero-shot ECG classification (`cgdmer_hf/resources/prompts/*.json`).

Each set maps a class name of a label set (`cgdmer_hf.data`) to English descriptions: first the plain class name
(`cgdmer_hf.data.labels.plain_class_names`), then findings phrased as the reports phrase them. The descriptions
were written from domain knowledge and the SCP-ECG statement descriptions of PTB-XL's `scp_statements.csv`, with
report wording taken from training folds (1-8) only (no test-fold record was read), and passed through
`cgdmer_hf.reports.clean_report`, which maps the German and Swedish device statements to English as it does for
the pretraining reports. Pass a set to the pipeline as `candidate_labels=load_prompt_set("ptbxl_super")`: the
descriptions of a class are a prompt ensemble.

The shipped sets are the files of `resources/prompts/` (a new set is a new file). The set of a label set is named
`<reader>_<label set>` or `<label set>` (`ptbxl_super` for PTB-XL's `super`, `cpsc2018` for CinC's `cpsc2018`).
Prompts are checked by the pipeline's `build_prompts` (the one validator) and, for scoring, cleaned with
`clean_report` like the pretraining reports (`clean_prompts`).

`plain_prompt_set(label_set)` is the untuned headline setting: each class described by its plain English name
alone (`scp_statements.csv` descriptions for PTB-XL, the CinC `Dx` names), no prompt written or chosen for it.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

from .pipeline_cgdmer import Prompts, build_prompts

_PROMPTS_DIR = resources.files("cgdmer_hf") / "resources" / "prompts"
_SCP_STATEMENTS = resources.files("cgdmer_hf") / "sample_data" / "scp_statements.csv"  # the official PTB-XL file
PLAIN_NAMES = "plain"  # `EvaluationSettings(prompts=PLAIN_NAMES)`: the plain class names of the label set
PROMPT_SETS = tuple(sorted(p.name[: -len(".json")] for p in _PROMPTS_DIR.iterdir() if p.name.endswith(".json")))


def label_set_prompts() -> dict[str, str]:
    """Label set name (as stored by the `cgdmer_hf.data` readers) -> its shipped prompt set."""
    from .data import READERS

    found = {}
    for reader in READERS.values():
        for label_set in reader.label_sets:
            name = next((n for n in (f"{reader.name}_{label_set}", label_set) if n in PROMPT_SETS), None)
            if name is not None:
                found[label_set] = name
    return found


def __getattr__(name: str):
    if name == "LABEL_SET_PROMPTS":  # computed on first use: it reads the reader registry (`cgdmer_hf.data`)
        return label_set_prompts()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _read(path: Union[str, Path], source: str) -> dict[str, list[str]]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"Prompt set {source} is not valid JSON: {err}") from None
    return validate_prompt_set(data, source)


def validate_prompt_set(data: object, source: str = "prompt set") -> dict[str, list[str]]:
    """A `{label: [description, ...]}` mapping checked by the pipeline's `build_prompts` (string labels and
    descriptions, valid Unicode, no empty or duplicated label; blank descriptions dropped); a `ValueError`
    prefixed with `source` names the problem. Anything but a JSON object (a list would read as labels) is
    refused."""
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
        return _read(_PROMPTS_DIR / f"{name}.json", name)
    if Path(name).suffix == ".json" or Path(name).exists():
        if not Path(name).is_file():
            raise FileNotFoundError(f"Prompt set file not found: {name}")
        return _read(name, name)
    raise ValueError(f"Unknown prompt set {name!r}; choose one of {PROMPT_SETS} or give a JSON file path")


def prompt_set_for_label_set(label_set: Optional[str]) -> str:
    """The shipped prompt set of a label set; a `ValueError` naming label sets without one."""
    known = label_set_prompts()
    if label_set not in known:
        raise ValueError(
            f"No prompt set for label set {label_set!r}: zero-shot classification knows "
            f"{sorted(known)}; pass your own prompts (a JSON file {{label: [descriptions]}})"
        )
    return known[label_set]


def plain_prompt_set(label_set: Optional[str]) -> dict[str, list[str]]:
    """`{class: [plain English name]}` of a label set (`cgdmer_hf.data.labels.plain_class_names`: PTB-XL's
    `scp_statements.csv` as bundled in `sample_data/`, the CinC mapping's `Dx` names), each name through
    `clean_report`; a `ValueError` for a label set that is neither PTB-XL's nor CinC's."""
    from .data.labels import CINC_LABEL_SETS, PTBXL_LABEL_SETS, plain_class_names, read_scp_statements
    from .reports import clean_report

    if label_set in CINC_LABEL_SETS:
        names = plain_class_names(label_set)
    elif label_set in PTBXL_LABEL_SETS:
        with resources.as_file(_SCP_STATEMENTS) as path:
            names = plain_class_names(label_set, read_scp_statements(path))
    else:
        raise ValueError(f"No plain class names for label set {label_set!r}; known: "
                         f"{sorted(PTBXL_LABEL_SETS + CINC_LABEL_SETS)}")
    return {name: [clean_report(text)] for name, text in names.items()}


def align_prompts(prompts: Mapping[str, Union[str, Sequence[str]]], label_names: Sequence[str]
                  ) -> dict[str, list[str]]:
    """Prompts in `label_names` order; a `ValueError` names classes without prompts."""
    missing = [name for name in label_names if name not in prompts]
    if missing:
        raise ValueError(f"The prompt set has no descriptions for the class(es) {missing}")
    return {name: list(prompts[name]) if not isinstance(prompts[name], str) else [prompts[name]]
            for name in label_names}


def clean_prompts(prompts: Mapping[str, Union[str, Sequence[str]]]) -> Prompts:
    """Prompts as zero-shot scoring reads them: each description cleaned with `clean_report` (as the pretraining
    reports are), then checked by `build_prompts`: `((label, (description, ...)), ...)`."""
    from .reports import clean_report

    return build_prompts({label: [clean_report(d) for d in ([descs] if isinstance(descs, str) else descs)]
                          for label, descs in prompts.items()})


__all__ = ["PLAIN_NAMES", "PROMPT_SETS", "LABEL_SET_PROMPTS", "align_prompts", "plain_prompt_set", "label_set_prompts",
           "load_prompt_set",
           "prompt_set_for_label_set", "validate_prompt_set", "clean_prompts"]
