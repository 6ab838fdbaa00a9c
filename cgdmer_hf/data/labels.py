"""Label sets: PTB-XL (from `scp_statements.csv`) and PhysioNet/CinC (`# Dx:` SNOMED CT codes).

PTB-XL label sets follow the PTB-XL benchmark (Strodthoff et al. 2021): every `scp_codes` key is kept whatever
its likelihood (0 included) and mapped through `scp_statements.csv`; label names are sorted alphabetically, as
scikit-learn's `MultiLabelBinarizer` orders them in that benchmark.
"""

from __future__ import annotations

import ast
import csv
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np

RESOURCES = Path(__file__).resolve().parent / "resources"

# ---------------------------------------------------------------- PTB-XL
PTBXL_LABEL_SETS = ("super", "sub", "form", "rhythm", "diagnostic", "all")
"""`super` (5 diagnostic classes), `sub` (23 subclasses), `form` (19), `rhythm` (12), `diagnostic` (44), `all` (71)."""

# ecg_ids removed as duplicate recordings in PTB-XL v1.0.2/v1.0.3 (`ptbxl_v103_changelog.txt`, 38 ids).
PTBXL_DROPPED_IN_V103 = frozenset(
    {137, 139, 140, 141, 142, 143, 145, 456, 458, 459, 461, 462, 2506, 2511, 3795, 3798, 3800, 3801, 3832, 5817,
     7777, 7779, 7782, 9821, 9825, 9888, 11810, 11814, 11815, 11817, 11838, 13791, 13793, 13796, 13797, 13799,
     15742, 18150}
)  # fmt: skip


def read_scp_statements(path: Union[str, Path]) -> dict[str, dict[str, str]]:
    """Read `scp_statements.csv` as `{scp_code: row}` (the first, unnamed column holds the code)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or "diagnostic_class" not in rows[0]:
        raise ValueError(f"{path} is not a PTB-XL scp_statements.csv (no 'diagnostic_class' column).")
    header = rows[0]
    return {row[0]: dict(zip(header, row)) for row in rows[1:] if row}


def _is_one(value: str) -> bool:
    return value.strip() not in ("", "nan") and float(value) == 1.0


def _statement_labels(code: str, row: Mapping[str, str], label_set: str) -> Optional[str]:
    if label_set == "all":
        return code
    if label_set == "form":
        return code if _is_one(row["form"]) else None
    if label_set == "rhythm":
        return code if _is_one(row["rhythm"]) else None
    if not _is_one(row["diagnostic"]):
        return None
    column = {"super": "diagnostic_class", "sub": "diagnostic_subclass", "diagnostic": None}[label_set]
    value = code if column is None else row[column].strip()
    return value or None


def _check_ptbxl_label_set(label_set: str) -> None:
    if label_set not in PTBXL_LABEL_SETS:
        raise ValueError(f"Unknown PTB-XL label_set {label_set!r}; choose one of {PTBXL_LABEL_SETS}.")


def ptbxl_label_names(statements: Mapping[str, Mapping[str, str]], label_set: str = "super") -> list[str]:
    """All label names of a PTB-XL label set, sorted (5 / 23 / 19 / 12 / 44 / 71 for the official statements)."""
    _check_ptbxl_label_set(label_set)
    names = {_statement_labels(code, row, label_set) for code, row in statements.items()}
    return sorted(name for name in names if name)


def ptbxl_record_labels(
    scp_codes: Mapping[str, float], statements: Mapping[str, Mapping[str, str]], label_set: str = "super"
) -> list[str]:
    """Labels of one record: each `scp_codes` key (any likelihood, 0 included) mapped through the statements."""
    _check_ptbxl_label_set(label_set)
    labels = {_statement_labels(code, statements[code], label_set) for code in scp_codes if code in statements}
    return sorted(label for label in labels if label)


def parse_scp_codes(text: str) -> dict[str, float]:
    """Parse the `scp_codes` dict literal of `ptbxl_database.csv`."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as err:
        raise ValueError(f"scp_codes is not a dict literal: {text!r}") from err
    if not isinstance(value, dict):
        raise ValueError(f"scp_codes is not a dict literal: {text!r}")
    return value


def multi_hot(labels: Iterable[str], names: Sequence[str]) -> np.ndarray:
    """Multi-hot float32 vector over `names`; labels outside `names` are ignored."""
    index = {name: i for i, name in enumerate(names)}
    vector = np.zeros(len(names), dtype=np.float32)
    for label in labels:
        if label in index:
            vector[index[label]] = 1.0
    return vector


# ---------------------------------------------------------------- PhysioNet/CinC (SNOMED CT)
CINC_LABEL_SETS = ("cpsc2018", "chapman", "cinc2021")
"""`cpsc2018`: the 9 CPSC 2018 classes; `chapman`: the 38 Chapman-Shaoxing-Ningbo classes of MERL's benchmark;
`cinc2021`: the 26 scored classes of the PhysioNet/CinC Challenge 2021 (equivalent codes merged)."""

# The 9 CPSC 2018 classes: name -> SNOMED CT codes. The first code is the one CinC 2020/2021 uses for the CPSC
# records (checked against `cinc2021_dx_mapping_*.csv`, column CPSC); the others are codes CinC 2021 scores as the
# same diagnosis (CRBBB/RBBB, CLBBB/LBBB, SVPB/PAC, PVC/VPB) so other sources map onto the class too.
CPSC2018_CLASSES: dict[str, tuple[str, ...]] = {
    "NORM": ("426783006",),
    "AF": ("164889003",),
    "I-AVB": ("270492004",),
    "LBBB": ("164909002", "733534002"),
    "RBBB": ("59118001", "713427006"),
    "PAC": ("284470004", "63593006"),
    "PVC": ("164884008", "427172004", "17338001"),
    "STD": ("429622005",),
    "STE": ("164931005",),
}
# The abbreviations of the CinC 2020 release of CPSC 2018 (`#Dx: RBBB`), mapped to their SNOMED CT code.
CPSC2018_ABBREVIATIONS = {
    "Normal": "426783006", "AF": "164889003", "I-AVB": "270492004", "LBBB": "164909002", "RBBB": "59118001",
    "PAC": "284470004", "PVC": "164884008", "STD": "429622005", "STE": "164931005",
}  # fmt: skip
# Pairs CinC 2021 scores as one diagnosis (its `Notes` column): the second code maps onto the first.
CINC2021_EQUIVALENT = {"713427006": "59118001", "733534002": "164909002", "63593006": "284470004",
                       "17338001": "427172004"}  # fmt: skip


def _read_csv(name: str) -> list[dict[str, str]]:
    with open(RESOURCES / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@lru_cache(maxsize=None)
def snomed_names() -> dict[str, str]:
    """SNOMED CT code -> abbreviation, from the CinC 2021 scored and unscored mapping tables."""
    rows = _read_csv("cinc2021_dx_mapping_scored.csv") + _read_csv("cinc2021_dx_mapping_unscored.csv")
    return {row["SNOMEDCTCode"]: row["Abbreviation"] for row in rows}


@lru_cache(maxsize=None)
def _cinc_table(label_set: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    if label_set == "cpsc2018":
        names = tuple(CPSC2018_CLASSES)
        pairs = tuple((code, name) for name, codes in CPSC2018_CLASSES.items() for code in codes)
    elif label_set == "chapman":
        rows = _read_csv("chapman_merl_labels.csv")
        names = tuple(row["label"] for row in rows)
        pairs = tuple((row["snomed_ct"], row["label"]) for row in rows)
    elif label_set == "cinc2021":
        rows = [row for row in _read_csv("cinc2021_dx_mapping_scored.csv") if row["SNOMEDCTCode"] not in
                CINC2021_EQUIVALENT]  # fmt: skip
        names = tuple(row["Abbreviation"] for row in rows)
        code_to_name = {row["SNOMEDCTCode"]: row["Abbreviation"] for row in rows}
        code_to_name.update({alias: code_to_name[code] for alias, code in CINC2021_EQUIVALENT.items()})
        pairs = tuple(code_to_name.items())
    else:
        raise ValueError(f"Unknown CinC label_set {label_set!r}; choose one of {CINC_LABEL_SETS}.")
    return names, pairs


def cinc_label_names(label_set: str = "cpsc2018") -> list[str]:
    """Class names of a CinC label set (9 for `cpsc2018`, 38 for `chapman`, 26 for `cinc2021`)."""
    return list(_cinc_table(label_set)[0])


def cinc_code_map(label_set: str = "cpsc2018") -> dict[str, str]:
    """SNOMED CT code -> class name for a CinC label set (equivalent codes included)."""
    return dict(_cinc_table(label_set)[1])


_DX_LINE = re.compile(r"^\s*#?\s*Dx\s*:\s*(.*)$", re.IGNORECASE)


def parse_dx(comments: Iterable[str]) -> tuple[list[str], list[str]]:
    """SNOMED CT codes of a WFDB header's `# Dx:` comment, and the tokens that are neither codes nor known
    CPSC 2018 abbreviations. CPSC abbreviations (CinC 2020 release: `Dx: AF,RBBB`) are translated to codes."""
    codes, unknown = [], []
    for comment in comments:
        match = _DX_LINE.match(comment)
        if not match:
            continue
        for token in (t.strip() for t in match.group(1).split(",")):
            if token.isdigit():
                codes.append(token)
            elif token in CPSC2018_ABBREVIATIONS:
                codes.append(CPSC2018_ABBREVIATIONS[token])
            elif token:
                unknown.append(token)
    return codes, unknown


def cinc_record_labels(codes: Iterable[str], label_set: str = "cpsc2018") -> list[str]:
    """Class names (in label-set order) of a record's SNOMED CT codes; codes outside the set are ignored."""
    code_map = cinc_code_map(label_set)
    present = {code_map[code] for code in codes if code in code_map}
    return [name for name in cinc_label_names(label_set) if name in present]


# ---------------------------------------------------------------- plain English class names
# PTB-XL superclasses and the subclasses that are not SCP codes themselves have no description in
# `scp_statements.csv`: these are the PTB-XL paper's names (Wagner et al. 2020, table 2) and its statement
# descriptions joined. Every other PTB-XL class is an SCP code, named by its `description`.
PTBXL_GROUP_NAMES = {
    "NORM": "normal ECG", "MI": "myocardial infarction", "STTC": "ST/T change", "CD": "conduction disturbance",
    "HYP": "hypertrophy", "_AVB": "AV block", "LAFB/LPFB": "left anterior or left posterior fascicular block",
    "ISCA": "ischemic in anterior leads", "ISCI": "ischemic in inferior leads",
}  # fmt: skip


def plain_class_names(label_set: str, statements: Optional[Mapping[str, Mapping[str, str]]] = None
                      ) -> dict[str, str]:
    """`{class: plain English name}` of a label set, with no tuning: the `description` of a PTB-XL SCP code
    (`statements`, as `read_scp_statements` gives them; needed for PTB-XL sets), `PTBXL_GROUP_NAMES` for
    PTB-XL's classes that are groups of codes, the `Dx` name of the CinC 2021 mapping for CinC classes."""
    if label_set in CINC_LABEL_SETS:
        rows = _read_csv("cinc2021_dx_mapping_scored.csv") + _read_csv("cinc2021_dx_mapping_unscored.csv")
        dx = {row["SNOMEDCTCode"]: row["Dx"] for row in rows}
        first_code: dict[str, str] = {}
        for code, name in _cinc_table(label_set)[1]:
            first_code.setdefault(name, code)
        return {name: dx[first_code[name]] for name in cinc_label_names(label_set)}
    if statements is None:
        raise ValueError(f"plain_class_names({label_set!r}) needs PTB-XL's scp_statements (read_scp_statements)")
    names = {}
    for name in ptbxl_label_names(statements, label_set):
        if name in PTBXL_GROUP_NAMES:
            names[name] = PTBXL_GROUP_NAMES[name]
        elif name in statements and statements[name].get("description", "").strip():
            names[name] = statements[name]["description"].strip()
        else:
            raise ValueError(f"No plain English name for PTB-XL class {name!r} of label set {label_set!r}")
    return names
