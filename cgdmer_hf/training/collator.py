"""The pretraining collator: rows of a prepared ECG-report data set -> `CGDMERForPreTraining` keyword arguments
(the ECG inputs, the cleaned and tokenized report and its masked copy)."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase

from ..configuration_cgdmer import CGDMERConfig, CGDMERTextConfig
from ..data import ECG_INPUT_NAMES, collate_ecgs
from ..reports import clean_report_or_empty

ECG_COLUMNS = ECG_INPUT_NAMES  # the feature extractor's model_input_names


REPORT_COLUMN = "report"



def _is_iterable(dataset: Any) -> bool:
    import datasets

    return isinstance(dataset, (datasets.IterableDataset, torch.utils.data.IterableDataset))






class CGDMERPretrainingCollator:
    """Builds `CGDMERForPreTraining` batches from rows of a prepared ECG-report data set.

    Each row needs `ecg_values` (leads x samples; list, numpy array or tensor) and may hold `lead_mask` (leads),
    `ecg_attention_mask` (samples) and a raw `report` string; other columns are ignored. Reports are cleaned with
    `cgdmer_hf.reports.clean_report`, tokenized (truncated to `max_length`, padded to the longest in the batch)
    and masked with `DataCollatorForLanguageModeling.torch_mask_tokens` (special and padding tokens never).

    Returns a dict with `ecg_values` (B, leads, samples) float32, `lead_mask` (B, leads), `ecg_attention_mask`
    (B, samples), and, when the rows have reports, `input_ids` / `attention_mask` (the clean report, for
    alignment) and `mlm_input_ids` / `mlm_labels` (masked copy; -100 where not masked). A batch in which every
    report is missing or empty is an ECG-only batch (no text keys); a batch that mixes rows with and without a
    report is refused, since the model aligns every ECG with its report.

    Args:
        tokenizer: the report tokenizer; needs a pad and a mask token.
        mlm_probability: fraction of report tokens masked; default `config.text_config.mlm_probability` (0.15).
        max_length: longest report in tokens; default `config.text_config.max_position_embeddings`, else the
            tokenizer's `model_max_length`.
        config: the model config (for the defaults above and to check `max_length`).
        seed: seed of the masking RNG when the collator is used on its own (`None`: the global torch RNG).
        mask_reports: draw the report masks here (default). [`pretrain`] turns it off and [`CGDMERPretrainer`]
            masks at step time instead ([`mask_reports`]): accelerate's data loader collates one batch ahead, so
            masks drawn here would come from a different RNG state after a resume.
        mask_replace_prob, random_replace_prob: BERT's 80 % `[MASK]` / 10 % random / 10 % unchanged split.
        pad_to_multiple_of: pad report tokens to a multiple of this (tensor-core friendly lengths on GPU);
            `max_length` is then rounded down to a multiple of it.
        clean_reports: apply `clean_report` (default); `False` tokenizes the text as it is.
        report_column: name of the report column.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        mlm_probability: Optional[float] = None,
        max_length: Optional[int] = None,
        *,
        config: Optional[CGDMERConfig] = None,
        seed: Optional[int] = None,
        mask_reports: bool = True,
        mask_replace_prob: float = 0.8,
        random_replace_prob: float = 0.1,
        pad_to_multiple_of: Optional[int] = None,
        clean_reports: bool = True,
        report_column: str = REPORT_COLUMN,
    ):
        text_config = config.text_config if config is not None else CGDMERTextConfig()
        if mlm_probability is None:
            mlm_probability = text_config.mlm_probability
        if tokenizer.pad_token_id is None:
            raise ValueError("The report tokenizer has no pad token; the collator pads reports to the batch length")
        if max_length is None:
            max_length = text_config.max_position_embeddings if config is not None else tokenizer.model_max_length
        if config is not None and max_length > text_config.max_position_embeddings:
            raise ValueError(f"max_length={max_length} exceeds the model's max_position_embeddings="
                             f"{text_config.max_position_embeddings}")
        if pad_to_multiple_of and max_length % pad_to_multiple_of:
            max_length -= max_length % pad_to_multiple_of  # padded lengths must stay within max_length
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.mask_reports_in_collator = mask_reports
        self.pad_to_multiple_of = pad_to_multiple_of
        self.clean_reports = clean_reports
        self.report_column = report_column
        # transformers' MLM masking (80/10/10 split, special tokens excluded); raises without a mask token.
        self.mlm = DataCollatorForLanguageModeling(
            tokenizer, mlm_probability=mlm_probability, mask_replace_prob=mask_replace_prob,
            random_replace_prob=random_replace_prob, seed=seed,
        )

    @property
    def mlm_probability(self) -> float:
        return self.mlm.mlm_probability

    # ---- public API ----------------------------------------------------------------------------------------

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("Cannot collate an empty batch")
        batch = self.collate_ecgs(examples)
        batch.update(self.tokenize_reports([example.get(self.report_column) for example in examples]))
        if self.mask_reports_in_collator and "special_tokens_mask" in batch:
            batch = self.mask_reports(batch)
        return batch

    def collate_ecgs(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Stack `ecg_values`, `lead_mask` and `ecg_attention_mask` (`cgdmer_hf.data.collate_ecgs`, without
        labels); ECGs shorter than the longest in the batch are zero-padded and marked as padding in
        `ecg_attention_mask`."""
        return collate_ecgs(examples, labels=False)

    def tokenize_reports(self, reports: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Clean and tokenize the reports: `input_ids`, `attention_mask` and the `special_tokens_mask` (special
        or padding tokens) that [`mask_reports`] needs. Empty when no row has a report."""
        texts = [clean_report_or_empty(r) if self.clean_reports else ("" if r is None else str(r)) for r in reports]
        empty = [i for i, text in enumerate(texts) if not text.strip()]
        if len(empty) == len(texts):
            return {}
        if empty:
            raise ValueError(
                f"{len(empty)} of {len(texts)} reports in the batch are missing or empty (rows {empty[:8]}); drop "
                "the rows without a report first (pretrain() does) or give no report at all (ECG-only batches)"
            )
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length,
            pad_to_multiple_of=self.pad_to_multiple_of, return_special_tokens_mask=True, return_token_type_ids=False,
            return_tensors="pt",
        )
        attention_mask = encoded["attention_mask"]
        special = encoded["special_tokens_mask"].bool() | ~attention_mask.bool()
        return {"input_ids": encoded["input_ids"], "attention_mask": attention_mask, "special_tokens_mask": special}

    def mask_reports(self, batch: Mapping[str, Any], generator: Optional[torch.Generator] = None
                     ) -> dict[str, Any]:
        """Add `mlm_input_ids` / `mlm_labels` to a batch from [`tokenize_reports`] (its `special_tokens_mask` is
        removed). Draws from `generator`, else the collator's seeded RNG, else the global torch RNG."""
        batch = dict(batch)
        special = batch.pop("special_tokens_mask", None)
        if "input_ids" not in batch:
            return batch
        if special is None:
            raise ValueError("mask_reports needs the batch's special_tokens_mask (from tokenize_reports)")
        saved = self.mlm.generator
        if generator is not None:
            self.mlm.generator = generator
        elif self.mlm.seed is not None and self.mlm.generator is None:
            self.mlm.create_rng()
        try:
            batch["mlm_input_ids"], batch["mlm_labels"] = self.mlm.torch_mask_tokens(
                batch["input_ids"].clone(), special_tokens_mask=special
            )
        finally:
            if generator is not None:
                self.mlm.generator = saved
        return batch

