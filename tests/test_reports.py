"""Report cleaning, translation to English, and the WordPiece report tokenizer (trained and shipped)."""

import json

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from cgdmer_hf.reports import (
    DEFAULT_TOKENIZER_DIR, clean_report, load_default_tokenizer, load_phrase_table, report_words,
    train_report_tokenizer, translate_report, translation_coverage,
)
from cgdmer_hf.samples import load_sample_index, sample_data_dir

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
    assert clean_report(raw, english=False) == clean  # the cleaning alone, as before translation existed


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
    assert 500 < len(tok) <= 4096
    info = json.loads((DEFAULT_TOKENIZER_DIR / "training_info.json").read_text())
    assert "strat_fold 1-8" in info["source"] and "English" in info["text"]
    enc = tok(clean_report("Sinusrhythmus. Vänster kammarhypertrofi; ST-Senkung in V5, ischämie"))
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "[UNK]" not in tokens
    assert {"rhythm", "left", "ventricular", "hypertrophy", "depression"} <= set(tokens)  # an English vocabulary
    assert tok.decode(enc["input_ids"], skip_special_tokens=True).startswith("sinus rhythm. left ventricular")
    assert "ä" in "".join(tok.tokenize("ischämie")) and "[UNK]" not in tok.tokenize("ischämie")  # accents kept
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


# ----------------------------------------------------------------------------------------------------------
# Translation of the device statements to English
# ----------------------------------------------------------------------------------------------------------
def _sample_reports(*languages):
    return {r["ecg_id"]: clean_report(r["report"], english=False) for r in load_sample_index()
            if r["report_lang"] in languages}


@pytest.mark.parametrize(
    "ecg_id, english",
    [  # real reports of the bundled sample (German, Swedish)
        (8, "sinus rhythm left axis deviation qrs(t) abnormal inferior myocardial infarction, age undetermined"),
        (49, "sinus rhythm right axis deviation non-specific intraventricular conduction disturbance"),
        (54, "sinus rhythm non-specific t wave abnormality"),
        (118, "premature supraventricular contraction(s) sinus rhythm otherwise normal ecg"),
        (210, "sinus rhythm abnormal left axis deviation"),
        (226, "sinus rhythm abnormal left axis deviation left anterior fascicular block normal ecg"),
        (377, "regular rhythm, no p wave detected right axis deviation left posterior fascicular block"),
        (146, "sinus rhythm non-specific bundle branch block abnormal qrs(t) inferior myocardial infarction, "
              "age undetermined"),
        (172, "sinus rhythm indeterminate axis low qrs voltages in the limb leads right bundle branch block"),
        (383, "sinus bradycardia abnormal qrs(t) inferior myocardial damage should be considered st-t depression, "
              "consistent with anterolateral ischemia or left ventricular strain"),
    ],
)
def test_translate_sample_reports(ecg_id, english):
    assert translate_report(_sample_reports("de", "sv")[ecg_id]) == english


@pytest.mark.parametrize(
    "german, english",
    [
        ("sinusrhythmus lagetyp normal normales ekg", "sinus rhythm normal axis normal ecg"),
        ("vorhofflimmern/-flattern überdrehter linkstyp linksschenkelblock",
         "atrial fibrillation/flutter abnormal left axis deviation left bundle branch block"),
        ("sinusrhythmus unvollständiger rechtsschenkelblock", "sinus rhythm incomplete right bundle branch block"),
        ("inkompletter rechtsschenkelblock", "incomplete right bundle branch block"),
        ("ventrikuläre extrasystole(n), bigeminus sinustachykardie",
         "premature ventricular contraction(s), bigeminy sinus tachycardia"),
        ("st & t abnorm, wahrscheinlich anteriore ischämie oder linksbelastung",
         "st & t abnormality, probably anterior ischemia or left ventricular strain"),
        ("anteroseptaler myokardschaden nicht auszuschließen", "anteroseptal myocardial damage cannot be excluded"),
        ("anteroseptaler myokardschaden nicht auszuschliessen", "anteroseptal myocardial damage cannot be excluded"),
        ("st-senkung in v2,v3 t neg in avl", "st depression in v2,v3 t wave inversion in avl"),
        ("st- hebung in v1-3 verglichen mit 28.12.93", "st elevation in v1-3 compared with 28.12.93"),
        # spelling variants: ä/ae/ä, ü/ue/a corrupted '#'; a statement glued to the one before
        ("mässige amplitudenkriterien f#r linkshypertrophie",
         "moderate voltage criteria for left ventricular hypertrophy"),
        ("maessige amplitudenkriterien für linkshypertrophie",
         "moderate voltage criteria for left ventricular hypertrophy"),
        ("r-s #bergang in v ableitungen nach rechts verschoben",
         "r-s transition zone in v leads displaced to the right"),
        ("a-v block i intraventr.leistungsstörung in v1",
         "first degree av block intraventricular conduction disturbance in v1"),
        ("periphere niederspannung möglicherweise linkshypertrophie",
         "low qrs voltages in the limb leads possibly left ventricular hypertrophy"),
        ("vänster el-axel ospecifik t-förändring qt förlängd",
         "left axis deviation non-specific t wave change prolonged qt"),
        ("förmaksflimmer med hög kammarfrekvens extrem vänster el-axel",
         "atrial fibrillation with rapid ventricular response abnormal left axis deviation"),
        ("inget säkert patologiskt", "no definite pathology"),
    ],
)
def test_translate_report(german, english):
    assert translate_report(german) == english


@pytest.mark.parametrize("text", ["sinus tachycardia", "atrial fibrillation", "left bundle branch block",
                                  "normal ecg", "incomplete right bundle branch block", "st depression in v5",
                                  "inferior myocardial infarction", "premature ventricular contraction(s)"])
def test_english_unchanged(text):
    assert translate_report(text) == text and clean_report(text.upper()) == text


def test_english_sample_reports_unchanged_and_translation_idempotent():
    for text in _sample_reports("en").values():
        assert translate_report(text) == text
    for text in _sample_reports("de", "sv").values():
        english = translate_report(text)
        assert translate_report(english) == english


@pytest.mark.parametrize(
    "text",
    ["sinusrhythmusx überdrehterlinkstyp", "linkstypen", "infarktzone", "ekgs", "alternativ", "vänsterhänt"],
)
def test_translate_whole_words_only(text):
    assert translate_report(text) == text  # a phrase inside a longer word is left alone


def test_words_not_covered_are_kept():
    assert translate_report("sinusrhythmus vorderwandaneurysma 3x1 novodigal") == \
        "sinus rhythm vorderwandaneurysma 3x1 novodigal"
    assert translation_coverage("sinusrhythmus vorderwandaneurysma in v1") == (2, 3)  # "in" is passthrough


def test_clean_report_removes_leaks_before_translating():
    raw = "Sinusrhythmus Linksschenkelblock 4.46   unbestätigter bericht Edit: CLBBB 100, linksschenkelblock"
    assert clean_report(raw) == "sinus rhythm left bundle branch block"
    assert clean_report(raw, english=False) == "sinusrhythmus linksschenkelblock"
    assert clean_report("sinusrytm normalt ekgconsensus label derived from: {'NORM': 100.0}") == \
        "sinus rhythm normal ecg"


def test_translation_adds_no_scp_codes():
    with open(sample_data_dir() / "scp_statements.csv", encoding="utf-8") as f:
        codes = {line.split(",", 1)[0].lower() for line in f if line.strip()} - {""}
    for text in _sample_reports("de", "sv", "en").values():
        assert set(report_words(translate_report(text))) & codes <= set(report_words(text))


def test_phrase_coverage_on_sample():
    counts = [translation_coverage(t) for t in _sample_reports("de", "sv").values()]
    covered, words = map(sum, zip(*counts))
    assert words > 100 and covered / words > 0.95


def test_translate_report_rejects_bad_input():
    with pytest.raises(ValueError, match="must be a string, got int"):
        translate_report(3)


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"de": {"linkstyp": "left axis", "linkstyp": "left type"}}', "repeats the key"),
        ('{"de": {"mäßig": "moderate"}, "sv": {"maessig": "mild"}}', "translated both"),
        ('{"de": {"linkstyp": ""}}', "bad entry"),
        ('{"de": ["linkstyp"]}', "section 'de' must be a JSON object"),
        ('["linkstyp"]', "section 'de_adjectives' must be a JSON object"),
        ('{"de": {}}', "has no phrases"),
        ('{"de": {"linkstyp": "left axis"}, "passthrough": "v1"}', "'passthrough' must be a list"),
    ],
)
def test_load_phrase_table_rejects_bad_tables(tmp_path, content, message):
    path = tmp_path / "table.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_phrase_table(path)


def test_shipped_phrase_table():
    table = load_phrase_table()
    assert len(table.phrases) > 800 and {"in", "v", "avl", "qrs"} <= table.passthrough
    assert ("sinusrhythmus",) in table.phrases and ("sinusrytm",) in table.phrases
