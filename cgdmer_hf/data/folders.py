"""Data folders as the commands and the evaluation harness take them: a `save_to_disk` folder (`Dataset` or
`DatasetDict`, e.g. from `cgdmer prepare`) or a folder in one of the readers' official layouts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

from .readers import READERS, detect_layout


def load_data_folder(path: Union[str, os.PathLike], label_set: Optional[str] = None, feature_extractor=None,
                     cache_dir: Optional[str] = None, require_labels: bool = True):
    """A `save_to_disk` folder (`Dataset` or `DatasetDict`), or a data folder in an official layout read with
    `feature_extractor` (the model's, so that preprocessing matches). `require_labels`: refuse unlabelled layouts."""
    from datasets import load_from_disk

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Data folder not found: {path}")
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return load_from_disk(str(path))
    reader = READERS[detect_layout(path)]
    kwargs: dict[str, Any] = {"feature_extractor": feature_extractor, "cache_dir": cache_dir}
    if reader.default_label_set is not None:
        kwargs["label_set"] = label_set or reader.default_label_set
    elif require_labels:
        labelled = " or ".join(r.display_name for r in READERS.values() if r.label_sets)
        raise ValueError(f"{path} is a {reader.name} folder without diagnostic labels; evaluation needs a labelled "
                         f"data set ({labelled})")
    elif label_set:
        raise ValueError(f"A {reader.name} folder has no label set; drop the label set {label_set!r}")
    return reader.load(path, **kwargs)


def model_feature_extractor(model_dir: Optional[Union[str, os.PathLike]]):
    """The `CGDMERFeatureExtractor` saved in a model folder (`None` if there is none): raw data folders are read
    with it, so that their preprocessing is the model's."""
    if model_dir is None or not any((Path(model_dir) / name).exists()
                                    for name in ("preprocessor_config.json", "processor_config.json")):
        return None
    from ..feature_extraction_cgdmer import CGDMERFeatureExtractor

    return CGDMERFeatureExtractor.from_pretrained(str(model_dir))


__all__ = ["load_data_folder", "model_feature_extractor"]
