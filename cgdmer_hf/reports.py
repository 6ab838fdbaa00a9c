"""Free-text ECG reports: cleaning, translation of the device statements to English, and the WordPiece report
tokenizer (training and the shipped default).

Not a model file: the processor never imports it. Data pipelines call `clean_report` before tokenising; datasets
keep the raw `report` column, so the original text stays available.
"""

from __future__ import annotations

import functools
import json
import re
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0-4, as the text config expects
DEFAULT_TOKENIZER_DIR = Path(__file__).resolve().parent / "resources" / "tokenizer"
PHRASE_TABLE_PATH = Path(__file__).resolve().parent / "resources" / "report_phrases_en.json"

# Characters every tokenizer knows even when the corpus lacks them (report languages: de, en, sv).
_ALPHABET = list(string.ascii_lowercase + string.digits + string.punctuation + "äöüßåéèàçñ°µ±")
_BOILERPLATE_TAIL = "unbestätigter bericht"  # "unconfirmed report", appended by the ECG device
# Text after these markers repeats the labels (annotators' notes, consensus codes): it would leak them.
_LEAK_MARKERS = re.compile(r"\bedit:|consensus label derived from", re.IGNORECASE)
# Device software version (e.g. "4.46") followed by nothing or by (a possibly truncated) "unbestätigter bericht".
_VERSION_TAIL = re.compile(r"(?:^|\s)\d+\.\d+(?:\s+(?P<tail>[a-zäöü]+(?:\s+[a-zäöü]*)?))?\s*$")


# Phrase matching: word runs (a '#' inside one stands for a corrupted "ü") and single punctuation marks.
_TOKEN = re.compile(r"(?:\w|#(?=\w)|(?<=\w)#)+|[^\w\s]")
_FOLD = str.maketrans({"ü": "ue", "ö": "oe", "ä": "ae", "ß": "ss", "#": "ue"})  # German spelling variants
_GERMAN_ENDINGS = ("", "e", "er", "en", "es", "em")
_TABLE_SECTIONS = ("de", "sv")


def clean_report(text: str, english: bool = True) -> str:
    """Normalise a report for tokenisation: NFC, lower case, single spaces; drop device boilerplate (a trailing
    software version such as `4.46` and "unbestätigter bericht") and trailing label-leaking notes ("Edit: ...",
    "consensus label derived from: {...}"). With `english=True` (default) the German and Swedish device
    statements are then translated by `translate_report`; `english=False` gives the untranslated cleaned text.

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
    return translate_report(cleaned) if english else cleaned


def clean_report_or_empty(text: Any) -> str:
    """`clean_report(str(text))`, or `""` for a missing report (`None`, or a float NaN as pandas writes a missing
    value) or one with no text left after cleaning."""
    if text is None or (isinstance(text, float) and text != text):
        return ""
    try:
        return clean_report(str(text))
    except ValueError:
        return ""


@dataclass(frozen=True)
class PhraseTable:
    """Source phrases as folded token tuples -> English; `passthrough` words need no translation."""

    phrases: dict[tuple[str, ...], str]
    passthrough: frozenset[str]
    max_len: int


def _tokens(text: str) -> list[re.Match]:
    return list(_TOKEN.finditer(text))


def _key(tokens: Iterable[str]) -> tuple[str, ...]:
    return tuple(t.translate(_FOLD) for t in tokens)


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"Phrase table repeats the key(s) {repeated}")
    return dict(pairs)


def _section(data: object, name: str) -> dict:
    section = data.get(name, {}) if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise ValueError(f"Phrase table section {name!r} must be a JSON object {{phrase: English}}")
    return section


def _table_entries(data: object) -> Iterable[tuple[str, str]]:
    """(source, English) pairs of every section, German adjective stems expanded with their endings."""
    for stem, english in _section(data, "de_adjectives").items():
        yield from ((stem + ending if isinstance(stem, str) else stem, english) for ending in _GERMAN_ENDINGS)
    for name in _TABLE_SECTIONS:
        yield from _section(data, name).items()


@functools.lru_cache(maxsize=4)
def load_phrase_table(path: str | Path = PHRASE_TABLE_PATH) -> PhraseTable:
    """Read the German/Swedish -> English phrase table (`resources/report_phrases_en.json` by default).

    Raises:
        ValueError: the file repeats a key, a section is not a JSON object, a phrase is empty or not a string,
            two sections translate the same (spelling-folded) phrase differently, or there is no phrase.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)
    phrases: dict[tuple[str, ...], str] = {}
    for source, english in _table_entries(data):
        if not (isinstance(source, str) and isinstance(english, str) and source.strip() and english.strip()):
            raise ValueError(f"Phrase table {path}: bad entry {source!r}: {english!r}")
        key = _key(m.group() for m in _tokens(source.lower()))
        if phrases.setdefault(key, english) != english:
            raise ValueError(f"Phrase table {path}: {source!r} is translated both {phrases[key]!r} and {english!r}")
    if not phrases:
        raise ValueError(f"Phrase table {path} has no phrases (sections {list(_TABLE_SECTIONS)}, 'de_adjectives')")
    passthrough = data.get("passthrough", [])
    if not (isinstance(passthrough, list) and all(isinstance(w, str) for w in passthrough)):
        raise ValueError(f"Phrase table {path}: 'passthrough' must be a list of words")
    return PhraseTable(phrases, frozenset(_key(passthrough)), max(map(len, phrases)))


def _phrase_spans(tokens: list[re.Match], table: PhraseTable) -> list[tuple[int, int, str]]:
    """Longest-first, left-to-right matches `(first token, end token, English)`; whole tokens only."""
    folded = _key(m.group() for m in tokens)
    spans, i = [], 0
    while i < len(folded):
        for n in range(min(table.max_len, len(folded) - i), 0, -1):
            english = table.phrases.get(folded[i:i + n])
            if english is not None:
                spans.append((i, i + n, english))
                i += n
                break
        else:
            i += 1
    return spans


def translate_report(text: str) -> str:
    """Translate the German and Swedish ECG device statements of a cleaned (lower-case) report to English with the
    phrase table (`load_phrase_table`). Whole words only, longest phrase first; numbers, lead names, English and
    words the table lacks are kept as they are. English text comes back unchanged (up to spacing).

    Raises:
        ValueError: `text` is not a string.
    """
    if not isinstance(text, str):
        raise ValueError(f"A report must be a string, got {type(text).__name__}")
    tokens = _tokens(text)
    pieces, pos = [], 0
    for first, end, english in _phrase_spans(tokens, load_phrase_table()):
        start, stop = tokens[first].start(), tokens[end - 1].end()
        pieces += [text[pos:start], _spaced(english, text[start - 1:start], text[stop:stop + 1])]
        pos = stop
    return " ".join("".join(pieces + [text[pos:]]).split())


def _spaced(english: str, before: str, after: str) -> str:
    """`english` with a space on a side where it would otherwise run into a word ("intraventr.leitungsstörung")."""
    return (" " if before.isalnum() else "") + english + (" " if after.isalnum() else "")


def _is_word(token: str) -> bool:
    return any(c.isalpha() for c in token) and not any(c.isdigit() for c in token)


def report_words(text: str) -> list[str]:
    """The word tokens of a report: runs of letters (numbers and lead names such as `v1` are not words)."""
    return [m.group() for m in _tokens(text) if _is_word(m.group())]


def translation_coverage(text: str) -> tuple[int, int]:
    """`(covered, words)` of a cleaned, untranslated report: its number of `report_words` and how many of them fall
    inside a phrase of the table or are passthrough words (spelled the same in English)."""
    table = load_phrase_table()
    tokens = _tokens(text)
    inside = {i for first, end, _ in _phrase_spans(tokens, table) for i in range(first, end)}
    words = [i for i, m in enumerate(tokens) if _is_word(m.group())]
    covered = [i for i in words if i in inside or _key([tokens[i].group()])[0] in table.passthrough]
    return len(covered), len(words)


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
    """The shipped report tokenizer (WordPiece trained on the cleaned, English-translated PTB-XL reports of
    strat_fold 1-8 only; `scripts/train_default_tokenizer.py` regenerates it)."""
    if not (DEFAULT_TOKENIZER_DIR / "tokenizer.json").exists():
        raise FileNotFoundError(
            f"Default tokenizer missing at {DEFAULT_TOKENIZER_DIR}; run scripts/train_default_tokenizer.py"
        )
    return PreTrainedTokenizerFast.from_pretrained(str(DEFAULT_TOKENIZER_DIR))


__all__ = [
    "SPECIAL_TOKENS", "PHRASE_TABLE_PATH", "clean_report", "clean_report_or_empty", "translate_report",
    "translation_coverage", "report_words", "load_phrase_table", "train_report_tokenizer", "load_default_tokenizer",
]
