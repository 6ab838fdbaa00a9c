"""The shipped `cgdmer-base` checkpoint at the top of the repo: loads by folder name, runs the zero-shot
pipeline on a bundled real ECG, stays within the size limit and is a complete Hub repo."""

import json
import os

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModel, AutoProcessor, pipeline

import cgdmer_hf
from cgdmer_hf.hub import code_files, validate_model_dir
from cgdmer_hf.samples import load_sample_index, sample_record_path

from conftest import REPO_ROOT

MODEL = REPO_ROOT / "cgdmer-base"
pytestmark = pytest.mark.skipif(not (MODEL / "config.json").exists(), reason="cgdmer-base/ is not in this checkout")


def test_loads_from_the_repo_root_by_folder_name(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    model = AutoModel.from_pretrained("cgdmer-base")
    assert isinstance(model, cgdmer_hf.CGDMERModel) and next(model.parameters()).dtype == torch.float32
    processor = AutoProcessor.from_pretrained("cgdmer-base")
    assert processor.feature_extractor.sampling_rate == model.config.ecg_config.sampling_rate
    assert len(processor.tokenizer) == model.config.text_config.vocab_size


def test_weights_are_fp16_safetensors_under_25_mb():
    weights = MODEL / "model.safetensors"
    assert weights.stat().st_size < 25 * 2**20
    with safe_open(weights, "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in os.listdir(MODEL))
    validate_model_dir(MODEL)  # complete repo: weights, processor, tokenizer, code files


def test_zero_shot_pipeline_on_a_bundled_test_record(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    classifier = pipeline("zero-shot-ecg-classification", model="cgdmer-base")
    row = next(r for r in load_sample_index() if r["strat_fold"] == 10)
    out = classifier(sample_record_path(row["ecg_id"]), candidate_labels=cgdmer_hf.load_prompt_set("ptbxl_super"))
    assert sorted(item["label"] for item in out) == ["CD", "HYP", "MI", "NORM", "STTC"]
    scores = [item["score"] for item in out]
    assert scores == sorted(scores, reverse=True) and all(0.0 < s < 1.0 for s in scores)


def test_model_card_reports_the_benchmark_results():
    card = (MODEL / "README.md").read_text()
    results = json.loads((MODEL / "eval_results.json").read_text())["results"]
    assert "Not for clinical use" in card and "library_name: transformers" in card
    for result in results:
        assert f"{result['value']:.4f}" in card


def test_shipped_fold9_prompts_reproduce_the_card_zero_shot_figure(shared_data):
    from datasets import DatasetDict

    from cgdmer_hf.data import load_ptbxl
    from cgdmer_hf.evaluation import EvaluationSettings, evaluate_model

    prompts = MODEL / "zero_shot_prompts" / "ptbxl_super.json"
    assert set(cgdmer_hf.load_prompt_set(str(prompts))) == {"CD", "HYP", "MI", "NORM", "STTC"}
    test = DatasetDict({"test": load_ptbxl(shared_data, label_set="super", split="test")})
    result = evaluate_model(str(MODEL), test, settings=EvaluationSettings(
        tasks=("zero-shot",), prompts=str(prompts), random_baseline=False, bootstrap=0, plots=False))
    card = next(r for r in json.loads((MODEL / "eval_results.json").read_text())["results"]
                if r["task"] == "zero-shot" and r["dataset"] == "PTB-XL super")
    assert result["results"][0]["roc_auc"] == pytest.approx(card["value"], abs=2e-3)  # fp16 weights vs fp32 run


def limb_lead_errors(model_dir):
    """Per-patch normalised MSE of the limb leads III, aVR, aVL, aVF when only leads I and II are visible, on the
    bundled PTB-XL records of folds 9-10 (never trained on), for the model and for predicting zeros."""
    from cgdmer_hf import CGDMERForPreTraining

    model = CGDMERForPreTraining.from_pretrained(model_dir, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    rows = [r for r in load_sample_index() if r["strat_fold"] >= 9]
    ecg = processor.feature_extractor([sample_record_path(r["ecg_id"]) for r in rows], return_tensors="pt")
    cfg = model.config.ecg_config
    masked = torch.ones(len(rows), cfg.num_leads, cfg.num_patches, dtype=torch.bool)
    masked[:, [cfg.lead_names.index("I"), cfg.lead_names.index("II")]] = False
    with torch.no_grad():
        out = model(ecg_values=ecg["ecg_values"], lead_mask=ecg["lead_mask"], ecg_mask=masked.view(len(rows), -1))
    target = model._reconstruction_target(ecg["ecg_values"]).view(len(rows), cfg.num_leads, cfg.num_patches, -1)
    recon = out.ecg_reconstruction.view_as(target)
    limb = [cfg.lead_names.index(name) for name in ("III", "aVR", "aVL", "aVF")]
    return float(((recon - target) ** 2)[:, limb].mean()), float((target ** 2)[:, limb].mean())


def test_masked_limb_leads_are_reconstructed_from_leads_i_and_ii():
    """Einthoven and Goldberger make III, aVR, aVL and aVF linear combinations of I and II. The v0.1 checkpoint
    scored 0.994 here (zeros: 1.0) and the slot-pooling checkpoint 0.89; the shipped one (divided attention, no
    slot pooling) 0.54 on these records and 0.59 on PTB-XL fold 9, least squares 0.24 (README)."""
    model_error, zeros_error = limb_lead_errors(MODEL)
    assert zeros_error == pytest.approx(1.0, abs=0.01)
    assert model_error < 0.65 * zeros_error, (model_error, zeros_error)


PACKAGE = REPO_ROOT / "cgdmer_hf"
UPDATE = "python scripts/update_shipped_model.py"


def test_shipped_code_files_are_the_package_model_files():
    """`cgdmer-base/*.py` are what `save_pretrained` copies (the package's `*_cgdmer.py` model files, byte for byte):
    a change to a model file fails here until the shipped folder is updated."""
    shipped = sorted(p.name for p in MODEL.glob("*.py"))
    model_files = sorted(p.name for p in PACKAGE.glob("*_cgdmer.py"))
    assert shipped == model_files, f"cgdmer-base/ ships {shipped}, the package has {model_files}; run {UPDATE}"
    stale = [name for name in model_files if (MODEL / name).read_bytes() != (PACKAGE / name).read_bytes()]
    assert not stale, f"cgdmer-base/{stale} differ from cgdmer_hf/{stale}; run {UPDATE}"
    assert set(model_files) == set(code_files(MODEL))  # every file a trust_remote_code load imports, no other


def test_top_level_model_card_is_the_shipped_card():
    """`MODEL_CARD.md` is the card of the shipped model (its README.md), not the Jinja template, which is
    `cgdmer_hf/resources/model_card_template.md`."""
    card = REPO_ROOT / "MODEL_CARD.md"
    assert not card.is_symlink() and card.read_bytes() == (MODEL / "README.md").read_bytes(), f"run {UPDATE}"
    assert "{{" in (PACKAGE / "resources" / "model_card_template.md").read_text() and "{{" not in card.read_text()
