"""Zero-shot ECG classification and ECG feature extraction pipelines for CG-DMER.

    >>> from transformers import pipeline
    >>> classifier = pipeline("zero-shot-ecg-classification", model="path/to/cgdmer")  # with `import cgdmer_hf`
    >>> classifier("records100/00001_lr", candidate_labels=["normal ecg", "atrial fibrillation"])
    [{'label': 'normal ecg', 'score': 0.91}, {'label': 'atrial fibrillation', 'score': 0.02}]

Scores are independent probabilities `sigmoid(exp(t) * cos(ecg, label) + b)` (the SigLIP head the model was
trained with), so several labels can be likely at once (multi-label diagnosis); they do not sum to one.

This is a model file: it imports only torch, numpy and transformers, so that `pipe.save_pretrained(folder)` can copy
it next to the model and `pipeline(model=folder, trust_remote_code=True)` works without the package.
"""

from __future__ import annotations

import os
import unicodedata
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Pipeline

Prompts = tuple[tuple[str, tuple[str, ...]], ...]


def build_prompts(
    candidate_labels: Union[Sequence[str], Mapping[str, Union[str, Sequence[str]]], None],
    hypothesis_template: str = "{}",
) -> Prompts:
    """Normalise `candidate_labels` into `((label, (description, ...)), ...)`.

    A list of labels gives one description per label, `hypothesis_template.format(label)`; a mapping
    `label -> description(s)` is a prompt ensemble (the template is not applied). Empty inputs raise a `ValueError`
    naming the problem.
    """
    if candidate_labels is None:
        raise ValueError("candidate_labels is required: a list of labels or a mapping label -> descriptions")
    if isinstance(candidate_labels, str):
        candidate_labels = [candidate_labels]
    if isinstance(candidate_labels, Mapping):
        items = []
        for label, descriptions in candidate_labels.items():
            if isinstance(descriptions, str):
                descriptions = [descriptions]
            descriptions = tuple(unicodedata.normalize("NFC", str(d)) for d in (descriptions or ()) if str(d).strip())
            if not descriptions:
                raise ValueError(f"candidate label {label!r} has no description")
            items.append((str(label), descriptions))
    else:
        if "{}" not in hypothesis_template:
            raise ValueError(f"hypothesis_template must contain '{{}}', got {hypothesis_template!r}")
        labels = [str(label) for label in candidate_labels]
        blank = [label for label in labels if not label.strip()]
        if blank:
            raise ValueError(f"candidate_labels contains an empty label: {labels}")
        items = [(label, (unicodedata.normalize("NFC", hypothesis_template.format(label)),)) for label in labels]
    if not items:
        raise ValueError("candidate_labels is empty: give at least one label")
    names = [label for label, _ in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"candidate_labels has duplicated labels: {duplicates}")
    return tuple(items)


def _dual_encoder(model: torch.nn.Module) -> torch.nn.Module:
    """The `CGDMERModel` inside `model` (itself, or the `.cgdmer` of a pretraining / classification model)."""
    core = model if hasattr(model, "get_ecg_features") else getattr(model, "cgdmer", None)
    if core is None or not hasattr(core, "get_ecg_features"):
        raise ValueError(f"{type(model).__name__} is not a CG-DMER model (no get_ecg_features)")
    return core


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

    def _preprocess_ecg(self, ecg: Any, sampling_rate: Optional[float], lead_names: Optional[Sequence[str]]):
        if isinstance(ecg, Mapping):
            unknown = set(ecg) - {"ecg", "sampling_rate", "lead_names"}
            if "ecg" not in ecg or unknown:
                raise ValueError("A dict input needs the key 'ecg' and may have 'sampling_rate' and 'lead_names'; "
                                 f"got keys {sorted(ecg)}")
            sampling_rate = ecg.get("sampling_rate", sampling_rate)
            lead_names = ecg.get("lead_names", lead_names)
            ecg = ecg["ecg"]
        if self.feature_extractor is None:
            raise ValueError("This pipeline has no feature extractor; pass feature_extractor= to pipeline()")
        try:
            inputs = self.feature_extractor(ecg, sampling_rate=sampling_rate, lead_names=lead_names,
                                            return_tensors="pt")
        except (ValueError, FileNotFoundError, TypeError) as err:
            raise type(err)(f"The feature extractor rejected the ECG {_describe(ecg)}: {err}") from None
        if inputs["ecg_values"].shape[0] != 1:
            raise ValueError(f"Expected one ECG per input, got a batch of {inputs['ecg_values'].shape[0]}; pass a "
                             "list (or a 3-D array) to classify several ECGs")
        inputs["ecg_values"] = inputs["ecg_values"].to(self.dtype or torch.float32)
        return inputs

    @staticmethod
    def _ecg_kwargs(model_inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {k: model_inputs[k] for k in ("ecg_values", "lead_mask", "ecg_attention_mask") if k in model_inputs}


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
    is `sigmoid(model.similarity_logits(ecg, label))`, an independent probability per label.

    Inputs: an array `(leads, samples)` with `sampling_rate` (and `lead_names` when the rows are not the standard
    I, II, III, aVR, aVL, aVF, V1-V6), a WFDB record path, a `wfdb.Record`, a dict `{"ecg": ..., "sampling_rate":
    ..., "lead_names": ...}`, or a list / 3-D array of them (one result list per ECG; `batch_size=` batches the
    model calls). Text embeddings of the candidate labels are computed once per call.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = True
    _load_tokenizer = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._label_cache: dict[Prompts, torch.Tensor] = {}

    def __call__(self, ecgs: Any, **kwargs: Any) -> Union[list[dict[str, Any]], list[list[dict[str, Any]]]]:
        """Classify one ECG or a batch.

        Args:
            ecgs: see the class docstring.
            candidate_labels (`list[str]` or `dict[str, list[str]]`): the labels, or a mapping label -> one or more
                descriptions (a prompt ensemble, e.g. `cgdmer_hf.load_prompt_set("ptbxl_super")`).
            hypothesis_template (`str`, defaults to `"{}"`): how a label of a list becomes its text; unused with a
                mapping. Reports are terse ("sinus rhythm. left bundle branch block."), so the label alone works
                best unless the model was trained otherwise.
            sampling_rate (`float`): rate (Hz) of array input. lead_names (`list[str]`): names of its rows.
            top_k (`int`, *optional*): keep the `top_k` best labels.

        Returns:
            For one ECG, a list of `{"label": str, "score": float}` sorted by decreasing score; for several, a
            list of such lists in input order.
        """
        self._label_cache = {}
        return super().__call__(self._split_inputs(ecgs), **kwargs)

    def _sanitize_parameters(
        self,
        candidate_labels: Any = None,
        hypothesis_template: Optional[str] = None,
        sampling_rate: Optional[float] = None,
        lead_names: Optional[Sequence[str]] = None,
        top_k: Optional[int] = None,
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
            forward["prompts"] = build_prompts(candidate_labels, hypothesis_template or "{}")
            postprocess["labels"] = [label for label, _ in forward["prompts"]]
        if top_k is not None:
            if int(top_k) < 1:
                raise ValueError(f"top_k must be a positive integer, got {top_k}")
            postprocess["top_k"] = int(top_k)
        return preprocess, forward, postprocess

    def preprocess(self, ecg: Any, sampling_rate: Optional[float] = None,
                   lead_names: Optional[Sequence[str]] = None) -> dict[str, torch.Tensor]:
        return self._preprocess_ecg(ecg, sampling_rate, lead_names)

    def label_embeddings(self, prompts: Prompts) -> torch.Tensor:
        """`(num_labels, projection_dim)` normalised text embeddings of the labels (ensembles averaged)."""
        if prompts in self._label_cache:
            return self._label_cache[prompts]
        if self.tokenizer is None:
            raise ValueError("This pipeline has no tokenizer; pass tokenizer= to pipeline()")
        model = _dual_encoder(self.model)
        if not hasattr(model, "text_model"):
            raise ValueError("This model has no report encoder (ecg_only); zero-shot classification needs the text "
                             "tower of a CGDMERModel or CGDMERForPreTraining checkpoint")
        texts = [text for _, descriptions in prompts for text in descriptions]
        max_length = model.config.text_config.max_position_embeddings
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            embeds = F.normalize(model.get_text_features(tokens["input_ids"].to(self.device),
                                                        tokens["attention_mask"].to(self.device)).float(), dim=-1)
        sizes = [len(descriptions) for _, descriptions in prompts]
        labels = torch.stack([chunk.mean(0) for chunk in embeds.split(sizes)])
        self._label_cache[prompts] = F.normalize(labels, dim=-1)
        return self._label_cache[prompts]

    def _forward(self, model_inputs: dict[str, torch.Tensor], prompts: Optional[Prompts] = None) -> dict[str, Any]:
        if prompts is None:
            raise ValueError("candidate_labels is required: a list of labels or a mapping label -> descriptions")
        model = _dual_encoder(self.model)
        labels = self.label_embeddings(prompts)
        ecg = F.normalize(model.get_ecg_features(**self._ecg_kwargs(model_inputs)).float(), dim=-1)
        logits = model.similarity_logits(ecg, labels.to(ecg.device)).float()
        return {"logits": logits}

    def postprocess(self, model_outputs: dict[str, Any], labels: Sequence[str] = (), top_k: Optional[int] = None
                    ) -> list[dict[str, Any]]:
        scores = torch.sigmoid(model_outputs["logits"].reshape(-1)).tolist()
        ranked = sorted(zip(labels, scores), key=lambda pair: -pair[1])[:top_k]
        return [{"label": label, "score": score} for label, score in ranked]


class ECGFeatureExtractionPipeline(_ECGPipelineMixin, Pipeline):
    """ECG embeddings from a CG-DMER model, for users' own downstream models (not a registered task, so that a
    saved folder names one pipeline; build it directly):

        >>> extractor = ECGFeatureExtractionPipeline(model=AutoModel.from_pretrained(folder),
        ...                                          feature_extractor=AutoFeatureExtractor.from_pretrained(folder))
        >>> extractor("records100/00001_lr")  # a list of floats

    `kind="representation"` (default) gives the pooled `[shared; specific]` features used by linear probes;
    `kind="shared"` the text-aligned embedding (normalised with `normalize=True`). Inputs as in
    [`ZeroShotECGClassificationPipeline`]; returns a list of floats per ECG (`return_tensors=True`: a tensor).
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = True
    _load_tokenizer = False

    KINDS = ("representation", "shared")

    def __call__(self, ecgs: Any, **kwargs: Any):
        return super().__call__(self._split_inputs(ecgs), **kwargs)

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
            forward["normalize"] = bool(normalize)
        postprocess = {} if return_tensors is None else {"return_tensors": bool(return_tensors)}
        return preprocess, forward, postprocess

    def preprocess(self, ecg, sampling_rate=None, lead_names=None):
        return self._preprocess_ecg(ecg, sampling_rate, lead_names)

    def _forward(self, model_inputs, kind: str = "representation", normalize: bool = False):
        model = _dual_encoder(self.model)
        inputs = self._ecg_kwargs(model_inputs)
        embeds = model.get_ecg_features(**inputs) if kind == "shared" else model.get_ecg_representation(**inputs)
        embeds = embeds.float()
        return {"embeddings": F.normalize(embeds, dim=-1) if normalize else embeds}

    def postprocess(self, model_outputs, return_tensors: bool = False):
        embeds = model_outputs["embeddings"][0]
        return embeds if return_tensors else embeds.tolist()


__all__ = ["ZeroShotECGClassificationPipeline", "ECGFeatureExtractionPipeline", "build_prompts"]
