"""Zero-shot ECG classification pipeline: output format, ordering, batching, prompt ensembles, bad input, the
registered task, and loading a saved pipeline with trust_remote_code in a process without the package."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import pipeline

import cgdmer_hf  # noqa: F401  (registers the task)
from cgdmer_hf import CGDMERConfig, CGDMERForECGClassification, load_prompt_set
from cgdmer_hf.feature_extraction_cgdmer import CGDMERFeatureExtractor
from cgdmer_hf.pipeline_cgdmer import ECGFeatureExtractionPipeline, ZeroShotECGClassificationPipeline, build_prompts
from cgdmer_hf.reports import load_default_tokenizer
from cgdmer_hf.samples import sample_cpsc_record_path, sample_record_path

LABELS = ["normal ecg", "myocardial infarction", "left bundle branch block"]


@pytest.fixture(scope="module")
def model_dir(tiny_zero_shot_model_dir):
    return tiny_zero_shot_model_dir


@pytest.fixture(scope="module")
def pipe(model_dir):
    return pipeline("zero-shot-ecg-classification", model=str(model_dir))


def _embed_texts(pipe, texts):
    tokens = pipe.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        embeds = pipe.model.get_text_features(tokens["input_ids"], tokens["attention_mask"]).pooler_output
        return F.normalize(embeds, dim=-1)


def _expected_scores(pipe, ecg_path, label_embeds):
    inputs = pipe.feature_extractor(ecg_path, return_tensors="pt")
    with torch.no_grad():
        ecg = F.normalize(pipe.model.get_ecg_features(**inputs).pooler_output, dim=-1)
        return torch.sigmoid(pipe.model.similarity_logits(ecg, label_embeds))[0].tolist()


def test_registered_task_and_output_format(pipe):
    assert isinstance(pipe, ZeroShotECGClassificationPipeline)
    out = pipe(sample_record_path(2), candidate_labels=LABELS)
    assert isinstance(out, list) and len(out) == len(LABELS)
    assert all(set(item) == {"label", "score", "calibrated"} and item["calibrated"] is False for item in out)
    assert sorted(item["label"] for item in out) == sorted(LABELS)
    scores = [item["score"] for item in out]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 < s < 1.0 for s in scores)
    # Independent sigmoid probabilities of the model's own logits (not a softmax over the labels).
    expected = dict(zip(LABELS, _expected_scores(pipe, sample_record_path(2), _embed_texts(pipe, LABELS))))
    for item in out:
        assert item["score"] == pytest.approx(expected[item["label"]], rel=1e-5)
    assert abs(sum(scores) - 1.0) > 1e-3


def test_top_k_and_template(pipe):
    path = sample_record_path(2)
    full = pipe(path, candidate_labels=LABELS)
    assert pipe(path, candidate_labels=LABELS, top_k=2) == full[:2]
    templated = pipe(path, candidate_labels=["myocardial infarction"], hypothesis_template="ecg shows {}")
    as_mapping = pipe(path, candidate_labels={"myocardial infarction": ["ecg shows myocardial infarction"]})
    assert templated == as_mapping
    assert templated[0]["score"] != pipe(path, candidate_labels=["myocardial infarction"])[0]["score"]


def test_batching_matches_single_inputs(pipe):
    import wfdb

    path_a, path_b = sample_record_path(2), sample_record_path(8)
    record = wfdb.rdrecord(sample_record_path(8, rate=500))
    array = record.p_signal.T
    inputs = [path_a, record, {"ecg": array, "sampling_rate": 500, "lead_names": record.sig_name}]
    singles = [pipe(x, candidate_labels=LABELS) for x in inputs]
    for batch_size in (1, 2, 3):
        batched = pipe(inputs, candidate_labels=LABELS, batch_size=batch_size)
        assert len(batched) == 3
        for got, want in zip(batched, singles):
            assert [g["label"] for g in got] == [w["label"] for w in want]
            np.testing.assert_allclose([g["score"] for g in got], [w["score"] for w in want], rtol=1e-4)
    # The 500 Hz record and its 100 Hz sibling give close, not identical, scores; a 3-D array is a batch.
    stacked = pipe(np.stack([array, array]), sampling_rate=500, lead_names=record.sig_name, candidate_labels=LABELS)
    assert len(stacked) == 2 and stacked[0] == stacked[1] == singles[2]
    assert singles[1] == singles[2]
    assert {d["label"] for d in pipe(path_b, candidate_labels=LABELS)} == set(LABELS)


def test_scores_change_with_the_ecg(pipe):
    a = pipe(sample_record_path(2), candidate_labels=LABELS)
    b = pipe(sample_record_path(8), candidate_labels=LABELS)
    c = pipe(sample_cpsc_record_path("A0044"), candidate_labels=LABELS)
    scores = [{d["label"]: d["score"] for d in out} for out in (a, b, c)]
    assert scores[0] != scores[1] and scores[1] != scores[2]


def test_prompt_ensemble_is_the_mean_of_normalised_embeddings(pipe):
    path = sample_record_path(8)
    prompts = {"MI": ["myokardinfarkt", "myocardial infarction"], "NORM": ["normales ekg"]}
    ensemble = {d["label"]: d["score"] for d in pipe(path, candidate_labels=prompts)}
    single = {d["label"]: d["score"] for d in pipe(path, candidate_labels={"MI": ["myocardial infarction"],
                                                                           "NORM": ["normales ekg"]})}
    assert ensemble["MI"] != pytest.approx(single["MI"], rel=1e-4)
    assert ensemble["NORM"] == pytest.approx(single["NORM"], rel=1e-6)
    mi = F.normalize(_embed_texts(pipe, prompts["MI"]).mean(0, keepdim=True), dim=-1)
    assert ensemble["MI"] == pytest.approx(_expected_scores(pipe, path, mi)[0], rel=1e-5)


def test_shipped_prompt_set_and_text_cache(pipe, monkeypatch):
    calls = []
    original = pipe.model.get_text_features

    def counting(*args, **kwargs):
        calls.append(args[0].shape[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(pipe.model, "get_text_features", counting)
    prompts = load_prompt_set("ptbxl_super")
    out = pipe([sample_record_path(i) for i in (2, 3, 8, 9)], candidate_labels=prompts, batch_size=2)
    assert [sorted(d["label"] for d in o) for o in out] == [sorted(prompts)] * 4
    assert calls == [sum(len(v) for v in prompts.values())]  # the label texts are embedded once per call
    pipe(sample_record_path(2), candidate_labels=prompts)
    assert len(calls) == 2


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"candidate_labels": []}, ValueError, "candidate_labels is empty"),
        ({"candidate_labels": {}}, ValueError, "candidate_labels is empty"),
        ({"candidate_labels": {"MI": []}}, ValueError, "candidate label 'MI' has no description"),
        ({"candidate_labels": {"MI": ["  "]}}, ValueError, "candidate label 'MI' has no description"),
        ({"candidate_labels": ["MI", "MI"]}, ValueError, "duplicated labels: ['MI']"),
        ({"candidate_labels": ["MI"], "hypothesis_template": "no slot"}, ValueError, "must contain '{}'"),
        ({"candidate_labels": ["MI"], "top_k": 0}, ValueError, "top_k must be a positive integer"),
        ({}, ValueError, "candidate_labels is required"),
        ({"candidate_labels": ["MI"], "temperature": 2}, TypeError, "temperature"),
    ],
)
def test_bad_labels(pipe, kwargs, error, message):
    with pytest.raises(error) as info:
        pipe(sample_record_path(2), **kwargs)
    assert message in str(info.value)


def test_rejected_ecgs_name_the_problem(pipe):
    with pytest.raises(ValueError, match=r"rejected the ECG of shape \(12, 1000\): sampling_rate is required"):
        pipe(np.zeros((12, 1000)), candidate_labels=LABELS)
    with pytest.raises(FileNotFoundError, match="no/such/record"):
        pipe("no/such/record", candidate_labels=LABELS)
    with pytest.raises(ValueError, match="shorter than one patch"):
        pipe(np.ones((12, 10)), sampling_rate=100, candidate_labels=LABELS)
    with pytest.raises(ValueError, match="needs the key 'ecg'"):
        pipe({"signal": np.ones((12, 1000))}, candidate_labels=LABELS)


def test_ecg_only_model_is_refused(model_dir):
    classifier = CGDMERForECGClassification(CGDMERConfig.from_pretrained(model_dir))
    pipe = ZeroShotECGClassificationPipeline(model=classifier, tokenizer=load_default_tokenizer(),
                                             feature_extractor=CGDMERFeatureExtractor())
    with pytest.raises(ValueError, match="no report encoder"):
        pipe(sample_record_path(2), candidate_labels=LABELS)


def test_build_prompts():
    assert build_prompts(["a", "b"], "x {}") == (("a", ("x a",)), ("b", ("x b",)))
    assert build_prompts({"a": "one", "b": ["two", "three"]}) == (("a", ("one",)), ("b", ("two", "three")))


def test_feature_extraction_pipeline(pipe):
    extractor = ECGFeatureExtractionPipeline(model=pipe.model, feature_extractor=pipe.feature_extractor)
    path = sample_record_path(2)
    inputs = pipe.feature_extractor(path, return_tensors="pt")
    with torch.no_grad():
        rep = pipe.model.get_ecg_representation(**inputs)[0]
        shared = F.normalize(pipe.model.get_ecg_features(**inputs).pooler_output, dim=-1)[0]
    np.testing.assert_allclose(extractor(path), rep.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(extractor(path, kind="shared", normalize=True), shared.numpy(), rtol=1e-5, atol=1e-6)
    assert len(extractor([path, path])) == 2
    with pytest.raises(ValueError, match="kind must be one of"):
        extractor(path, kind="text")


def test_saved_pipeline_loads_without_the_package(pipe, tmp_path):
    folder = tmp_path / "saved"
    pipe.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"]["zero-shot-ecg-classification"]["impl"] == \
        "pipeline_cgdmer.ZeroShotECGClassificationPipeline"
    assert {"pipeline_cgdmer.py", "modeling_cgdmer.py", "feature_extraction_cgdmer.py", "tokenizer.json",
            "preprocessor_config.json"} <= set(os.listdir(folder))
    expected = pipe(sample_record_path(2), candidate_labels={"NORM": ["normales ekg", "normal ecg"]})
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["cgdmer_hf"] = None  # the package must not be importable
        from transformers import pipeline
        pipe = pipeline(model={str(folder)!r}, trust_remote_code=True)
        assert type(pipe).__module__.startswith("transformers_modules"), type(pipe).__module__
        out = pipe({sample_record_path(2)!r}, candidate_labels={{"NORM": ["normales ekg", "normal ecg"]}})
        print(json.dumps(out))
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out[0]["label"] == "NORM" and out[0]["score"] == pytest.approx(expected[0]["score"], rel=1e-5)
    # With the package, the same folder loads by task name with no remote code and no pipeline_class.
    local = pipeline("zero-shot-ecg-classification", model=str(folder))
    assert type(local) is ZeroShotECGClassificationPipeline
    assert local(sample_record_path(2), candidate_labels={"NORM": ["normales ekg", "normal ecg"]}) == expected


def test_the_pipeline_and_the_harness_score_with_the_model(pipe):
    """The pipeline and the evaluation harness both call `CGDMERModel.zero_shot_*`: the same scores, to the bit."""
    from datasets import Array2D, Dataset

    from cgdmer_hf.evaluation import compute_embeddings, zero_shot_labels, zero_shot_scores

    prompts = {"normal ecg": ["normal ecg", "sinus rhythm"], "myocardial infarction": ["myocardial infarction"]}
    out = {d["label"]: d["score"] for d in pipe(sample_record_path(2), candidate_labels=prompts)}
    inputs = pipe.feature_extractor(sample_record_path(2), return_tensors="pt")
    with torch.no_grad():
        ecg = pipe.model.zero_shot_ecg_embeddings(**inputs).numpy()
    harness = zero_shot_scores(pipe.model, ecg, zero_shot_labels(pipe.model, pipe.tokenizer, prompts))[0]
    assert dict(zip(prompts, harness.tolist())) == out
    rows = Dataset.from_dict({k: v.numpy().tolist() for k, v in inputs.items()})
    rows = rows.cast_column("ecg_values", Array2D(shape=tuple(inputs["ecg_values"].shape[1:]), dtype="float32"))
    assert np.array_equal(compute_embeddings(pipe.model, rows, kind="shared", normalize=True), ecg)
