"""Model folders for the Hub: writing one (`save_model_dir`), reading and validating it (`validate_model_dir`,
`code_files`, `count_parameters`) and the files an upload takes."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any, Optional, Union

PathLike = Union[str, Path]

CONFIG_NAME = "config.json"

FEATURE_EXTRACTOR_NAME = "preprocessor_config.json"

PROCESSOR_NAME = "processor_config.json"

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model")

SAFE_WEIGHTS_NAME = "model.safetensors"

SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"

# Files that unpickle (execute code) on load: never uploaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")

# NumPy files, uploaded only when they hold plain arrays (an object dtype is a pickle inside).
ARRAY_SUFFIXES = (".npy", ".npz")

# What `cgdmer pretrain` writes besides the model (Trainer checkpoints and pickled arguments): left out of the
# upload, so that a pretraining output folder is pushed as it is (patterns of `huggingface_hub`'s upload rules).
TRAINING_FILES = ("checkpoint-*/", "training_args.bin")


def save_model_dir(folder: PathLike, model: Any, processor: Any,
                   pipeline_task: Optional[str] = "zero-shot-ecg-classification") -> Path:
    """Save everything a Hub repository needs into `folder`: the model (safetensors, config with `auto_map`,
    model code), the processor (feature extractor, tokenizer, processing code) and, unless `pipeline_task` is
    None, the pipeline (`custom_pipelines` in the config and the pipeline code)."""
    folder = Path(folder)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    if pipeline_task is not None:
        from transformers import pipeline

        pipe = pipeline(pipeline_task, model=model, feature_extractor=processor.feature_extractor,
                        tokenizer=processor.tokenizer)
        pipe.save_pretrained(folder)
    return folder



def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"Could not read {path}: {err}") from None



def _feature_extractor_dict(model_dir: Path) -> Optional[dict[str, Any]]:
    """The saved feature-extractor settings: `preprocessor_config.json`, or the `feature_extractor` entry of a
    transformers-5 `processor_config.json`."""
    if (model_dir / FEATURE_EXTRACTOR_NAME).is_file():
        return _read_json(model_dir / FEATURE_EXTRACTOR_NAME)
    if (model_dir / PROCESSOR_NAME).is_file():
        processor = _read_json(model_dir / PROCESSOR_NAME)
        if isinstance(processor.get("feature_extractor"), dict):
            return processor["feature_extractor"]
    return None



def _auto_map_modules(auto_map: Any) -> set[str]:
    """Module names referenced by an `auto_map` (values like `"modeling_x.Cls"`, `"repo--modeling_x.Cls"` or
    `[slow, fast]` lists)."""
    refs: list[str] = []
    for value in (auto_map or {}).values():
        refs.extend(v for v in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(v, str))
    return {ref.split("--")[-1].rsplit(".", 1)[0] for ref in refs}



def _relative_imports(path: Path) -> set[str]:
    """Sibling modules imported with `from .x import ...` (what transformers copies with remote code)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}



def code_files(model_dir: PathLike) -> list[str]:
    """The `.py` files a `trust_remote_code=True` load imports from this folder: the modules named in the
    `auto_map` of every config and in `custom_pipelines`, plus their `from .x import` siblings. Raises
    `FileNotFoundError` naming a missing one."""
    model_dir = Path(model_dir)
    modules: set[str] = set()
    for name in (CONFIG_NAME, FEATURE_EXTRACTOR_NAME, PROCESSOR_NAME, "tokenizer_config.json"):
        if (model_dir / name).is_file():
            config = _read_json(model_dir / name)
            modules |= _auto_map_modules(config.get("auto_map"))
            for task in (config.get("custom_pipelines") or {}).values():
                modules |= _auto_map_modules({"impl": task.get("impl")})
    found, todo = set(), sorted(modules)
    while todo:
        module = todo.pop()
        if module in found:
            continue
        path = model_dir / f"{module}.py"
        if not path.is_file():
            raise FileNotFoundError(
                f"{model_dir} is not a complete model: {path.name} (named in auto_map/custom_pipelines or imported "
                "by another code file) is missing; save with register_for_auto_class so the code is copied"
            )
        found.add(module)
        todo.extend(_relative_imports(path) - found)
    return sorted(f"{m}.py" for m in found)



def _has_objects(path: Path) -> bool:
    """Whether a `.npy` file, or an array of a `.npz` file, holds Python objects (a pickle inside): what
    `np.load(..., allow_pickle=False)` refuses. A file it cannot read counts as one."""
    import zipfile

    import numpy as np

    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)  # `mmap_mode` reads a .npy header only
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                for name in loaded.files:
                    _ = loaded[name]  # reading a member is what refuses an object array
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # numpy: ValueError for object arrays and pickles
        return True
    return False



def _weight_files(model_dir: Path) -> list[Path]:
    if (model_dir / SAFE_WEIGHTS_INDEX_NAME).is_file():
        index = _read_json(model_dir / SAFE_WEIGHTS_INDEX_NAME)
        return [model_dir / name for name in sorted(set(index.get("weight_map", {}).values()))]
    return [model_dir / SAFE_WEIGHTS_NAME]



def _count_file_parameters(path: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())



def count_parameters(model_dir: PathLike) -> int:
    """Number of parameters stored in the folder's safetensors files (read from their headers only)."""
    return sum(_count_file_parameters(path) for path in _weight_files(Path(model_dir)))



def validate_model_dir(model_dir: PathLike) -> dict[str, Any]:
    """Check that `model_dir` holds a complete, loadable CG-DMER model and return its `config.json`.

    Complete means: `config.json` of model type `cgdmer` with an `auto_map`; safetensors weights whose headers
    read and whose data cover the file (a truncated file fails here); no pickle files among those uploaded (an
    object-dtype `.npy`/`.npz` is one; the training files of `cgdmer pretrain`, [`TRAINING_FILES`], are not
    uploaded); the feature extractor (`preprocessor_config.json` or `processor_config.json`) agreeing with the
    model's sampling rate, duration and leads; tokenizer files; and every code file that `trust_remote_code=True`
    would import.

    Raises:
        FileNotFoundError: the folder or one of the required files is missing (the message names it).
        ValueError: a file is invalid or inconsistent (the message names it).
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"Model folder not found: {model_dir}")

    def missing(what: str, hint: str) -> FileNotFoundError:
        return FileNotFoundError(f"{model_dir} is not a complete model: {what} is missing ({hint})")

    if not (model_dir / CONFIG_NAME).is_file():
        raise missing(CONFIG_NAME, "save the model with model.save_pretrained(folder)")
    config = _read_json(model_dir / CONFIG_NAME)
    if config.get("model_type") != "cgdmer":
        raise ValueError(f"{model_dir / CONFIG_NAME} is not a CG-DMER config (model_type={config.get('model_type')!r})")
    if not config.get("auto_map"):
        raise ValueError(f"{model_dir / CONFIG_NAME} has no auto_map: save with the cgdmer_hf package imported")

    files = _files_to_upload(model_dir)
    pickles = [p.relative_to(model_dir).as_posix() for p in files if p.suffix in PICKLE_SUFFIXES]
    pickles += [p.relative_to(model_dir).as_posix() for p in files if p.suffix in ARRAY_SUFFIXES and _has_objects(p)]
    if pickles:
        raise ValueError(f"{model_dir} holds pickle files {pickles} (object arrays in .npy/.npz are pickles); only "
                         "safetensors weights and plain arrays are shared (remove them)")
    from safetensors import SafetensorError

    for path in _weight_files(model_dir):
        if not path.is_file():
            raise missing(f"the weights file {path.name}", "save the model with model.save_pretrained(folder)")
        try:
            _count_file_parameters(path)
        except (SafetensorError, OSError) as err:
            raise ValueError(f"Weights file {path} is unreadable (truncated or corrupt): {err}") from None

    fe = _feature_extractor_dict(model_dir)
    if fe is None:
        raise missing(f"the feature extractor ({FEATURE_EXTRACTOR_NAME} or {PROCESSOR_NAME})",
                      "save the processor with processor.save_pretrained(folder)")
    if not any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        raise missing(f"the tokenizer (one of {list(TOKENIZER_FILES)})",
                      "save the processor with processor.save_pretrained(folder)")
    ecg = config.get("ecg_config", {})
    for key in ("sampling_rate", "duration", "lead_names"):
        if key in fe and key in ecg and fe[key] != ecg[key]:
            raise ValueError(
                f"The feature extractor's {key}={fe[key]!r} does not match the model's ecg_config.{key}={ecg[key]!r} "
                f"in {model_dir}: the saved preprocessing would not produce the model's input"
            )
    code_files(model_dir)
    return config



def _sorted_files(model_dir: Path) -> tuple[list[Path], list[Path]]:
    """The files of the folder to upload, and those left out as training files of `cgdmer pretrain`
    ([`TRAINING_FILES`]); hidden files, caches and a local README.md (replaced by the card) are in neither."""
    from huggingface_hub.utils import filter_repo_objects

    def key(path: Path) -> str:
        return path.relative_to(model_dir).as_posix()

    files = [p for p in sorted(model_dir.rglob("*")) if p.is_file() and not any(
        part.startswith(".") or part == "__pycache__" for part in p.relative_to(model_dir).parts)]
    training = list(filter_repo_objects(files, allow_patterns=list(TRAINING_FILES), key=key))
    kept = [p for p in files if p not in training and key(p) != "README.md"]
    return kept, training



def _files_to_upload(model_dir: Path) -> list[Path]:
    return _sorted_files(model_dir)[0]



def left_out_training_files(model_dir: PathLike) -> list[str]:
    """The top-level entries of a folder that the upload leaves out as training files ([`TRAINING_FILES`]), a
    folder with a trailing `/`."""
    model_dir = Path(model_dir)
    parts = [p.relative_to(model_dir).parts for p in _sorted_files(model_dir)[1]]
    return sorted({part[0] + ("/" if len(part) > 1 else "") for part in parts})

