"""Issue 13: plain class names as the headline zero-shot prompts, calibrated zero-shot probabilities (maths, config,
pipeline, harness), the unknown-word warning, and ECG <-> report retrieval."""

import logging
import shutil

import numpy as np
import pytest
import torch
from transformers import pipeline

import cgdmer_hf  # noqa: F401  (registers the task)
from cgdmer_hf import CGDMERConfig, CGDMERModel
from cgdmer_hf import evaluation as E
from cgdmer_hf.data import load_ptbxl, split_by_fold
from cgdmer_hf.data.labels import CINC_LABEL_SETS, PTBXL_LABEL_SETS, cinc_label_names, ptbxl_label_names
from cgdmer_hf.data.labels import read_scp_statements
from cgdmer_hf.pipeline_cgdmer import build_prompts, unseen_labels
from cgdmer_hf.prompts import PLAIN_NAMES, plain_prompt_set
from cgdmer_hf.reports import clean_report_or_empty, load_default_tokenizer
from cgdmer_hf.samples import sample_data_dir, sample_record_path

KEY = CGDMERModel.zero_shot_label_key


# ------------------------------------------------------------------------------------------------ calibration maths
def test_ece_and_brier_known_values():
    probs = np.array([[0.1, 0.9], [0.1, 0.9]])
    labels = np.array([[0, 1], [1, 1]])
    # bins: 0.1 holds (0.1, 0), (0.1, 1) -> positive rate 0.5, gap 0.4; 0.9 holds two positives -> gap 0.1
    assert E.expected_calibration_error(probs, labels) == pytest.approx((0.4 * 2 + 0.1 * 2) / 4)
    assert E.brier_score(probs, labels) == pytest.approx((0.01 + 0.01 + 0.81 + 0.01) / 4)
    assert E.expected_calibration_error(np.array([[0.0], [1.0]]), np.array([[0], [1]])) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        E.brier_score(probs, labels[:1])
    with pytest.raises(ValueError, match="0 or 1"):
        E.brier_score(probs, probs)


def test_platt_recovers_known_scale_and_bias():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(20000, 1))
    labels = (rng.random(logits.shape) < 1 / (1 + np.exp(-(0.5 * logits - 1.0)))).astype(float)
    fit = E.fit_zero_shot_calibration(logits, labels, ["Sinus  Tachycardia."])
    assert fit["scale"] == pytest.approx(0.5, abs=0.03) and fit["bias"] == pytest.approx(-1.0, abs=0.05)
    scale, bias = fit["per_label"]["sinus tachycardia"]
    assert scale == pytest.approx(0.5, abs=0.03) and bias == pytest.approx(-1.0, abs=0.05)
    calibrated = E.apply_calibration(logits, fit, ["sinus tachycardia"])
    assert E.expected_calibration_error(calibrated, labels) < 0.02


def test_platt_never_reverses_the_ranking():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(5000, 1))
    labels = (rng.random(logits.shape) < 1 / (1 + np.exp(0.5 * logits + 1.0))).astype(float)  # ranked backwards
    scale, bias = E.fit_zero_shot_calibration(logits, labels, ["conduction disturbance"])["per_label"][
        "conduction disturbance"]
    assert scale == 0.0  # a constant probability: the validation rate of the label
    assert 1 / (1 + np.exp(-bias)) == pytest.approx(labels.mean(), abs=0.01)


def test_per_text_keys_pool_blocks_and_need_enough_examples():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(60, 2))
    ya = np.zeros((60, 2))
    ya[:30, 0] = 1  # 30 positives, 30 negatives: own pair
    ya[:5, 1] = 1  # 5 positives: shared pair
    b = rng.normal(size=(40, 1))
    yb = (np.arange(40) < 20).astype(float)[:, None]
    fit = E.fit_zero_shot_calibration([a, b], [ya, yb], [["normal ecg", ("rare", "thing")], ["Normal ECG"]])
    assert set(fit["per_label"]) == {"normal ecg"}  # columns of one text pooled across blocks
    assert fit["fitted_on"]["pairs"] == 160 and fit["fitted_on"]["labels"] == ["normal ecg", "rare | thing"]
    assert KEY(("Rare", " thing ")) == "rare | thing" and KEY("e\u0301cg.") == "\u00e9cg"
    probs = E.apply_calibration(np.zeros((1, 2)), fit, ["normal ecg", "other"])
    shared = 1 / (1 + np.exp(-fit["bias"]))
    assert probs[0, 1] == pytest.approx(shared, rel=1e-5)
    assert probs[0, 0] == pytest.approx(1 / (1 + np.exp(-fit["per_label"]["normal ecg"][1])), rel=1e-5)


# ------------------------------------------------------------------------------------------------ config and model
CALIBRATION = {"method": "platt", "scale": 0.5, "bias": -1.0, "per_label": {"sinus tachycardia": [2.0, 1.0]},
               "fitted_on": {}}


def test_config_round_trip_with_zero_shot_calibration(tmp_path):
    config = CGDMERConfig.from_preset("tiny", zero_shot_calibration=CALIBRATION)
    config.save_pretrained(tmp_path)
    assert CGDMERConfig.from_pretrained(tmp_path).zero_shot_calibration == CALIBRATION
    assert CGDMERConfig.from_preset("tiny").zero_shot_calibration is None


def test_model_scores_raw_without_calibration_and_calibrated_with_it():
    torch.manual_seed(0)
    model = CGDMERModel(CGDMERConfig.from_preset("tiny")).eval()
    ecg = torch.nn.functional.normalize(torch.randn(3, model.config.projection_dim), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(2, model.config.projection_dim), dim=-1)
    raw = torch.sigmoid(model.similarity_logits(ecg, text).float())
    assert torch.equal(model.zero_shot_scores(ecg, text), raw)  # bit-identical without a calibration
    model.config.zero_shot_calibration = CALIBRATION
    logits = model.zero_shot_logits(ecg, text)
    scores = model.zero_shot_scores(ecg, text, [("Sinus tachycardia",), ("other",)])
    torch.testing.assert_close(scores[:, 0], torch.sigmoid(2.0 * logits[:, 0] + 1.0))
    torch.testing.assert_close(scores[:, 1], torch.sigmoid(0.5 * logits[:, 1] - 1.0))
    assert torch.equal(model.zero_shot_scores(ecg, text, calibrated=False), raw)
    with pytest.raises(ValueError, match="label_texts has 1 entries for 2 labels"):
        model.zero_shot_scores(ecg, text, ["one"])


def test_centred_logits_are_the_logits_of_label_minus_centre():
    torch.manual_seed(0)
    model = CGDMERModel(CGDMERConfig.from_preset("tiny")).eval()
    dim = model.config.projection_dim
    ecg = torch.nn.functional.normalize(torch.randn(3, dim), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(2, dim), dim=-1)
    raw = model.similarity_logits(ecg, text).float()
    assert torch.equal(model.zero_shot_logits(ecg, text), raw)  # no centre: plain SigLIP
    centre = 0.5 * torch.nn.functional.normalize(torch.randn(dim), dim=-1)
    model.config.zero_shot_centre, model.config.zero_shot_centre_offset = centre.tolist(), 0.25
    expected = (ecg @ (text - centre).t() + 0.25) * model.logit_scale.exp() + model.logit_bias
    torch.testing.assert_close(model.zero_shot_logits(ecg, text), expected)
    assert torch.equal(model.zero_shot_logits(ecg, text, centred=False), raw)
    # the same amount comes off every label of an ECG: the ranking of its labels is unchanged
    torch.testing.assert_close((raw - model.zero_shot_logits(ecg, text)).diff(dim=1), torch.zeros(3, 1))


def test_zero_shot_centre_config_round_trip_and_errors(tmp_path):
    config = CGDMERConfig.from_preset("tiny")
    config.zero_shot_centre = [0.25] * config.projection_dim
    config.save_pretrained(tmp_path)
    assert CGDMERConfig.from_pretrained(tmp_path).zero_shot_centre == [0.25] * config.projection_dim
    assert CGDMERConfig.from_preset("tiny").zero_shot_centre is None
    with pytest.raises(ValueError, match=f"must hold {config.projection_dim} finite numbers.*got 3"):
        CGDMERConfig.from_preset("tiny", zero_shot_centre=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="NaN or infinity"):
        CGDMERConfig.from_preset("tiny", zero_shot_centre=[float("nan")] * config.projection_dim)
    with pytest.raises(ValueError, match="list of .* numbers, got str"):
        CGDMERConfig.from_preset("tiny", zero_shot_centre="mean")


def test_fit_zero_shot_centre_weights_repeated_reports_and_keeps_the_average_logit(caplog, monkeypatch):
    torch.manual_seed(0)
    tokenizer = load_default_tokenizer()
    model = CGDMERModel(CGDMERConfig.from_preset("tiny", text_config=dict(vocab_size=len(tokenizer)))).eval()
    model.config.zero_shot_calibration = CALIBRATION
    records = load_ptbxl(sample_data_dir()).select(range(6))
    records = records.add_column("report2", ["Sinusrhythmus Normales EKG", "sinus rhythm normal ecg",
                                             "Left bundle branch block", None, "  ", None])
    records = records.remove_columns("report").rename_column("report2", "report")
    with caplog.at_level(logging.WARNING):
        centre = E.fit_zero_shot_centre(model, tokenizer, records)
    assert model.config.zero_shot_centre == centre
    assert model.config.zero_shot_calibration is None and any("fit it again" in r.getMessage() for r in caplog.records)
    embeds = model.zero_shot_report_embeddings(["sinus rhythm normal ecg", "left bundle branch block"], tokenizer)
    # the German report cleans to the English one: it counts twice; missing and blank ones not at all
    assert clean_report_or_empty(float("nan")) == "" == clean_report_or_empty(None)
    np.testing.assert_allclose(centre, ((2 * embeds[0] + embeds[1]) / 3).numpy(), atol=1e-6)
    assert model.config.zero_shot_reports == {"sinus rhythm normal ecg": 2, "left bundle branch block": 1}
    monkeypatch.setattr("cgdmer_hf.modeling_cgdmer.ZERO_SHOT_BANK_SIZE", 1)  # the bank keeps the most frequent
    E.fit_zero_shot_centre(model, tokenizer, records)
    assert model.config.zero_shot_reports == {"sinus rhythm normal ecg": 2}
    np.testing.assert_allclose(model.config.zero_shot_centre, centre, atol=1e-6)  # the centre averages them all
    ecg = E.compute_embeddings(model, records, kind="shared", normalize=True)
    assert model.config.zero_shot_centre_offset == pytest.approx(float((ecg @ np.asarray(centre)).mean()), abs=1e-6)
    # over the fitting ECGs the centred logits average the plain ones: centring does not drown every score
    label = torch.nn.functional.normalize(torch.randn(3, model.config.projection_dim), dim=-1)
    ecg = torch.as_tensor(ecg)
    torch.testing.assert_close(model.zero_shot_logits(ecg, label).mean(0),
                               model.zero_shot_logits(ecg, label, centred=False).mean(0), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="at least one report with text"):
        model.fit_zero_shot_centre(["", ""], tokenizer, [])
    with pytest.raises(ValueError, match="at least one ECG"):
        model.fit_zero_shot_centre(["sinus rhythm"], tokenizer, [])


def test_random_init_baseline_has_no_centre_or_calibration():
    model = CGDMERModel(CGDMERConfig.from_preset("tiny", zero_shot_calibration=CALIBRATION,
                                                 zero_shot_reports={"sinus rhythm": 2}))
    model.config.zero_shot_centre = [0.1] * model.config.projection_dim
    random = E.random_init_like(model)
    assert random.config is not model.config
    assert random.config.zero_shot_centre is None and random.config.zero_shot_calibration is None
    assert model.config.zero_shot_centre is not None  # the trained model keeps its own
    assert random.config.zero_shot_reports == {"sinus rhythm": 2}  # texts, not weights: scored the same way


# ------------------------------------------------------------------------------------------------ report bank
def test_description_words_and_bank_weights_known_values():
    from cgdmer_hf.modeling_cgdmer import description_words, report_bank_weights

    assert description_words("ST-T Changes, 1st degree AV block.") == {"st", "change", "1st", "degree", "av", "block"}
    assert description_words("premature contraction(s) a") == {"premature", "contraction"}  # 1-letter runs dropped
    bank = {"sinus rhythm normal ecg": 6, "sinus rhythm left bundle branch block": 1, "atrial fibrillation": 1}
    idf = {"left": np.log(8), "bundle": np.log(8), "branch": np.log(8), "block": np.log(8), "sinu": np.log(8 / 7),
           "rhythm": np.log(8 / 7), "atrial": np.log(8), "fibrillation": np.log(8)}
    weights = report_bank_weights(bank, ["left bundle branch block", "sinus rhythm", "atrial flutter", "xyzzy"])
    np.testing.assert_allclose(weights[0], [0, 1, 0])  # the one report that holds all its words, its count
    np.testing.assert_allclose(weights[1], [6, 1, 0])
    # "flutter" is in no report: the description's information is that of "atrial" alone, which one report holds
    np.testing.assert_allclose(weights[2], [0, 0, 1])
    assert weights[3].sum() == 0  # no word in the bank: the description keeps its own embedding
    half = report_bank_weights(bank, ["sinus bundle"])[0]  # holds "sinu" only, "sinu" and "bundle", nothing
    share = idf["sinu"] / (idf["sinu"] + idf["bundle"])
    np.testing.assert_allclose(half, [6 * share ** 2, 1.0, 0.0])
    np.testing.assert_allclose(report_bank_weights(bank, ["sinus bundle"], power=1.0)[0], [6 * share, 1.0, 0.0])


def test_report_bank_config_round_trip_and_errors(tmp_path):
    config = CGDMERConfig.from_preset("tiny", zero_shot_reports={"sinus rhythm": 3, "left bundle branch block": 1})
    config.save_pretrained(tmp_path)
    assert CGDMERConfig.from_pretrained(tmp_path).zero_shot_reports == {"sinus rhythm": 3,
                                                                        "left bundle branch block": 1}
    assert CGDMERConfig.from_preset("tiny").zero_shot_reports is None
    for bad in (["sinus rhythm"], {"sinus rhythm": 0}, {"": 2}, {"sinus rhythm": 1.5}, {"sinus rhythm": True}):
        with pytest.raises(ValueError, match="zero_shot_reports must be a dict"):
            CGDMERConfig.from_preset("tiny", zero_shot_reports=bad)


def test_label_embeddings_through_the_report_bank():
    from cgdmer_hf.modeling_cgdmer import report_bank_weights

    torch.manual_seed(0)
    tokenizer = load_default_tokenizer()
    bank = {"sinus rhythm normal ecg": 6, "sinus rhythm left bundle branch block": 1, "atrial fibrillation": 2}
    model = CGDMERModel(CGDMERConfig.from_preset("tiny", text_config=dict(vocab_size=len(tokenizer)),
                                                 zero_shot_reports=bank)).eval()
    prompts = {"LBBB": ["left bundle branch block", "sinus rhythm"], "odd": ["xyzzy"]}
    own = model.zero_shot_label_embeddings(prompts, tokenizer, use_report_bank=False)
    reports = model.zero_shot_report_embeddings(list(bank), tokenizer).double()
    weights = report_bank_weights(bank, ["left bundle branch block", "sinus rhythm"])
    each = torch.nn.functional.normalize(weights @ reports, dim=-1)
    expected = torch.nn.functional.normalize(each.mean(0), dim=-1).float()
    labels = model.zero_shot_label_embeddings(prompts, tokenizer)
    torch.testing.assert_close(labels[0], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(labels[1], own[1])  # no word in the bank: its own embedding
    assert not torch.allclose(labels[0], own[0], atol=1e-3)
    # the bank's embeddings are kept between calls, and recomputed once a weight changes in place
    with torch.no_grad():
        model.text_model.token_embedding.weight.mul_(1.5).add_(0.01)
    reports = model.zero_shot_report_embeddings(list(bank), tokenizer).double()
    expected = torch.nn.functional.normalize(torch.nn.functional.normalize(weights @ reports, dim=-1).mean(0), dim=-1)
    torch.testing.assert_close(model.zero_shot_label_embeddings(prompts, tokenizer)[0], expected.float(),
                               atol=1e-6, rtol=0)


def _bank_model():
    torch.manual_seed(0)
    tokenizer = load_default_tokenizer()
    bank = {"sinus rhythm normal ecg": 6, "sinus rhythm left bundle branch block": 1, "atrial fibrillation": 2}
    config = CGDMERConfig.from_preset("tiny", text_config=dict(vocab_size=len(tokenizer)), zero_shot_reports=bank,
                                      logit_scale_init_value=float(np.log(5.0)))
    model = CGDMERModel(config).eval()
    model.config.zero_shot_centre = torch.nn.functional.normalize(torch.randn(config.projection_dim), dim=0).tolist()
    return model, tokenizer, bank


def test_labels_scored_through_the_report_bank_posterior():
    from cgdmer_hf.modeling_cgdmer import ZeroShotLabels, report_bank_weights

    model, tokenizer, bank = _bank_model()
    prompts = {"LBBB": ["left bundle branch block", "xyzzy"], "AF": ["atrial fibrillation", "sinus rhythm"],
               "odd": ["xyzzy"]}
    labels = model.zero_shot_labels(prompts, tokenizer)
    assert isinstance(labels, ZeroShotLabels) and len(labels) == 3
    assert labels.in_bank.tolist() == [True, True, False]
    torch.testing.assert_close(labels.embeds, model.zero_shot_label_embeddings(prompts, tokenizer))
    # a label's weights: the mean over its descriptions that share a word with the bank ("xyzzy" does not)
    weights = report_bank_weights(bank, ["left bundle branch block", "atrial fibrillation", "sinus rhythm"])
    torch.testing.assert_close(labels.bank_weights, torch.stack([weights[0], weights[1:].mean(0),
                                                                 torch.zeros(3, dtype=torch.float64)]))
    ecg = torch.nn.functional.normalize(torch.randn(5, model.config.projection_dim), dim=-1)
    logits = model.zero_shot_logits(ecg, labels)
    # by hand: p = sum_r count_r exp(t * ecg . r) share_r / sum_r count_r exp(t * ecg . r), t = exp(logit_scale) = 5
    reports = model.zero_shot_report_embeddings(list(bank), tokenizer).double()
    counts = torch.tensor([6.0, 1.0, 2.0], dtype=torch.float64)
    evidence = counts * torch.exp(5.0 * ecg.double() @ reports.t())
    for j in range(2):
        p = (evidence * labels.bank_weights[j] / counts).sum(-1) / evidence.sum(-1)
        torch.testing.assert_close(torch.sigmoid(logits[:, j]).double(), p, atol=1e-6, rtol=1e-5)
    # a label without a word in the bank, a tensor of embeddings, centred=False: the linear logits as before
    linear = model.zero_shot_logits(ecg, labels.embeds)
    torch.testing.assert_close(logits[:, 2], linear[:, 2])
    torch.testing.assert_close(model.zero_shot_logits(ecg, labels, centred=False),
                               model.zero_shot_logits(ecg, labels.embeds, centred=False))
    assert not model.zero_shot_labels(prompts, tokenizer, use_report_bank=False).in_bank.any()
    scores = model.zero_shot_scores(ecg, labels)  # no calibration: the posterior itself
    torch.testing.assert_close(scores, torch.sigmoid(logits))
    with pytest.raises(ValueError, match="need bank_embeds and bank_counts"):
        ZeroShotLabels(labels.embeds, labels.bank_weights)
    with pytest.raises(ValueError, match="shapes do not fit together"):
        ZeroShotLabels(labels.embeds[:2], labels.bank_weights, labels.bank_embeds, labels.bank_counts)
    with pytest.raises(ValueError, match="shapes do not fit together"):
        ZeroShotLabels(labels.embeds, labels.bank_weights, labels.bank_embeds, labels.bank_counts[:2])
    # differentiable in the ECG embeddings (e.g. to tune an ECG encoder against zero-shot scores)
    ecg.requires_grad_(True)
    model.zero_shot_logits(ecg, labels)[:, :2].sum().backward()
    assert ecg.grad is not None and bool(torch.isfinite(ecg.grad).all()) and ecg.grad.abs().sum() > 0


def test_bank_posterior_at_a_small_temperature_ranks_as_the_centred_bank_mean():
    model, tokenizer, bank = _bank_model()
    with torch.no_grad():
        model.logit_scale.fill_(float(np.log(1e-3)))
    labels = model.zero_shot_labels({"LBBB": ["left bundle branch block"], "SR": ["sinus rhythm"]}, tokenizer)
    ecg = torch.nn.functional.normalize(torch.randn(50, model.config.projection_dim), dim=-1)
    counts = labels.bank_counts
    mean = labels.bank_weights @ labels.bank_embeds / labels.bank_weights.sum(-1, keepdim=True)
    centre = counts @ labels.bank_embeds / counts.sum()
    expected = ecg.double() @ (mean - centre).t()
    got = model.zero_shot_logits(ecg, labels).double()
    for j in range(2):
        assert torch.equal(torch.argsort(got[:, j]), torch.argsort(expected[:, j]))


def test_pipeline_scores_bank_labels_with_the_posterior(tmp_path, one_thread):
    from cgdmer_hf.feature_extraction_cgdmer import CGDMERFeatureExtractor
    from cgdmer_hf.processing_cgdmer import CGDMERProcessor

    model, tokenizer, _ = _bank_model()
    model.save_pretrained(tmp_path)
    CGDMERProcessor(CGDMERFeatureExtractor(), tokenizer).save_pretrained(tmp_path)
    pipe = pipeline("zero-shot-ecg-classification", model=str(tmp_path))
    prompts = {"left bundle branch block": ["left bundle branch block"], "xyzzy": ["xyzzy"]}
    out = {d["label"]: d["score"] for d in pipe(sample_record_path(2), candidate_labels=list(prompts))}
    inputs = pipe.feature_extractor(sample_record_path(2), return_tensors="pt")
    with torch.no_grad():
        ecg = model.zero_shot_ecg_embeddings(**inputs)
        expected = model.zero_shot_scores(ecg, model.zero_shot_labels(prompts, tokenizer))[0]
    assert out == pytest.approx(dict(zip(prompts, expected.tolist())), rel=1e-6)


# ------------------------------------------------------------------------------------------------ pipeline
@pytest.fixture(scope="module")
def calibrated_dir(tiny_zero_shot_model_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("calibrated") / "model"
    shutil.copytree(tiny_zero_shot_model_dir, path)
    config = CGDMERConfig.from_pretrained(path)
    config.zero_shot_calibration = CALIBRATION
    config.save_pretrained(path)
    return path


def test_pipeline_applies_calibration_by_default(calibrated_dir, tiny_zero_shot_model_dir, one_thread):
    record, labels = sample_record_path(2), ["sinus tachycardia", "normal ecg"]
    raw_pipe = pipeline("zero-shot-ecg-classification", model=str(tiny_zero_shot_model_dir))
    pipe = pipeline("zero-shot-ecg-classification", model=str(calibrated_dir))
    raw = {d["label"]: d["score"] for d in raw_pipe(record, candidate_labels=labels)}
    out = pipe(record, candidate_labels=labels)
    assert all(d["calibrated"] is True for d in out)
    got = {d["label"]: d["score"] for d in out}

    def logit(p):
        return np.log(p) - np.log1p(-p)

    assert got["sinus tachycardia"] == pytest.approx(1 / (1 + np.exp(-(2 * logit(raw["sinus tachycardia"]) + 1))),
                                                     rel=1e-4)
    assert got["normal ecg"] == pytest.approx(1 / (1 + np.exp(-(0.5 * logit(raw["normal ecg"]) - 1))), rel=1e-4)
    uncalibrated = pipe(record, candidate_labels=labels, calibrated=False)
    assert {d["label"]: d["score"] for d in uncalibrated} == raw
    assert all(d["calibrated"] is False for d in uncalibrated)
    with pytest.raises(TypeError, match="calibrated must be True or False"):
        pipe(record, candidate_labels=labels, calibrated="yes")


def test_unknown_word_label_warns_naming_it(tiny_zero_shot_model_dir, caplog, one_thread):
    tokenizer = load_default_tokenizer()
    known = ["sinus tachycardia", "sinus bradycardia", "atrial fibrillation", "normal ecg", "1st degree av block"]
    assert unseen_labels(build_prompts(known), tokenizer) == []
    assert unseen_labels(build_prompts(["brugada pattern", "normal ecg"]), tokenizer) == ["brugada pattern"]
    assert unseen_labels(build_prompts({"x": ["zzqx", "sinus rhythm"]}), tokenizer) == []  # one known word suffices
    pipe = pipeline("zero-shot-ecg-classification", model=str(tiny_zero_shot_model_dir))
    with caplog.at_level(logging.WARNING):
        out = pipe([sample_record_path(3), sample_record_path(2)], candidate_labels=["brugada pattern", *known],
                   batch_size=2)
    warnings = [r.getMessage() for r in caplog.records if "brugada pattern" in r.getMessage()]
    assert len(warnings) == 1 and "its score is unreliable" in warnings[0]
    assert not any(label in r.getMessage() for r in caplog.records for label in known)
    assert len(out) == 2  # still scored


def test_label_with_a_zero_scale_calibration_warns_and_scores_a_constant(tiny_zero_shot_model_dir, tmp_path, caplog,
                                                                         one_thread):
    path = tmp_path / "model"
    shutil.copytree(tiny_zero_shot_model_dir, path)
    config = CGDMERConfig.from_pretrained(path)
    config.zero_shot_calibration = {**CALIBRATION, "per_label": {"conduction disturbance": [0.0, -1.5]}}
    config.save_pretrained(path)
    pipe = pipeline("zero-shot-ecg-classification", model=str(path))
    with caplog.at_level(logging.WARNING):
        out = pipe([sample_record_path(3), sample_record_path(2)],
                   candidate_labels=["conduction disturbance", "normal ecg"], batch_size=2)
    warnings = [r.getMessage() for r in caplog.records if "same for every ECG" in r.getMessage()]
    assert len(warnings) == 1 and "'conduction disturbance'" in warnings[0]
    constant = [{d["label"]: d["score"] for d in o}["conduction disturbance"] for o in out]
    assert constant == pytest.approx([1 / (1 + np.exp(1.5))] * 2)
    assert pipe.model.zero_shot_constant_labels([("normal ecg",), ("conduction disturbance",)]) == [1]


# ------------------------------------------------------------------------------------------------ retrieval
def test_retrieve_returns_the_most_similar_candidates():
    candidates = torch.eye(4)
    queries = torch.tensor([[0.0, 0.9, 0.1, 0.0], [1.0, 0.0, 0.0, 0.5]])
    scores, indices = CGDMERModel.retrieve(queries, candidates * 3, top_k=2)
    assert indices.tolist() == [[1, 2], [0, 3]]
    assert scores[0, 0] == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    assert CGDMERModel.retrieve(queries, candidates, top_k=10)[1].shape == (2, 4)
    with pytest.raises(ValueError, match="same dim"):
        CGDMERModel.retrieve(queries, torch.eye(3))


def test_recall_at_k_toy_case():
    similarity = np.array([[0.9, 0.1, 0.0], [0.8, 0.7, 0.1], [0.1, 0.2, 0.3]])
    recall = E.recall_at_k(similarity, [[0], [1], [0]], ks=(1, 2))
    assert recall == {"R@1": pytest.approx(1 / 3), "R@2": pytest.approx(2 / 3)}
    assert E.recall_at_k(similarity, [[0], [0, 1], [2]], ks=(1,))["R@1"] == 1.0  # any positive counts


@pytest.fixture(scope="module")
def sample_splits(tmp_path_factory):
    data = load_ptbxl(sample_data_dir(), label_set="super", cache_dir=str(tmp_path_factory.mktemp("ds_cache")))
    return split_by_fold(data)


def test_retrieval_rows_on_sample(tiny_zero_shot_model_dir, sample_splits, one_thread):
    model = E.load_model(str(tiny_zero_shot_model_dir))
    rows = E.retrieval_rows(model, load_default_tokenizer(), sample_splits["test"])
    assert [r["encoder"] for r in rows] == ["pretrained", "random_init"]
    for row in rows:
        assert set(row["ecg_to_report"]) == set(row["report_to_ecg"]) == {"R@1", "R@5", "R@10"}
        assert 0 <= row["ecg_to_report"]["R@1"] <= row["ecg_to_report"]["R@10"] <= 1
        assert row["num_reports"] <= row["num_ecgs"] == len(sample_splits["test"])


def test_pipeline_retrieval(tiny_zero_shot_model_dir, one_thread):
    pipe = pipeline("zero-shot-ecg-classification", model=str(tiny_zero_shot_model_dir))
    reports = ["sinus rhythm. normal ecg", "atrial fibrillation", "left bundle branch block"]
    ecgs = [sample_record_path(3), sample_record_path(2)]
    found = pipe.retrieve_reports(ecgs[0], reports, top_k=2)
    assert len(found) == 2 and {"report", "index", "score"} == set(found[0])
    assert found[0]["report"] == reports[found[0]["index"]] and found[0]["score"] >= found[1]["score"]
    ecg_emb, text_emb = pipe.ecg_embeddings(ecgs), pipe.report_embeddings(reports)
    assert found[0]["index"] == int((ecg_emb[0] @ text_emb.T).argmax())
    assert len(pipe.retrieve_reports(ecgs, reports)) == 2 and pipe.retrieve_reports([], reports) == []
    back = pipe.retrieve_ecgs("atrial fibrillation", ecgs, top_k=5)
    assert sorted(d["index"] for d in back) == [0, 1]
    with pytest.raises(ValueError, match="reports is empty"):
        pipe.retrieve_reports(ecgs[0], [])
    with pytest.raises(TypeError, match="top_k"):
        pipe.retrieve_ecgs(["x"], ecgs, top_k=0.5)


# ------------------------------------------------------------------------------------------------ plain names, harness
def test_plain_prompt_set_covers_label_sets():
    statements = read_scp_statements(sample_data_dir() / "scp_statements.csv")
    for label_set in PTBXL_LABEL_SETS:
        prompts = plain_prompt_set(label_set)
        assert list(prompts) == ptbxl_label_names(statements, label_set)
        assert all(len(d) == 1 and d[0] == d[0].lower() and d[0].strip() for d in prompts.values())
    for label_set in CINC_LABEL_SETS:
        assert list(plain_prompt_set(label_set)) == cinc_label_names(label_set)
    rhythm = plain_prompt_set("rhythm")
    assert rhythm["STACH"] == ["sinus tachycardia"] and rhythm["SBRAD"] == ["sinus bradycardia"]
    with pytest.raises(ValueError, match="No plain class names for label set 'nope'"):
        plain_prompt_set("nope")


def test_harness_plain_names_with_calibration(tiny_zero_shot_model_dir, sample_splits, tmp_path, one_thread):
    results = E.evaluate_model(str(tiny_zero_shot_model_dir), sample_splits, output_dir=tmp_path,
                               tasks=("zero-shot",), prompts=PLAIN_NAMES, calibration=True, bootstrap=0)
    rows = results["results"]
    assert [r["encoder"] for r in rows] == ["pretrained", "random_init"]
    for row in rows:
        assert row["prompts"] == "plain"
        found = row["calibration"]
        assert found["fitted_on"] == "validation"
        assert 0 <= found["ece"] <= 1 and 0 <= found["brier_calibrated"] <= 1
        assert sum(found["reliability"]["count"]) == row["num_test"] * len(results["label_names"])
    assert (tmp_path / "reliability" / "zero-shot_pretrained.png").stat().st_size > 0
    assert "ECE (calibrated)" in (tmp_path / "results.md").read_text()


def test_calibrate_zero_shot_and_given_calibration(tiny_zero_shot_model_dir, sample_splits, one_thread):
    model, tokenizer = E.load_model(str(tiny_zero_shot_model_dir)), load_default_tokenizer()
    names = ptbxl_label_names(read_scp_statements(sample_data_dir() / "scp_statements.csv"), "super")
    fit = E.calibrate_zero_shot(model, tokenizer, [(sample_splits["validation"], names, plain_prompt_set("super"))],
                                min_examples=1)
    assert fit["method"] == "platt" and "normal ecg" in fit["fitted_on"]["labels"]
    rows = E.evaluate_model(model, sample_splits, tokenizer=tokenizer, tasks=("zero-shot",), prompts=PLAIN_NAMES,
                            calibration=fit, random_baseline=False, bootstrap=0)["results"]
    assert rows[0]["calibration"]["fitted_on"] == "given"
    with pytest.raises(TypeError, match="calibration must be"):
        E.EvaluationSettings(calibration="yes")
