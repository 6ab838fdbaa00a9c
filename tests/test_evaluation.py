"""Evaluation harness: the local ROC-AUC metric against hand-computed values, linear probes on real records,
model selection that never reads the test split, result files, prompt sets, and the evaluate / embed commands."""

import inspect
import json

import numpy as np
import pytest
import torch
from datasets import DatasetDict

import cgdmer_hf  # noqa: F401
from cgdmer_hf import CGDMERConfig, CGDMERModel, cli, load_prompt_set
from cgdmer_hf import evaluation as E
from cgdmer_hf.data import cinc_label_names, label_names, load_ptbxl, split_by_fold
from cgdmer_hf.data.labels import plain_class_names, ptbxl_label_names, read_scp_statements
from cgdmer_hf.feature_extraction_cgdmer import CGDMERFeatureExtractor
from cgdmer_hf.processing_cgdmer import CGDMERProcessor
from cgdmer_hf.prompts import PROMPT_SETS
from cgdmer_hf.reports import clean_report, load_default_tokenizer
from cgdmer_hf.samples import sample_data_dir

FAST = dict(fractions=(0.5, 1.0), seeds=(0,), bootstrap=0, plots=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tokenizer = load_default_tokenizer()
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("eval_model")
    CGDMERModel(CGDMERConfig.from_preset("tiny", text_config=dict(vocab_size=len(tokenizer)))).save_pretrained(path)
    CGDMERProcessor(CGDMERFeatureExtractor(), tokenizer).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The bundled PTB-XL sample (50 records), PTB-XL super label set."""
    return load_ptbxl(sample_data_dir(), label_set="super", cache_dir=str(tmp_path_factory.mktemp("ds_cache")))


@pytest.fixture(scope="module")
def splits(sample):
    return split_by_fold(sample)


# ------------------------------------------------------------------------------------------------ metric
def test_metric_module_equals_hand_computed_auc():
    import evaluate

    metric = evaluate.load(str(E.METRIC_PATH))
    scores = [[0.9, 0.1, 0.3], [0.4, 0.8, 0.2], [0.4, 0.3, 0.9], [0.2, 0.7, 0.1], [0.6, 0.2, 0.5]]
    labels = [[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 0], [1, 0, 0]]
    out = metric.compute(predictions=scores, references=labels, label_names=["A", "B", "C"])
    # A: positives 0.9, 0.4, 0.6 vs negatives 0.4, 0.2 -> pairs won 2 + (0.5 + 1) + 2 = 5.5 of 6.
    # B: positives 0.8, 0.7 vs negatives 0.1, 0.3, 0.2 -> 6 of 6. C has no positive: excluded.
    assert out["per_class"] == {"A": pytest.approx(5.5 / 6), "B": pytest.approx(1.0), "C": None}
    assert out["excluded_classes"] == ["C"] and out["num_classes_averaged"] == 2
    assert out["roc_auc"] == pytest.approx((5.5 / 6 + 1.0) / 2)
    binary = evaluate.load(str(E.METRIC_PATH), "binary")
    assert binary.compute(predictions=[0.1, 0.4, 0.35, 0.8], references=[0, 0, 1, 1])["roc_auc"] == 0.75


def test_roc_curve_and_bootstrap():
    _, _, roc_curve = E.metrics._auc_functions()
    fpr, tpr = roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.75)
    rng = np.random.default_rng(0)
    labels = (rng.random((80, 3)) < 0.4).astype(float)
    scores = labels + rng.normal(0, 0.8, labels.shape)
    point = E.macro_roc_auc(scores, labels)
    low, high = E.bootstrap_ci(scores, labels, 300, seed=1)
    assert low < point < high and high - low < 0.3
    assert E.bootstrap_ci(scores, labels, 300, seed=1) == (low, high)
    with pytest.raises(ValueError, match="must both be"):
        E.macro_roc_auc(scores[:, :2], labels)


# ------------------------------------------------------------------------------------------------ probes
@pytest.mark.parametrize("other, threshold", [("MI", 0.6), ("CD", None)])
def test_linear_probe_beats_chance_on_real_records(sample, other, threshold):
    """NORM vs MI / NORM vs CD on the bundled records, patient-disjoint cross-validation over the PTB-XL folds
    (train on the other folds, fixed weight decay), features of a seeded random tiny encoder."""
    names = label_names(sample)
    labels, folds = np.asarray(sample["labels"]), np.asarray(sample["fold"])
    keep = labels[:, names.index("NORM")] + labels[:, names.index(other)] == 1
    target = labels[:, [names.index(other)]]
    torch.manual_seed(0)
    features = E.compute_embeddings(CGDMERModel(CGDMERConfig.from_preset("tiny")), sample)
    predictions = np.zeros(len(sample))
    for held_out in [(1, 2, 3), (4, 5, 6), (7, 8), (9,), (10,)]:
        test = keep & np.isin(folds, held_out)
        train = keep & ~np.isin(folds, held_out)
        probe = E.fit_linear_probe(features[train], target[train], features[train], target[train],
                                   weight_decays=(0.1,))
        predictions[test] = probe.predict_proba(features[test])[:, 0]
    auc = E.macro_roc_auc(predictions[keep, None], target[keep])
    n_pos = int(target[keep].sum())
    n_neg = int(keep.sum()) - n_pos
    # One-sided 5 % level of the Mann-Whitney AUC under "no signal" (normal approximation).
    chance_bound = 0.5 + 1.645 * np.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg))
    assert auc > (threshold if threshold is not None else chance_bound), (other, auc, chance_bound)


def test_fit_linear_probe_selects_on_validation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8))
    y = (x[:, :2] + rng.normal(0, 0.5, (120, 2)) > 0).astype(float)
    probe = E.fit_linear_probe(x[:80], y[:80], x[80:], y[80:], weight_decays=(1e-4, 1e-2, 1.0, 100.0))
    assert probe.weight_decay in (1e-4, 1e-2, 1.0)
    assert set(probe.validation_curve) == {"0.0001", "0.01", "1", "100"}
    assert probe.validation_roc_auc == max(probe.validation_curve.values())
    assert E.macro_roc_auc(probe.predict_proba(x[80:]), y[80:]) == pytest.approx(probe.validation_roc_auc)
    assert probe.validation_roc_auc > 0.9


def test_selection_functions_receive_no_test_data():
    for function in (E.fit_linear_probe, E.finetune_classifier, E.tune_prompts):
        assert not [p for p in inspect.signature(function).parameters if "test" in p], function.__name__


def test_model_selection_never_reads_the_test_split(model_dir, splits):
    scrambled = DatasetDict(dict(splits))
    scrambled["test"] = splits["test"].map(lambda row: {"labels": [1.0 - v for v in row["labels"]]})
    kwargs = dict(tasks=("linear-probe",), **FAST)
    honest = E.evaluate_model(str(model_dir), splits, **kwargs)["results"]
    other = E.evaluate_model(str(model_dir), scrambled, **kwargs)["results"]
    assert len(honest) == len(other) == 4  # 2 encoders x 2 fractions
    for a, b in zip(honest, other):
        assert (a["encoder"], a["fraction"]) == (b["encoder"], b["fraction"])
        assert a["selection"] == b["selection"]  # weight decay and validation AUCs unchanged
        assert a["roc_auc"] == pytest.approx(1.0 - b["roc_auc"])  # the test labels did change


# ------------------------------------------------------------------------------------------------ harness
def test_evaluate_model_writes_results(model_dir, splits, tmp_path):
    data = DatasetDict(dict(splits))
    hyp = label_names(splits["test"]).index("HYP")
    data["test"] = splits["test"].filter(lambda row: row["labels"][hyp] == 0)  # no HYP positive left
    results = E.evaluate_model(str(model_dir), data, output_dir=tmp_path, tasks=("zero-shot", "linear-probe"),
                               fractions=(0.5, 1.0), seeds=(0, 1), bootstrap=50)
    rows = results["results"]
    assert [(r["task"], r["encoder"]) for r in rows if r["task"] == "zero-shot"] == [
        ("zero-shot", "pretrained"), ("zero-shot", "random_init")]
    probe_rows = [r for r in rows if r["task"] == "linear-probe"]
    assert len(probe_rows) == 2 * 2 * 2 and {r["num_train"] for r in probe_rows} == {15, 30}
    for row in rows:
        assert row["excluded_classes"] == ["HYP"] and row["per_class"]["HYP"] is None
        defined = [v for k, v in row["per_class"].items() if v is not None]
        assert row["roc_auc"] == pytest.approx(np.mean(defined)) and len(defined) == 4
        assert row["ci95"][0] <= row["roc_auc"] <= row["ci95"][1]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["label_names"] == ["CD", "HYP", "MI", "NORM", "STTC"] and saved["splits"]["train"] == 30
    markdown = (tmp_path / "results.md").read_text()
    assert "## Zero-shot" in markdown and "## Linear probe" in markdown
    assert markdown.count("| random_init |") == 2 and "HYP" in markdown.split("left out of the macro average")[1]
    pngs = sorted(p.name for p in (tmp_path / "roc").glob("*.png"))
    assert "zero-shot_pretrained.png" in pngs and "linear-probe_random_init_50pct_seed0.png" in pngs
    assert not any("seed1" in name for name in pngs)
    from cgdmer_hf.hub import load_results

    card = load_results(tmp_path / "card_results.json")
    assert {r["task"] for r in card} == {"PTB-XL super, zero-shot", "PTB-XL super, linear probe 50 %",
                                         "PTB-XL super, linear probe 100 %"}


def test_tuned_prompts_are_chosen_on_validation(model_dir, splits):
    results = E.evaluate_model(str(model_dir), splits, tasks=("zero-shot",), random_baseline=False,
                               tune_prompts=True, bootstrap=0, plots=False)
    row = results["results"][0]
    prompts = load_prompt_set("ptbxl_super")
    chosen = row["selection"]["prompts_per_class"]
    assert set(chosen) == set(prompts)
    assert all(c == "ensemble" or c in [p.lower() for p in prompts[k]] for k, c in chosen.items())


def test_finetune_with_the_trainer(model_dir, splits):
    settings = E.EvaluationSettings(tasks=("finetune",), fractions=(1.0,), seeds=(0,), random_baseline=False,
                                    bootstrap=0, plots=False,
                                    finetune=E.FinetuneSettings(epochs=2, learning_rate=1e-3, batch_size=16))
    rows = E.evaluate_model(str(model_dir), splits, settings=settings)["results"]
    assert len(rows) == 1 and rows[0]["task"] == "finetune" and rows[0]["num_train"] == 30
    assert 0.0 <= rows[0]["selection"]["validation_roc_auc"] <= 1.0
    assert 0.0 <= rows[0]["roc_auc"] <= 1.0


def test_bad_settings_and_data(model_dir, sample):
    with pytest.raises(ValueError, match="Unknown task"):
        E.EvaluationSettings(tasks=("zero-shot", "knn"))
    with pytest.raises(ValueError, match="fractions must be in"):
        E.EvaluationSettings(fractions=(0.0,))
    with pytest.raises(ValueError, match="lacks the column"):
        E.evaluate_model(str(model_dir), sample.remove_columns("labels"))
    with pytest.raises(ValueError, match="No prompt set for label set 'diagnostic'"):
        E.evaluate_model(str(model_dir), load_ptbxl(sample_data_dir(), label_set="diagnostic"),
                         tasks=("zero-shot",), bootstrap=0)


# ------------------------------------------------------------------------------------------------ prompts
@pytest.mark.parametrize("name", PROMPT_SETS)
def test_prompt_sets_cover_their_label_sets(name):
    prompts = load_prompt_set(name)
    if name.startswith("ptbxl_"):
        statements = read_scp_statements(sample_data_dir() / "scp_statements.csv")
        expected = ptbxl_label_names(statements, name.split("_", 1)[1])
    else:
        expected = cinc_label_names(name)
    assert sorted(prompts) == sorted(expected)
    plain = plain_class_names(name.split("_", 1)[1] if name.startswith("ptbxl_") else name,
                              statements if name.startswith("ptbxl_") else None)
    for label, descriptions in prompts.items():
        # English first: the plain class name leads, and every description is already in the reports' English
        # text space (cleaning and translating it changes nothing).
        assert descriptions[0] == clean_report(plain[label]), label
        assert len(set(descriptions)) == len(descriptions), label
        assert all(clean_report(d) == d for d in descriptions), label


def test_prompt_set_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown prompt set 'ptbxl_nope'"):
        load_prompt_set("ptbxl_nope")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"NORM": ["normal ecg"], "MI": []}))
    with pytest.raises(ValueError, match="label 'MI' has no description"):
        load_prompt_set(str(bad))
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_prompt_set(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match=r"no descriptions for the class\(es\) \['HYP'\]"):
        E.align_prompts({"NORM": ["x"]}, ["NORM", "HYP"])


# ------------------------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def prepared_dir(sample, tmp_path_factory):
    path = tmp_path_factory.mktemp("prepared")
    sample.save_to_disk(str(path))
    return path


def test_cli_evaluate(model_dir, prepared_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    code = cli.main(["evaluate", str(model_dir), "--data", str(prepared_dir), "--output", str(out),
                     "--fractions", "1.0", "--seeds", "0", "--bootstrap", "0", "--no-random-baseline"])
    assert code == 0
    assert {"results.json", "results.md", "card_results.json", "roc"} <= {p.name for p in out.iterdir()}
    assert "## Linear probe" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert [(r["task"], r["encoder"]) for r in results["results"]] == [("zero-shot", "pretrained"),
                                                                       ("linear-probe", "pretrained")]


def test_cli_evaluate_plain_names_with_calibration(model_dir, prepared_dir, tmp_path):
    out = tmp_path / "eval"
    assert cli.main(["evaluate", str(model_dir), "--data", str(prepared_dir), "--output", str(out), "--tasks",
                     "zero-shot", "--prompts", "plain", "--calibration", "--bootstrap", "0",
                     "--no-random-baseline"]) == 0
    row = json.loads((out / "results.json").read_text())["results"][0]
    assert row["prompts"] == "plain" and {"ece", "brier"} <= set(row["calibration"])
    assert (out / "reliability" / "zero-shot_pretrained.png").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--tasks", "zero-shot,knn"], "Unknown task(s) ['knn']"),
        (["--fractions", "0,1"], "fractions must be in (0, 1]"),
        (["--prompts", "nope"], "Unknown prompt set 'nope'"),
    ],
)
def test_cli_evaluate_errors(model_dir, prepared_dir, tmp_path, capsys, extra, message):
    code = cli.main(["evaluate", str(model_dir), "--data", str(prepared_dir), "--output", str(tmp_path / "o"),
                     "--bootstrap", "0", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_cli_evaluate_refuses_missing_inputs(model_dir, prepared_dir, tmp_path, capsys):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    for argv, message in [
        ([str(tmp_path / "nomodel"), "--data", str(prepared_dir), "--output", str(tmp_path / "o")],
         "Model folder not found"),
        ([str(model_dir), "--data", str(tmp_path / "nodata"), "--output", str(tmp_path / "o")], "nodata"),
        ([str(model_dir), "--data", str(prepared_dir), "--output", str(tmp_path / "busy")], "is not empty"),
    ]:
        assert cli.main(["evaluate", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


def test_cli_embed(model_dir, prepared_dir, sample, tmp_path, capsys):
    expected = E.compute_embeddings(E.load_model(str(model_dir)), split_by_fold(sample)["test"])
    npy = tmp_path / "emb.npy"
    assert cli.main(["embed", str(model_dir), "--data", str(prepared_dir), "--output", str(npy),
                     "--split", "test"]) == 0
    np.testing.assert_allclose(np.load(npy), expected, rtol=1e-5, atol=1e-6)
    ids = (tmp_path / "emb.record_ids.txt").read_text().split()
    assert ids == list(split_by_fold(sample)["test"]["record_id"])
    parquet = tmp_path / "emb.parquet"
    assert cli.main(["embed", str(model_dir), "--data", str(prepared_dir), "--output", str(parquet),
                     "--kind", "shared", "--normalize"]) == 0
    from datasets import Dataset

    table = Dataset.from_parquet(str(parquet))
    assert table.column_names == ["record_id", "embedding", "fold", "labels"] and len(table) == 50
    norms = np.linalg.norm(np.asarray(table["embedding"]), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    capsys.readouterr()
    assert cli.main(["embed", str(model_dir), "--data", str(prepared_dir), "--output", str(tmp_path / "e.csv")]) == 2
    assert "must end in .npy or .parquet" in capsys.readouterr().err
    assert cli.main(["embed", str(model_dir), "--data", str(prepared_dir), "--output", str(npy)]) == 2
    assert "exists" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ feature cache
def test_a_shared_feature_cache_embeds_each_split_once_per_model(model_dir, splits, monkeypatch):
    """Label sets of the same records (PTB-XL `super` and `rhythm` here), tasks and prompt modes reuse one
    computation per split and kind; the results equal those of separate calls."""
    from cgdmer_hf.evaluation import embeddings

    computed, compute = [], embeddings.compute_embeddings
    monkeypatch.setattr(embeddings, "compute_embeddings",
                        lambda model, dataset, kind, *args, **kwargs: computed.append((len(dataset), kind))
                        or compute(model, dataset, kind, *args, **kwargs))
    rhythm = split_by_fold(load_ptbxl(sample_data_dir(), label_set="rhythm"))
    kwargs = dict(tasks=("zero-shot",), random_baseline=False, bootstrap=0, plots=False)
    alone = [E.evaluate_model(str(model_dir), data, tune_prompts=tune, **kwargs)["results"]
             for data in (splits, rhythm) for tune in (False, True)]
    computed.clear()
    cache = E.FeatureCache()
    shared = [E.evaluate_model(str(model_dir), data, tune_prompts=tune, features=cache, **kwargs)["results"]
              for data in (splits, rhythm) for tune in (False, True)]
    shared.append(E.evaluate_model(str(model_dir), splits, features=cache, **{**kwargs, **FAST,
                                                                             "tasks": ("linear-probe",)})["results"])
    assert shared[:4] == alone
    sizes = {name: len(split) for name, split in splits.items()}
    assert sorted(computed) == sorted([(sizes["test"], "shared"), (sizes["validation"], "shared"),
                                       (sizes["train"], "representation"), (sizes["validation"], "representation"),
                                       (sizes["test"], "representation")])
    assert embeddings.ecg_fingerprint(splits["test"]) == embeddings.ecg_fingerprint(rhythm["test"])
    assert embeddings.ecg_fingerprint(splits["test"]) != embeddings.ecg_fingerprint(splits["validation"])
