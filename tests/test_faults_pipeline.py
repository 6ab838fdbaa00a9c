"""Faults of the zero-shot pipeline's labels and arguments, the feature-extraction pipeline's flags, the processor's
`text=` and prompt sets: each bad input gets a clear error naming it, never a tokenizer/`str.format` trace or a
silently wrong score."""

import json
import re

import numpy as np
import pytest
from transformers import pipeline

import cgdmer_hf  # noqa: F401  (registers the task)
from cgdmer_hf.pipeline_cgdmer import ECGFeatureExtractionPipeline, ZeroShotECGClassificationPipeline, build_prompts
from cgdmer_hf.processing_cgdmer import CGDMERProcessor
from cgdmer_hf.prompts import validate_prompt_set
from cgdmer_hf.samples import sample_record_path

LABELS = ["normal ecg", "myocardial infarction"]


@pytest.fixture(scope="module")
def pipe(tiny_zero_shot_model_dir):
    return pipeline("zero-shot-ecg-classification", model=str(tiny_zero_shot_model_dir))


@pytest.fixture(scope="module")
def record():
    return sample_record_path(2)


@pytest.fixture(scope="module")
def scores(pipe, record):
    return {d["label"]: d["score"] for d in pipe(record, candidate_labels=LABELS)}


# ------------------------------------------------------------------------------------------- label types
@pytest.mark.parametrize(
    "labels, message",
    [
        ([1, None, 2.5], r"candidate_labels must be strings; got the non-string value\(s\) \[1, None, 2\.5\]"),
        (["mi", None], r"non-string value\(s\) \[None\]"),
        ([b"mi", "normal ecg"], r"non-string value\(s\) \[b'mi'\] \(decode bytes first"),
        (b"mi", r"candidate_labels must be a list of strings or a mapping .* got bytes b'mi'"),
        (5, r"candidate_labels must be a list of strings or a mapping .* got int 5"),
        ({None: ["normal ecg"]}, r"candidate_labels must be strings; got the non-string value\(s\) \[None\]"),
        ({"MI": [None, "x"]}, r"descriptions of candidate label 'MI' must be strings; .* \[None\]"),
        ({"MI": b"infarkt"}, r"candidate label 'MI' must map to a string or a list of strings, got bytes"),
        ({"MI": 3}, r"candidate label 'MI' must map to a string or a list of strings, got int 3"),
    ],
)
def test_non_string_labels_are_refused(pipe, record, labels, message):
    with pytest.raises(TypeError, match=message):
        pipe(record, candidate_labels=labels)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"candidate_labels": ["normal ecg", "\ud800"]}, r"candidate_labels must be valid Unicode text; \['\\ud800'\]"),
        ({"candidate_labels": {"\udfff": ["x"]}}, r"candidate_labels must be valid Unicode text; \['\\udfff'\]"),
        ({"candidate_labels": {"MI": ["ok", "mi\ud800"]}},
         r"descriptions of candidate label 'MI' must be valid Unicode text; \['mi\\ud800'\]"),
        ({"candidate_labels": ["mi"], "hypothesis_template": "\ud800 {}"},
         r"hypothesis_template must be valid Unicode text"),
    ],
)
def test_lone_surrogates_are_refused(pipe, record, kwargs, message):
    with pytest.raises(ValueError, match=message + ".*lone surrogate"):
        pipe(record, **kwargs)


def test_processor_text_with_a_lone_surrogate_or_bytes(pipe):
    processor = CGDMERProcessor(pipe.feature_extractor, pipe.tokenizer)
    with pytest.raises(ValueError, match=r"text 1 is not valid Unicode text: 'st\\ud800' .* position 2"):
        processor(text=["sinus rhythm", "st\ud800"])
    with pytest.raises(ValueError, match=r"text 0 is not a string: bytes b'mi' \(decode bytes first"):
        processor(text=[b"mi"])


# ------------------------------------------------------------------------------------------- empty batch
def test_empty_batch_returns_an_empty_list(pipe):
    assert pipe([], candidate_labels=LABELS) == []
    assert pipe((), candidate_labels=LABELS, batch_size=4) == []
    assert pipe(np.zeros((0, 12, 1000)), sampling_rate=100, candidate_labels=LABELS) == []
    extractor = ECGFeatureExtractionPipeline(model=pipe.model, feature_extractor=pipe.feature_extractor)
    assert extractor([]) == []


def test_empty_batch_still_checks_the_arguments(pipe):
    with pytest.raises(ValueError, match="candidate_labels is required"):
        pipe([])
    with pytest.raises(TypeError, match=r"non-string value\(s\) \[None\]"):
        pipe([], candidate_labels=[None])
    with pytest.raises(TypeError, match="temperature"):
        pipe([], candidate_labels=LABELS, temperature=2)


# ------------------------------------------------------------------------------------------- lead names
def test_lead_names_as_one_string_are_refused(pipe):
    signal = np.random.default_rng(0).standard_normal((1, 1000))
    message = r"lead_names must be a list with one name per row .* got the string 'aVR'; .* pass \['aVR'\]"
    with pytest.raises(TypeError, match=message):
        pipe(signal, sampling_rate=100, lead_names="aVR", candidate_labels=LABELS)
    with pytest.raises(TypeError, match=message):
        pipe({"ecg": signal, "sampling_rate": 100, "lead_names": "aVR"}, candidate_labels=LABELS)
    extractor = ECGFeatureExtractionPipeline(model=pipe.model, feature_extractor=pipe.feature_extractor)
    with pytest.raises(TypeError, match=message):
        extractor(signal, sampling_rate=100, lead_names="aVR")
    as_list = pipe(signal, sampling_rate=100, lead_names=["aVR"], candidate_labels=LABELS)
    assert sorted(d["label"] for d in as_list) == sorted(LABELS)


# ------------------------------------------------------------------------------------------- templates
@pytest.mark.parametrize(
    "template, problem",
    [
        ("{0} {1}", r"it has the placeholders \['\{0\}', '\{1\}'\]"),
        ("{label", r"it is not a valid format string \(expected '\}' before end of string\)"),
        ("ecg shows", "it has no placeholder"),
        ("", "it has no placeholder"),
        ("{} and {}", r"it has the placeholders \['\{\}', '\{\}'\]"),
        ("{label} {}", r"it has the placeholders \['\{label\}', '\{\}'\]"),
        ("{!r}", r"it has the placeholders \['\{!r\}'\]"),
        ("{:>20}", r"it has the placeholders \['\{:>20\}'\]"),
        ("ecg }{}", r"it is not a valid format string"),
    ],
)
def test_bad_hypothesis_template(pipe, record, template, problem):
    message = r"hypothesis_template must contain '\{\}' exactly once, where the label goes.*"
    with pytest.raises(ValueError, match=message + re.escape(f"got {template!r}: ") + problem):
        pipe(record, candidate_labels=LABELS, hypothesis_template=template)


def test_template_type_and_mapping(pipe, record):
    with pytest.raises(TypeError, match="hypothesis_template must be a string .* got int 3"):
        pipe(record, candidate_labels=LABELS, hypothesis_template=3)
    with pytest.raises(ValueError, match=r"hypothesis_template='ecg shows \{\}' applies to a list of labels"):
        pipe(record, candidate_labels={"MI": ["myocardial infarction"]}, hypothesis_template="ecg shows {}")


def test_escaped_braces_in_a_template_are_literal(pipe, record):
    templated = pipe(record, candidate_labels=["mi"], hypothesis_template="{{ecg}} {}")
    assert templated == pipe(record, candidate_labels={"mi": ["{ecg} mi"]})


# ------------------------------------------------------------------------------------------- label sets
@pytest.mark.parametrize(
    "labels, message",
    [
        ([], "candidate_labels is empty"),
        ((x for x in ()), "candidate_labels is empty"),
        ({}, "candidate_labels is empty"),
        (["", "mi"], r"candidate_labels contains an empty label: \['', 'mi'\]"),
        (["mi", "   "], r"candidate_labels contains an empty label: \['mi', '   '\]"),
        ({"": ["normal ecg"]}, r"candidate_labels contains an empty label: \[''\]"),
        (["mi", "mi"], r"duplicated labels: \['mi'\]$"),
        (["mi", "mi "], r"duplicated labels: \['mi', 'mi '\] \(equal after Unicode NFC normalisation"),
        (["e\u0301cg", "\u00e9cg"], r"duplicated labels: .* \(equal after Unicode NFC normalisation"),
        ({"mi": "a", " mi": "b"}, r"duplicated labels: \[' mi', 'mi'\]"),
    ],
)
def test_empty_blank_and_duplicated_labels(pipe, record, labels, message):
    with pytest.raises(ValueError, match=message):
        pipe(record, candidate_labels=labels)


def test_accepted_labels_are_returned_as_given(pipe, record, scores):
    decomposed = "e\u0301cg"
    assert [d["label"] for d in pipe(record, candidate_labels=[decomposed])] == [decomposed]
    one = pipe(record, candidate_labels="normal ecg")  # one string is one label, not letters
    assert one == [{"label": "normal ecg", "score": pytest.approx(scores["normal ecg"], rel=1e-6), "calibrated": False}]


def test_label_longer_than_the_encoder_is_refused(pipe, record):
    limit = pipe.model.config.text_config.max_position_embeddings
    long = " ".join(["sinus rhythm"] * limit)
    with pytest.raises(ValueError, match=rf"longer than the report encoder's {limit} tokens .* 'long': "):
        pipe(record, candidate_labels={"long": [long], "MI": "mi"})


# ------------------------------------------------------------------------------------------- top_k and flags
@pytest.mark.parametrize(
    "top_k, error, message",
    [
        (1.7, TypeError, "top_k must be a positive integer, got float 1.7"),
        ("2", TypeError, "top_k must be a positive integer, got str '2'"),
        (True, TypeError, "top_k must be a positive integer, got bool True"),
        (float("nan"), TypeError, "top_k must be a positive integer, got float nan"),
        (0, ValueError, "top_k must be a positive integer, got 0"),
        (-1, ValueError, "top_k must be a positive integer, got -1"),
    ],
)
def test_bad_top_k(pipe, record, top_k, error, message):
    with pytest.raises(error, match=message):
        pipe(record, candidate_labels=LABELS, top_k=top_k)


def test_good_top_k(pipe, record, scores):
    best = max(scores, key=scores.get)
    assert [d["label"] for d in pipe(record, candidate_labels=LABELS, top_k=np.int64(1))] == [best]
    assert len(pipe(record, candidate_labels=LABELS, top_k=5)) == len(LABELS)


@pytest.mark.parametrize("kwargs, message", [
    ({"normalize": "no"}, "normalize must be True or False, got str 'no'"),
    ({"return_tensors": 1}, "return_tensors must be True or False, got int 1"),
])
def test_feature_extraction_flags_must_be_booleans(pipe, record, kwargs, message):
    extractor = ECGFeatureExtractionPipeline(model=pipe.model, feature_extractor=pipe.feature_extractor)
    with pytest.raises(TypeError, match=message):
        extractor(record, **kwargs)


# ------------------------------------------------------------------------------------------- other sources
def test_feature_extractor_errors_with_other_constructors_are_rewrapped(pipe):
    class Failing:
        def __call__(self, *args, **kwargs):
            raise json.JSONDecodeError("Expecting value", "x", 0)

    zero_shot = ZeroShotECGClassificationPipeline(model=pipe.model, tokenizer=pipe.tokenizer,
                                                  feature_extractor=Failing())
    with pytest.raises(ValueError, match=r"rejected the ECG of type dict.*Expecting value: line 1 column 1"):
        zero_shot({"ecg": {}}, candidate_labels=LABELS)


def test_prompt_sets_follow_the_pipeline_rules():
    with pytest.raises(ValueError, match=r"my.json: candidate_labels must be strings; .* \[1\]"):
        validate_prompt_set({1: ["x"]}, "my.json")
    with pytest.raises(ValueError, match=r"my.json: .*label 'MI' must be valid Unicode text"):
        validate_prompt_set({"MI": ["\ud800"]}, "my.json")
    with pytest.raises(ValueError, match=r"my.json: candidate label 'MI' must map to a string or a list"):
        validate_prompt_set({"MI": 5}, "my.json")
    assert validate_prompt_set({"MI": ["myokardinfarkt", " "], "NORM": "normal"}) == {
        "MI": ["myokardinfarkt"], "NORM": ["normal"]}
    assert build_prompts(["a"], None) == build_prompts(["a"], "{}") == (("a", ("a",)),)
