"""CGDMERProcessor: ECG + report in one call, bad input, save/load through the Auto classes (offline), and
loading with trust_remote_code in a process without the package."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from transformers import AutoFeatureExtractor, AutoProcessor, AutoTokenizer

import cgdmer_hf  # noqa: F401  (registers the Auto classes)
from cgdmer_hf import CGDMERFeatureExtractor, CGDMERProcessor
from cgdmer_hf.reports import clean_report, load_default_tokenizer
from cgdmer_hf.samples import load_sample_index, sample_record_path


@pytest.fixture(scope="module")
def processor():
    return CGDMERProcessor(CGDMERFeatureExtractor(), load_default_tokenizer())


@pytest.fixture(scope="module")
def rows():
    return load_sample_index()[:3]


def test_ecg_and_text(processor, rows):
    paths = [sample_record_path(r["ecg_id"]) for r in rows]
    texts = [clean_report(r["report"]) for r in rows]
    out = processor(ecg=paths, text=texts, return_tensors="pt")
    assert set(out) == {"ecg_values", "lead_mask", "ecg_attention_mask", "input_ids", "attention_mask"}
    assert out["ecg_values"].shape == (3, 12, 1000) and out["input_ids"].shape[0] == 3
    np.testing.assert_array_equal(out["ecg_values"].numpy(), processor.feature_extractor(paths)["ecg_values"])
    expected = processor.tokenizer(texts, padding=True, return_tensors="pt")
    assert out["input_ids"].tolist() == expected["input_ids"].tolist()
    assert out["input_ids"][:, 0].eq(2).all()  # [CLS]
    assert set(processor.model_input_names) >= {"ecg_values", "lead_mask", "ecg_attention_mask", "input_ids"}


def test_array_with_rate_and_lead_names(processor, rows):
    sig = np.random.default_rng(0).standard_normal((3, 2500))
    out = processor(ecg=sig, sampling_rate=250, lead_names=["V1", "II", "avl"])
    assert out["lead_mask"].tolist() == [[0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0]]
    assert out["ecg_values"].shape == (1, 12, 1000) and "input_ids" not in out


def test_text_only(processor):
    out = processor(text="sinus rhythm. normal ecg.")
    assert set(out) == {"input_ids", "attention_mask"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "Give an ECG"),
        ({"text": ""}, "text 0 is an empty report"),
        ({"text": ["sinus rhythm", "  "]}, "text 1 is an empty report"),
        ({"text": ["sinus rhythm", None]}, "text 1 is not a string"),
        ({"text": 5}, "text must be a string"),
        ({"text": "ok", "sampling_rate": 500}, "no ecg was given"),
        ({"ecg": np.zeros((12, 1000))}, "sampling_rate is required"),
    ],
)
def test_bad_input(processor, kwargs, message):
    with pytest.raises(ValueError, match=message):
        processor(**kwargs)


def test_save_pretrained_and_auto_classes(processor, rows, tmp_path):
    processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "processor_config.json").read_text())
    assert config["processor_class"] == "CGDMERProcessor"
    assert config["auto_map"]["AutoProcessor"] == "processing_cgdmer.CGDMERProcessor"
    for name in ("processing_cgdmer.py", "feature_extraction_cgdmer.py", "configuration_cgdmer.py", "tokenizer.json"):
        assert (tmp_path / name).exists(), name
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, CGDMERProcessor)
    assert isinstance(AutoFeatureExtractor.from_pretrained(tmp_path), CGDMERFeatureExtractor)
    assert AutoTokenizer.from_pretrained(tmp_path).mask_token_id == 4
    path = sample_record_path(rows[0]["ecg_id"])
    text = clean_report(rows[0]["report"])
    a, b = processor(ecg=path, text=text), loaded(ecg=path, text=text)
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))


def test_trust_remote_code_without_the_package(processor, rows, tmp_path):
    """A saved processor loads with trust_remote_code=True where cgdmer_hf cannot be imported."""
    processor.save_pretrained(tmp_path / "proc")
    path = sample_record_path(rows[0]["ecg_id"])
    expected = processor(ecg=path, text="sinus rhythm")
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["cgdmer_hf"] = None  # no package
        import numpy as np
        from transformers import AutoProcessor
        p = AutoProcessor.from_pretrained({str(tmp_path / "proc")!r}, trust_remote_code=True)
        assert type(p).__module__.startswith("transformers_modules"), type(p).__module__
        out = p(ecg={path!r}, text="sinus rhythm")
        np.save({str(tmp_path / "ecg.npy")!r}, out["ecg_values"])
        print(out["input_ids"])
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "ecg.npy"), expected["ecg_values"])
    assert str(expected["input_ids"]) in result.stdout
