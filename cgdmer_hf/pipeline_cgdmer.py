"""Zero-shot ECG classification and ECG feature extraction pipelines for CG-DMER.

    >>> from transformers import pipeline
    >>> classifier = pipeline("zero-shot-ecg-classification", model="path/to/cgdmer")  # with `import cgdmer_hf`
    >>> classifier("records100/00001_lr", candidate_labels=["normal ecg", "atrial fibrillation"])
    [{'label': 'normal ecg', 'score': 0.91}, {'label': 'atrial fibrillation', 'score': 0.02}]

Scores are independent probabilities `sigmoid(exp(t) * cos(ecg, label) + b)` (the SigLIP head the model was
trained with), so several labels can be likely at once (multi-label diagnosis); they do not sum to one. When the
model's config holds a `zero_shot_centre` (the mean embedding of its pretraining reports, set by `pretrain`), each
ECG's likeness to that average report, relative to the average pretraining ECG's, is taken out of the cosine: it no
longer raises all the ECG's labels at once (`CGDMERModel.zero_shot_logits`). When it holds a report bank
(`zero_shot_reports`, the distinct pretraining reports, set with the centre), a label that shares a word with the
bank is scored through it instead: its raw score is the expected share of its words in the reports the ECG is
likely to have, each bank report weighted by its count and its SigLIP similarity to the ECG
(`CGDMERModel.zero_shot_labels`, `zero_shot_logits`). When the
model's config holds a `zero_shot_calibration` (fitted on a validation split), the scores are its calibrated
probabilities `sigmoid(scale * logit + bias)` by default (`calibrated=False` gives the raw ones); every result says
which (`"calibrated"`). A label none of whose words the report tokenizer learned from the pretraining reports is
scored anyway, with a warning naming it: its score is unreliable.

    >>> classifier.retrieve_reports("records100/00001_lr", ["sinus rhythm. normal ecg", "atrial fibrillation"])
    [{'report': 'sinus rhythm. normal ecg', 'index': 0, 'score': 0.71}, ...]

This is a model file: it imports only torch, numpy and transformers, so that `pipe.save_pretrained(folder)` can copy
it next to the model and `pipeline(model=folder, trust_remote_code=True)` works without the package.
"""

from __future__ import annotations

import numbers
import os
import re
import string
import unicodedata
from collections.abc import Iterable
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Pipeline
from transformers.utils import logging

logger = logging.get_logger(__name__)

Prompts = tuple[tuple[str, tuple[str, ...]], ...]
_LABELS_REQUIRED = "candidate_labels is required: a list of labels or a mapping label -> descriptions"


def build_prompts(
    candidate_labels: Union[Sequence[str], Mapping[str, Union[str, Sequence[str]]], None],
    hypothesis_template: Optional[str] = None,
) -> Prompts:
    """Validate and normalise `candidate_labels` into `((label, (description, ...)), ...)`.

    A list of labels (or one string, one label) gives one description per label, `hypothesis_template.format(label)`
    (default `"{}"`); a mapping `label -> description(s)` is a prompt ensemble and takes no template (blank
    descriptions are dropped). Labels and texts must be valid Unicode strings; non-strings (`None`, numbers, bytes)
    raise a `TypeError`, empty, duplicated (after NFC and whitespace normalisation) or unencodable ones, a bad
    template and an empty set a `ValueError`, each naming the offending value.
    """
    if candidate_labels is None:
        raise ValueError(_LABELS_REQUIRED)
    if isinstance(candidate_labels, Mapping):
        if hypothesis_template is not None:
            raise ValueError(f"hypothesis_template={hypothesis_template!r} applies to a list of labels, but "
                             "candidate_labels is a mapping label -> descriptions, whose descriptions are used as "
                             "given; drop hypothesis_template or write it into the descriptions")
        _check_texts(list(candidate_labels), "candidate_labels")
        items = [(label, _descriptions(label, d)) for label, d in candidate_labels.items()]
    else:
        template = _check_template("{}" if hypothesis_template is None else hypothesis_template)
        labels = _label_list(candidate_labels)
        _check_texts(labels, "candidate_labels")
        items = [(label, (unicodedata.normalize("NFC", template.format(label)),)) for label in labels]
    if not items:
        raise ValueError("candidate_labels is empty: give at least one label")
    _check_unique([label for label, _ in items])
    return tuple(items)


def _label_list(candidate_labels: Any) -> list[Any]:
    """`candidate_labels` as a list: one string is one label; bytes and non-iterables are refused."""
    if isinstance(candidate_labels, str):
        return [candidate_labels]
    if isinstance(candidate_labels, (bytes, bytearray)) or not isinstance(candidate_labels, Iterable):
        raise TypeError("candidate_labels must be a list of strings or a mapping label -> descriptions, got "
                        f"{type(candidate_labels).__name__} {candidate_labels!r}")
    return list(candidate_labels)


def _descriptions(label: str, descriptions: Any) -> tuple[str, ...]:
    """The non-blank, NFC-normalised descriptions of one label of a prompt ensemble."""
    if isinstance(descriptions, str):
        descriptions = [descriptions]
    if isinstance(descriptions, (bytes, bytearray, Mapping)) or not isinstance(descriptions, Iterable):
        raise TypeError(f"candidate label {label!r} must map to a string or a list of strings, got "
                        f"{type(descriptions).__name__} {descriptions!r}")
    descriptions = list(descriptions)
    _check_texts(descriptions, f"the descriptions of candidate label {label!r}", allow_blank=True)
    kept = tuple(unicodedata.normalize("NFC", d) for d in descriptions if d.strip())
    if not kept:
        raise ValueError(f"candidate label {label!r} has no description")
    return kept


def _check_texts(texts: Sequence[Any], what: str, allow_blank: bool = False) -> None:
    """Refuse non-strings (`TypeError`), strings the tokenizer cannot encode and, unless `allow_blank`, blank
    strings (`ValueError`); the message names `what` and every offending value."""
    not_str = [t for t in texts if not isinstance(t, str)]
    if not_str:
        hint = " (decode bytes first, e.g. label.decode('utf-8'))" if any(isinstance(t, bytes) for t in not_str) else ""
        raise TypeError(f"{what} must be strings; got the non-string value(s) {not_str!r}{hint}")
    invalid = [t for t in texts if not _is_encodable(t)]
    if invalid:
        raise ValueError(f"{what} must be valid Unicode text; {invalid!r} contain a lone surrogate code point, "
                         "which the tokenizer cannot encode")
    if not allow_blank and any(not t.strip() for t in texts):
        raise ValueError(f"{what} contains an empty label: {list(texts)!r}")


# processing_cgdmer._check_texts makes the same encodability check: this file imports no sibling module, so that it
# is copied alone as remote code (a `from .processing_cgdmer import` would pull in the feature extractor too).
def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_template(template: Any) -> str:
    """`template` if it is a string with exactly one `{}` (literal braces doubled); else a clear error."""
    if not isinstance(template, str):
        raise TypeError(f"hypothesis_template must be a string with one '{{}}' where the label goes, got "
                        f"{type(template).__name__} {template!r}")
    try:
        fields = [_field(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
        problem = None if fields == ["{}"] else (f"it has the placeholders {fields}" if fields else
                                                 "it has no placeholder")
    except ValueError as err:
        problem = f"it is not a valid format string ({err})"
    if problem:
        raise ValueError(f"hypothesis_template must contain '{{}}' exactly once, where the label goes (write '{{{{' "
                         f"and '}}}}' for literal braces), got {template!r}: {problem}")
    _check_texts([template], "hypothesis_template", allow_blank=True)
    return template


def _field(name: str, spec: Optional[str], conversion: Optional[str]) -> str:
    return "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"


def _check_unique(labels: Sequence[str]) -> None:
    """Refuse labels that are equal after NFC and whitespace normalisation (they would be scored twice)."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        groups.setdefault(" ".join(unicodedata.normalize("NFC", label).split()), []).append(label)
    duplicated = [group for group in groups.values() if len(group) > 1]
    if duplicated:
        names = sorted({label for group in duplicated for label in group})
        note = "" if all(len(set(g)) == 1 for g in duplicated) else \
            " (equal after Unicode NFC normalisation and whitespace collapsing)"
        raise ValueError(f"candidate_labels has duplicated labels: {names}{note}")


def _check_top_k(top_k: Any) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral):
        raise TypeError(f"top_k must be a positive integer, got {type(top_k).__name__} {top_k!r}")
    if top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k}")
    return int(top_k)


def _report_list(reports: Any) -> list[str]:
    """Report texts as a non-empty list of non-blank strings (one string is one report)."""
    reports = _label_list(reports)
    if not reports:
        raise ValueError("reports is empty: give at least one report text")
    _check_texts(reports, "reports")
    return reports


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def unseen_labels(prompts: Prompts, tokenizer) -> list[str]:
    """The labels none of whose words the report tokenizer learned as a whole token: a word (letters only, 3 or
    more; all words of a label that has no such word) counts when it tokenizes to exactly one token that is neither
    the unknown token nor a `##` continuation piece. Such a label never occurred in the tokenizer's training text
    (the pretraining reports), so the model cannot know what it means."""
    unseen = []
    for label, descriptions in prompts:
        words = re.findall(r"[^\W\d_]+", " ".join(descriptions))
        words = [w for w in words if len(w) >= 3] or words
        if not any(_is_whole_token(word, tokenizer) for word in words):
            unseen.append(label)
    return unseen


def _is_whole_token(word: str, tokenizer) -> bool:
    pieces = tokenizer.tokenize(word)
    return len(pieces) == 1 and pieces[0] != tokenizer.unk_token and not pieces[0].startswith("##")


def _check_lead_names(lead_names: Any) -> None:
    """A single string is refused: it would be read as one lead name per character."""
    if isinstance(lead_names, (str, bytes)):
        raise TypeError(f"lead_names must be a list with one name per row of the ECG, got the string {lead_names!r}"
                        f"; for a one-lead ECG pass [{lead_names!r}]")


class _ECGPipelineMixin:
    """ECG input handling shared by the CG-DMER pipelines: arrays, WFDB paths, `wfdb.Record`s, dicts, batches."""

    @staticmethod
    def _split_inputs(ecgs: Any) -> Any:
        """A 3-D array/tensor `(batch, leads, samples)` becomes a list, so it is processed as a batch."""
        if isinstance(ecgs, (np.ndarray, torch.Tensor)) and ecgs.ndim == 3:
            return list(ecgs)
        if isinstance(ecgs, tuple):
            return list(ecgs)
        return ecgs

    def _call(self, ecgs: Any, kwargs: dict[str, Any]) -> Any:
        """`Pipeline.__call__` on the split inputs; an empty batch gives `[]` once the arguments are validated."""
        ecgs = self._split_inputs(ecgs)
        if isinstance(ecgs, list) and not ecgs:
            self._validate_arguments({k: v for k, v in kwargs.items() if k not in ("batch_size", "num_workers")})
            return []
        return Pipeline.__call__(self, ecgs, **kwargs)

    def _validate_arguments(self, kwargs: dict[str, Any]) -> None:
        """Refuse bad call arguments without running the model (an empty batch still checks them)."""
        self._sanitize_parameters(**kwargs)

    def _preprocess_ecg(self, ecg: Any, sampling_rate: Optional[float], lead_names: Optional[Sequence[str]]):
        if isinstance(ecg, Mapping):
            unknown = set(ecg) - {"ecg", "sampling_rate", "lead_names"}
            if "ecg" not in ecg or unknown:
                raise ValueError("A dict input needs the key 'ecg' and may have 'sampling_rate' and 'lead_names'; "
                                 f"got keys {sorted(ecg)}")
            sampling_rate = ecg.get("sampling_rate", sampling_rate)
            lead_names = ecg.get("lead_names", lead_names)
            ecg = ecg["ecg"]
        _check_lead_names(lead_names)
        if self.feature_extractor is None:
            raise ValueError("This pipeline has no feature extractor; pass feature_extractor= to pipeline()")
        try:
            inputs = self.feature_extractor(ecg, sampling_rate=sampling_rate, lead_names=lead_names,
                                            return_tensors="pt")
        except (ValueError, FileNotFoundError, TypeError) as err:
            raise _rewrapped(err, f"The feature extractor rejected the ECG {_describe(ecg)}: {err}") from None
        if inputs["ecg_values"].shape[0] != 1:
            raise ValueError(f"Expected one ECG per input, got a batch of {inputs['ecg_values'].shape[0]}; pass a "
                             "list (or a 3-D array) to classify several ECGs")
        inputs["ecg_values"] = inputs["ecg_values"].to(self.dtype or torch.float32)
        return inputs

    def _ecg_kwargs(self, model_inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {k: model_inputs[k] for k in self.feature_extractor.model_input_names if k in model_inputs}


def _rewrapped(err: Exception, message: str) -> Exception:
    """`err`'s type with `message`; a plain `ValueError` / `TypeError` for types that take other arguments
    (`UnicodeDecodeError`)."""
    try:
        return type(err)(message)
    except TypeError:
        return (TypeError if isinstance(err, TypeError) else ValueError)(message)


def _describe(ecg: Any) -> str:
    if isinstance(ecg, (str, os.PathLike)):
        return os.fspath(ecg)
    if hasattr(ecg, "record_name") and hasattr(ecg, "fs"):
        return f"wfdb.Record {ecg.record_name!r}"
    shape = getattr(ecg, "shape", None)
    return f"of shape {tuple(shape)}" if shape is not None else f"of type {type(ecg).__name__}"


class ZeroShotECGClassificationPipeline(_ECGPipelineMixin, Pipeline):
    """Zero-shot multi-label ECG classification with a CG-DMER dual encoder.

    Each candidate label is embedded with the report encoder (a prompt ensemble averages the normalised embeddings
    of the label's descriptions, then normalises again); each ECG is embedded with the ECG encoder; a label's score
    is `sigmoid(model.zero_shot_logits(ecg, label))` (through the report bank when the config holds one and the
    label shares a word with it; else the SigLIP logit, less the ECG's similarity to the average pretraining
    report when the config holds a `zero_shot_centre`), an independent probability per label,
    calibrated by default when the model's config holds a `zero_shot_calibration` (a label whose text was
    calibrated gets its own scale and bias, any other label the shared pair). The model computes all three
    (`CGDMERModel.zero_shot_labels`, `zero_shot_ecg_embeddings`, `zero_shot_scores`). A label with no
    word the report tokenizer learned from the pretraining reports (`unseen_labels`) is scored with a warning
    naming it, once per call; so is a label whose calibration has scale 0 (a constant calibrated score).

    Retrieval: `retrieve_reports(ecgs, reports)` ranks report texts for each ECG, `retrieve_ecgs(reports, ecgs)`
    ECGs for each report, by cosine similarity of the shared embeddings (`CGDMERModel.retrieve`).

    Inputs: an array `(leads, samples)` with `sampling_rate` (and `lead_names` when the rows are not the standard
    I, II, III, aVR, aVL, aVF, V1-V6), a WFDB record path, a `wfdb.Record`, a dict `{"ecg": ..., "sampling_rate":
    ..., "lead_names": ...}`, or a list / 3-D array of them (one result list per ECG; `batch_size=` batches the
    model calls; an empty list gives `[]`). Text embeddings of the candidate labels are computed once per call.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = True
    _load_tokenizer = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._label_cache: dict[Prompts, Any] = {}

    def __call__(self, ecgs: Any, **kwargs: Any) -> Union[list[dict[str, Any]], list[list[dict[str, Any]]]]:
        """Classify one ECG or a batch.

        Args:
            ecgs: see the class docstring.
            candidate_labels (`list[str]` or `dict[str, list[str]]`): distinct non-empty string labels (one
                string is one label), or a mapping label -> one or more descriptions (a prompt ensemble, e.g.
                `cgdmer_hf.load_prompt_set("ptbxl_super")`). See `build_prompts` for what is refused.
            hypothesis_template (`str`, defaults to `"{}"`): how a label of a list becomes its text, with exactly one
                `{}`; refused with a mapping. Reports are terse ("sinus rhythm. left bundle branch block."), so the
                label alone works best unless the model was trained otherwise.
            sampling_rate (`float`): rate (Hz) of array input. lead_names (`list[str]`): names of its rows, a list
                even for one lead (a string is refused).
            top_k (`int`, *optional*): keep the `top_k` best labels (all of them when there are fewer).
            calibrated (`bool`, defaults to `True`): apply the model's `zero_shot_calibration` when it has one;
                `False` gives the raw `sigmoid(logit)` (the report bank posterior for a label that shares a word
                with the model's bank, else of the centred logit when the model has a centre).

        Returns:
            For one ECG, a list of `{"label": str, "score": float, "calibrated": bool}` sorted by decreasing score
            (`calibrated`: whether the score is a calibrated probability); for several, a list of such lists in
            input order (`[]` for an empty list).
        """
        self._label_cache = {}
        return self._call(ecgs, kwargs)

    def _sanitize_parameters(
        self,
        candidate_labels: Any = None,
        hypothesis_template: Optional[str] = None,
        sampling_rate: Optional[float] = None,
        lead_names: Optional[Sequence[str]] = None,
        top_k: Optional[int] = None,
        calibrated: Optional[bool] = None,
        **kwargs: Any,
    ):
        if kwargs:
            raise TypeError(f"Unexpected arguments for zero-shot-ecg-classification: {sorted(kwargs)}")
        preprocess: dict[str, Any] = {}
        forward: dict[str, Any] = {}
        postprocess: dict[str, Any] = {}
        if sampling_rate is not None:
            preprocess["sampling_rate"] = sampling_rate
        if lead_names is not None:
            preprocess["lead_names"] = lead_names
        if candidate_labels is not None or hypothesis_template is not None:
            forward["prompts"] = build_prompts(candidate_labels, hypothesis_template)
            postprocess["labels"] = [label for label, _ in forward["prompts"]]
        if top_k is not None:
            postprocess["top_k"] = _check_top_k(top_k)
        if calibrated is not None:
            forward["calibrated"] = postprocess["calibrated"] = _check_flag(calibrated, "calibrated")
        return preprocess, forward, postprocess

    def _validate_arguments(self, kwargs: dict[str, Any]) -> None:
        _, forward, _ = self._sanitize_parameters(**kwargs)
        if "prompts" not in {**self._forward_params, **forward}:
            raise ValueError(_LABELS_REQUIRED)

    def preprocess(self, ecg: Any, sampling_rate: Optional[float] = None,
                   lead_names: Optional[Sequence[str]] = None) -> dict[str, torch.Tensor]:
        return self._preprocess_ecg(ecg, sampling_rate, lead_names)

    def zero_shot_labels(self, prompts: Prompts) -> Any:
        """The labels as the model scores them (`CGDMERModel.zero_shot_labels`: normalised embeddings, ensembles
        averaged, and report bank weights when the model has a bank), with the warnings of unseen labels."""
        if prompts in self._label_cache:
            return self._label_cache[prompts]
        if self.tokenizer is None:
            raise ValueError("This pipeline has no tokenizer; pass tokenizer= to pipeline()")
        for label in unseen_labels(prompts, self.tokenizer):
            logger.warning(f"Label {label!r} has no word the report tokenizer learned from the pretraining reports; "
                           "its score is unreliable")
        for j in self.model.base_model.zero_shot_constant_labels([d for _, d in prompts]):
            logger.warning(f"Label {prompts[j][0]!r}: its calibrated score is the same for every ECG (the model "
                           "ranked it backwards on the validation split the calibration was fitted on)")
        self._label_cache[prompts] = self.model.base_model.zero_shot_labels(prompts, self.tokenizer)
        return self._label_cache[prompts]

    def _forward(self, model_inputs: dict[str, torch.Tensor], prompts: Optional[Prompts] = None,
                 calibrated: bool = True) -> dict[str, Any]:
        if prompts is None:
            raise ValueError(_LABELS_REQUIRED)
        model = self.model.base_model
        labels = self.zero_shot_labels(prompts)
        ecg = model.zero_shot_ecg_embeddings(**self._ecg_kwargs(model_inputs))
        return {"scores": model.zero_shot_scores(ecg, labels, [d for _, d in prompts], calibrated)}

    def postprocess(self, model_outputs: dict[str, Any], labels: Sequence[str] = (), top_k: Optional[int] = None,
                    calibrated: bool = True) -> list[dict[str, Any]]:
        scores = model_outputs["scores"].reshape(-1).tolist()
        calibrated = self.model.base_model.zero_shot_calibrated(calibrated)
        ranked = sorted(zip(labels, scores, strict=True), key=lambda pair: -pair[1])[:top_k]
        return [{"label": label, "score": score, "calibrated": calibrated} for label, score in ranked]

    # -- retrieval ----------------------------------------------------------------------------------------------
    def ecg_embeddings(self, ecgs: Any, sampling_rate: Optional[float] = None,
                       lead_names: Optional[Sequence[str]] = None) -> torch.Tensor:
        """`(n, projection_dim)` normalised shared embeddings of one ECG or a list (inputs as for `__call__`)."""
        ecgs = self._split_inputs(ecgs)
        model = self.model.base_model
        with torch.no_grad():
            chunks = [model.zero_shot_ecg_embeddings(**self._ensure_tensor_on_device(
                self._ecg_kwargs(self._preprocess_ecg(ecg, sampling_rate, lead_names)), self.device))
                for ecg in (ecgs if isinstance(ecgs, list) else [ecgs])]
        if not chunks:
            raise ValueError("ecgs is empty: give at least one ECG")
        return torch.cat(chunks)

    def report_embeddings(self, reports: Union[str, Sequence[str]]) -> torch.Tensor:
        """`(n, projection_dim)` normalised embeddings of report texts (`CGDMERModel.zero_shot_report_embeddings`)."""
        if self.tokenizer is None:
            raise ValueError("This pipeline has no tokenizer; pass tokenizer= to pipeline()")
        return self.model.base_model.zero_shot_report_embeddings(_report_list(reports), self.tokenizer)

    def retrieve_reports(self, ecgs: Any, reports: Sequence[str], top_k: int = 5, sampling_rate: Optional[float] = None,
                         lead_names: Optional[Sequence[str]] = None) -> list:
        """For each ECG, the `top_k` most similar of `reports` (clean them as the pretraining reports were, with
        `cgdmer_hf.reports.clean_report`): a list of `{"report": str, "index": int, "score": float}` (cosine
        similarity, best first); a list of such lists for a list of ECGs (`[]` for an empty list)."""
        reports, top_k = _report_list(reports), _check_top_k(top_k)
        split = self._split_inputs(ecgs)
        if isinstance(split, list) and not split:
            return []
        model = self.model.base_model
        scores, indices = model.retrieve(self.ecg_embeddings(split, sampling_rate, lead_names),
                                         self.report_embeddings(reports), top_k)
        found = [[{"report": reports[i], "index": i, "score": s} for i, s in zip(row_i, row_s, strict=True)]
                 for row_i, row_s in zip(indices.tolist(), scores.tolist(), strict=True)]
        return found if isinstance(split, list) else found[0]

    def retrieve_ecgs(self, reports: Union[str, Sequence[str]], ecgs: Any, top_k: int = 5,
                      sampling_rate: Optional[float] = None, lead_names: Optional[Sequence[str]] = None) -> list:
        """For each report, the `top_k` most similar of `ecgs` (a list, inputs as for `__call__`): a list of
        `{"index": int, "score": float}` (index into `ecgs`, cosine similarity, best first); a list of such lists
        for a list of reports."""
        top_k = _check_top_k(top_k)
        model = self.model.base_model
        scores, indices = model.retrieve(self.report_embeddings(reports),
                                         self.ecg_embeddings(ecgs, sampling_rate, lead_names), top_k)
        found = [[{"index": i, "score": s} for i, s in zip(row_i, row_s, strict=True)]
                 for row_i, row_s in zip(indices.tolist(), scores.tolist(), strict=True)]
        return found[0] if isinstance(reports, str) else found


class ECGFeatureExtractionPipeline(_ECGPipelineMixin, Pipeline):
    """ECG embeddings from a CG-DMER model, for users' own downstream models (not a registered task, so that a
    saved folder names one pipeline; build it directly):

        >>> extractor = ECGFeatureExtractionPipeline(model=AutoModel.from_pretrained(folder),
        ...                                          feature_extractor=AutoFeatureExtractor.from_pretrained(folder))
        >>> extractor("records100/00001_lr")  # a list of floats

    `kind="representation"` (default) gives the pooled `[shared; specific]` features used by linear probes;
    `kind="shared"` the text-aligned embedding (normalised with `normalize=True`). Inputs as in
    [`ZeroShotECGClassificationPipeline`] (an empty list gives `[]`); returns a list of floats per ECG
    (`return_tensors=True`: a tensor). `normalize` and `return_tensors` must be booleans.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = True
    _load_tokenizer = False

    KINDS = ("representation", "shared")

    def __call__(self, ecgs: Any, **kwargs: Any):
        return self._call(ecgs, kwargs)

    def _sanitize_parameters(self, sampling_rate=None, lead_names=None, kind=None, normalize=None,
                             return_tensors=None, **kwargs):
        if kwargs:
            raise TypeError(f"Unexpected arguments for ecg-feature-extraction: {sorted(kwargs)}")
        preprocess = {k: v for k, v in (("sampling_rate", sampling_rate), ("lead_names", lead_names)) if v is not None}
        forward: dict[str, Any] = {}
        if kind is not None:
            if kind not in self.KINDS:
                raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
            forward["kind"] = kind
        if normalize is not None:
            forward["normalize"] = _check_flag(normalize, "normalize")
        postprocess = {}
        if return_tensors is not None:
            postprocess["return_tensors"] = _check_flag(return_tensors, "return_tensors")
        return preprocess, forward, postprocess

    def preprocess(self, ecg, sampling_rate=None, lead_names=None):
        return self._preprocess_ecg(ecg, sampling_rate, lead_names)

    def _forward(self, model_inputs, kind: str = "representation", normalize: bool = False):
        model = self.model.base_model
        inputs = self._ecg_kwargs(model_inputs)
        if kind == "shared":
            return {"embeddings": model.zero_shot_ecg_embeddings(**inputs, normalize=normalize)}
        embeds = model.get_ecg_representation(**inputs).float()
        return {"embeddings": F.normalize(embeds, dim=-1) if normalize else embeds}

    def postprocess(self, model_outputs, return_tensors: bool = False):
        embeds = model_outputs["embeddings"][0]
        return embeds if return_tensors else embeds.tolist()


__all__ = ["ZeroShotECGClassificationPipeline", "ECGFeatureExtractionPipeline", "build_prompts", "unseen_labels"]
