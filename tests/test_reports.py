"""Report cleaning and the WordPiece report tokenizer (trained and shipped)."""

import json

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from cgdmer_hf.reports import DEFAULT_TOKENIZER_DIR, clean_report, load_default_tokenizer, train_report_tokenizer
from cgdmer_hf.samples import load_sample_index

SPECIAL_IDS = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}


@pytest.mark.parametrize(
    "raw, clean",
    [
        # device version + "unconfirmed report" boilerplate, upper-case umlauts, runs of spaces
        ("sinusrhythmus linkstyp linkshypertrophie mÖglich 4.46                          unbestÄtigter bericht",
         "sinusrhythmus linkstyp linkshypertrophie möglich"),
        # trailing annotator note that repeats the labels
        ("sinus rhythm. normal ecg. Edit: NORM 100, (NORM 100)", "sinus rhythm. normal ecg."),
        ("sinusrhythmus normales ekg 4.46      unbestÄtigter bericht Edit: NORM 100, rqsIII(NORM 100)",
         "sinusrhythmus normales ekg"),
        ("avvikande qrs(t) förlopp bör övervägasconsensus label derived from: {'ndt': 100.0}",
         "avvikande qrs(t) förlopp bör övervägas"),
        # truncated boilerplate and a bare version at the end
        ("inferiorer infarkt     alter unbest. 4.46                          unbestätig",
         "inferiorer infarkt alter unbest."),
        ("t abnorm in lateralen ableitungen 4.46       ", "t abnorm in lateralen ableitungen"),
        # numbers that belong to the report stay
        ("sinus rhythm first degree av block, pr interval 0.24 seconds.",
         "sinus rhythm first degree av block, pr interval 0.24 seconds."),
        ("st-hebung in v1-3 verglichen mit 28.12.93 kein vorhofflimmern",
         "st-hebung in v1-3 verglichen mit 28.12.93 kein vorhofflimmern"),
        ("  Sinus\tRhythm.\n  NORMAL ECG.  ", "sinus rhythm. normal ecg."),
    ],
)
def test_clean_report(raw, clean):
    assert clean_report(raw) == clean


@pytest.mark.parametrize(
    "bad, message",
    [
        (None, "must be a string, got NoneType"),
        (42, "must be a string, got int"),
        (b"sinus rhythm", "must be a string, got bytes"),
        ("", "Empty report"),
        ("   ", "Empty report"),
        ("4.46                          unbestÄtigter bericht", "Empty report"),
        ("Edit: NORM 100", "Empty report"),
    ],
)
def test_clean_report_rejects_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        clean_report(bad)


def test_default_tokenizer():
    tok = load_default_tokenizer()
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_IDS} == SPECIAL_IDS
    assert tok.pad_token_id == 0 and tok.mask_token_id == 4 and tok.model_max_length == 128
    assert 1000 < len(tok) <= 4096
    info = json.loads((DEFAULT_TOKENIZER_DIR / "training_info.json").read_text())
    assert "strat_fold 1-8" in info["source"]
    enc = tok(clean_report("Sinusrhythmus. Vänster kammarhypertrofi; ST-Senkung in V5, ischämie"))
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "[UNK]" not in tokens
    assert "vänster" in tokens and "ischämie" in tokens  # lower case, accents kept
    assert tok.decode(enc["input_ids"], skip_special_tokens=True).startswith("sinusrhythmus. vänster")
    batch = tok(["sinus rhythm", "sinus rhythm " * 200], padding=True, truncation=True)
    assert len(batch["input_ids"][1]) == 128 and batch["input_ids"][0][-1] == 0
    assert batch["attention_mask"][0][-1] == 0


def test_train_report_tokenizer_round_trip(tmp_path):
    reports = [r["report"] for r in load_sample_index()]
    tok = train_report_tokenizer(reports + ["  ", "Edit: NORM 100"], vocab_size=300, model_max_length=64)
    assert {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_IDS} == SPECIAL_IDS
    assert len(tok) <= 300 and tok.model_max_length == 64
    assert "edit" not in tok.get_vocab() and "4.46" not in tok.get_vocab()  # cleaned before training
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = clean_report(reports[0])
    assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert loaded.mask_token_id == 4 and loaded.model_max_length == 64


@pytest.mark.parametrize("texts, message", [([], "No non-empty report"), (["  "], "No non-empty report"),
                                            (["ok report", 3], "must be a string, got int")])
def test_train_report_tokenizer_rejects_bad_input(texts, message):
    with pytest.raises(ValueError, match=message):
        train_report_tokenizer(texts)
