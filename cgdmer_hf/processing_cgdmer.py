"""CG-DMER processor: the ECG feature extractor and the report tokenizer behind one call."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from transformers import BatchFeature, ProcessorMixin
from transformers.utils import TensorType

from .feature_extraction_cgdmer import CGDMERFeatureExtractor


class CGDMERProcessor(ProcessorMixin):
    r"""Wraps a [`CGDMERFeatureExtractor`] and a report tokenizer (`PreTrainedTokenizerFast`).

    `processor(ecg=..., sampling_rate=..., lead_names=..., text=...)` returns `ecg_values`, `lead_mask`,
    `ecg_attention_mask` for the ECGs and `input_ids`, `attention_mask` for the texts (either may be omitted).
    Texts are tokenised as given (the tokenizer lower-cases); clean raw PTB-XL-style reports first with
    `cgdmer_hf.reports.clean_report`.

    Args:
        feature_extractor (`CGDMERFeatureExtractor`): the ECG preprocessing.
        tokenizer (`PreTrainedTokenizerBase`): the report tokenizer.
    """

    def __init__(self, feature_extractor: CGDMERFeatureExtractor, tokenizer: Any):
        super().__init__(feature_extractor, tokenizer)

    def __call__(
        self,
        ecg: Any = None,
        text: Optional[Union[str, Sequence[str]]] = None,
        sampling_rate: Optional[Union[float, Sequence[float]]] = None,
        lead_names: Optional[Union[Sequence[str], Sequence[Sequence[str]]]] = None,
        crop: Optional[str] = None,
        rng: Any = None,
        padding: Union[bool, str] = True,
        truncation: bool = True,
        max_length: Optional[int] = None,
        return_tensors: Optional[Union[str, TensorType]] = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Preprocess ECGs (see `CGDMERFeatureExtractor.__call__`) and/or texts (padded to the longest text and
        truncated to the tokenizer's `model_max_length` by default; extra `kwargs` go to the tokenizer).

        Raises:
            ValueError: neither `ecg` nor `text` is given, or a text is not a non-empty, valid Unicode string.
        """
        if ecg is None and text is None:
            raise ValueError("Give an ECG (ecg=...), a report (text=...) or both")
        data: dict[str, Any] = {}
        if ecg is not None:
            data.update(
                self.feature_extractor(
                    ecg, sampling_rate=sampling_rate, lead_names=lead_names, crop=crop, rng=rng,
                    return_tensors=return_tensors,
                )
            )
        elif sampling_rate is not None or lead_names is not None:
            raise ValueError("sampling_rate and lead_names describe an ECG, but no ecg was given")
        if text is not None:
            _check_texts(text)
            data.update(
                self.tokenizer(
                    text, padding=padding, truncation=truncation, max_length=max_length,
                    return_tensors=return_tensors, **kwargs,
                )
            )
        return BatchFeature(data, tensor_type=return_tensors)

    @property
    def model_input_names(self) -> list[str]:
        names = list(self.feature_extractor.model_input_names)
        return names + [n for n in ("input_ids", "attention_mask") if n not in names]


# pipeline_cgdmer has its own check (TypeError, every offending label named): it imports no sibling module.
def _check_texts(text: Any) -> None:
    texts = [text] if isinstance(text, str) else text
    if not isinstance(texts, (list, tuple)) or not texts:
        raise ValueError(f"text must be a string or a non-empty list of strings, got {type(text).__name__}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            hint = " (decode bytes first, e.g. text.decode('utf-8'))" if isinstance(t, bytes) else ""
            raise ValueError(f"text {i} is not a string: {type(t).__name__} {t!r}{hint}")
        if not t.strip():
            raise ValueError(f"text {i} is an empty report")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(f"text {i} is not valid Unicode text: {t!r} has a lone surrogate code point at "
                             f"position {err.start}, which the tokenizer cannot encode") from None


__all__ = ["CGDMERProcessor"]
