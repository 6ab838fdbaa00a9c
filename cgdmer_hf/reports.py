"""Free-text ECG reports: cleaning, and the WordPiece report tokenizer (training and the shipped default).

Not a model file: the processor never imports it. Data pipelines call `clean_report` before tokenising.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0-4, as the text config expects
DEFAULT_TOKENIZER_DIR = Path(__file__).resolve().parent / "resources" / "tokenizer"

# Characters every tokenizer knows even when the corpus lacks them (report languages: de, en, sv).
_ALPHABET = list(string.ascii_lowercase + string.digits + string.punctuation + "äöüßåéèàçñ°µ±")
_BOILERPLATE_TAIL = "unbestätigter bericht"  # "unconfirmed report", appended by the ECG device
# Text after these markers repeats the labels (annotators' notes, consensus codes): it would leak them.
_LEAK_MARKERS = re.compile(r"\bedit:|consensus label derived from", re.IGNORECASE)
# Device software version (e.g. "4.46") followed by nothing or by (a possibly truncated) "unbestätigter bericht".
_VERSION_TAIL = re.compile(r"(?:^|\s)\d+\.\d+(?:\s+(?P<tail>[a-zäöü]+(?:\s+[a-zäöü]*)?))?\s*$")


def clean_report(text: str) -> str:
    """Normalise a report for tokenisation: NFC, lower case, single spaces; drop device boilerplate (a trailing
    software version such as `4.46` and "unbestätigter bericht") and trailing label-leaking notes ("Edit: ...",
    "consensus label derived from: {...}").

    Raises:
        ValueError: `text` is not a string, or is empty once cleaned.
    """
    if not isinstance(text, str):
        raise ValueError(f"A report must be a string, got {type(text).__name__}")
    cleaned = unicodedata.normalize("NFC", text).lower()
    leak = _LEAK_MARKERS.search(cleaned)
    if leak:
        cleaned = cleaned[: leak.start()]
    cleaned = " ".join(cleaned.split())
    match = _VERSION_TAIL.search(cleaned)
    if match and (match.group("tail") is None or _BOILERPLATE_TAIL.startswith(match.group("tail"))):
        cleaned = cleaned[: match.start()]
    cleaned = cleaned.replace(_BOILERPLATE_TAIL, " ")
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise ValueError(f"Empty report: {text!r} has no text left after cleaning")
    return cleaned


def train_report_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 4096,
    min_frequency: int = 2,
    model_max_length: int = 128,
    clean: bool = True,
) -> PreTrainedTokenizerFast:
    """Train a lower-casing, accent-preserving WordPiece tokenizer on reports.

    Special tokens have fixed ids `[PAD]`=0, `[UNK]`=1, `[CLS]`=2, `[SEP]`=3, `[MASK]`=4; encodings are
    `[CLS] report [SEP]`. With `clean=True` each text goes through `clean_report` first and reports that are
    empty after cleaning are skipped. The vocabulary ends where WordPiece runs out of merges if that is below
    `vocab_size`. Training is not bit-for-bit reproducible: `tokenizers` breaks ties between equally frequent
    merges in hash-map order (huggingface/tokenizers#1794), so two runs may differ in a few tokens; a model
    must be used with the tokenizer saved alongside it.

    Raises:
        ValueError: a text is not a string, or no non-empty report is left.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    corpus = []
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"A report must be a string, got {type(text).__name__}")
        if clean:
            try:
                text = clean_report(text)
            except ValueError:
                continue
        if text.strip():
            corpus.append(text)
    if not corpus:
        raise ValueError("No non-empty report to train the tokenizer on")
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=_ALPHABET, show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
        padding_side="right",
        truncation_side="right",
    )


def load_default_tokenizer() -> PreTrainedTokenizerFast:
    """The shipped report tokenizer (WordPiece trained on the cleaned PTB-XL reports of strat_fold 1-8 only;
    `scripts/train_default_tokenizer.py` regenerates it)."""
    if not (DEFAULT_TOKENIZER_DIR / "tokenizer.json").exists():
        raise FileNotFoundError(
            f"Default tokenizer missing at {DEFAULT_TOKENIZER_DIR}; run scripts/train_default_tokenizer.py"
        )
    return PreTrainedTokenizerFast.from_pretrained(str(DEFAULT_TOKENIZER_DIR))


__all__ = ["SPECIAL_TOKENS", "clean_report", "train_report_tokenizer", "load_default_tokenizer"]
