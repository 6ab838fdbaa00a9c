"""The registry of data readers: each reader module (`ptbxl`, `mimic`, `cinc`) declares its `READER`
(`common.Reader`: name, layout detector, loader, label sets, default label set, display name); this module
lists them. A new reader is a module with its `READER` plus one entry in `_MODULES`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from . import cinc, mimic, ptbxl
from .common import LayoutError, Reader

_MODULES = (ptbxl, mimic, cinc)  # the order in which layouts are detected
READERS: dict[str, Reader] = {module.READER.name: module.READER for module in _MODULES}


def detect_layout(root: Union[str, Path]) -> str:
    """The name of the reader whose layout `root` is in (`"ptbxl"`, `"mimic"`, `"cinc"`); a `LayoutError` naming
    what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Data folder not found: {root}")
    for reader in READERS.values():
        if reader.detect(root):
            return reader.name
    markers = [reader.marker for reader in READERS.values()]
    raise LayoutError(f"{root} is in no known layout: missing {', '.join(markers[:-1])} or {markers[-1]}.")


def reader_of_label_set(label_set: Optional[str]) -> Optional[Reader]:
    """The reader that has the label set `label_set` (`None` when none has it)."""
    return next((reader for reader in READERS.values() if label_set in reader.label_sets), None)


def dataset_name(label_set: Optional[str]) -> Optional[str]:
    """The display name of the data set a label set reads ("PTB-XL" for "super", "CPSC2018" for "cpsc2018");
    `None` for a label set no reader has."""
    reader = reader_of_label_set(label_set)
    return reader.dataset_name(label_set) if reader is not None else None


__all__ = ["READERS", "Reader", "dataset_name", "detect_layout", "reader_of_label_set"]
