"""Hub sharing: model card, folder validation, push, and loading back from a loopback Hub (end to end).

The end-to-end tests run a loopback Hub (`tests/hub_server.py`) in this process and drive the real
`huggingface_hub` client against it from subprocesses, because `HF_ENDPOINT` must be set before
`huggingface_hub` is imported (conftest has imported it already, offline):
  1. push (package installed): `cgdmer push`, `push_model_dir`, `model.push_to_hub` + `processor.push_to_hub`;
  2. download into a fresh cache with `snapshot_download`;
  3. offline load by repo id with the package (no remote code);
  4. offline load by repo id without the package (`trust_remote_code=True`).
Outputs are compared with those of the original objects, computed here.
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import pipeline

from cgdmer_hf import CGDMERConfig, CGDMERFeatureExtractor, CGDMERModel, CGDMERProcessor
from cgdmer_hf.cli import main as cli_main
from cgdmer_hf.hub import (
    code_files,
    load_results,
    make_model_card,
    push_model_dir,
    save_model_dir,
    validate_model_dir,
)
from cgdmer_hf.reports import load_default_tokenizer

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import LoopbackHub  # noqa: E402

REPO = "org/cgdmer-tiny"
LABELS = ["sinus rhythm", "atrial fibrillation", "left bundle branch block"]
RATE = 500
RESULTS = {"results": [
    {"task": "PTB-XL super, linear probe 10 %", "dataset": "PTB-XL", "dataset_config": "super", "value": 0.8125},
    {"task": "zero-shot", "dataset": "CPSC2018", "value": 0.6, "split": "test"},
]}


# ---- building model folders --------------------------------------------------------------------------------
def trained_tiny_model(seed: int) -> CGDMERModel:
    """A tiny CGDMERModel after two SigLIP steps on random ECG-text pairs (weights differ from any init)."""
    torch.manual_seed(seed)
    model = CGDMERModel(CGDMERConfig.from_preset("tiny"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.randint(5, 1000, (4, 12))
    for _ in range(2):
        loss = model(ecg_values=torch.randn(4, 12, 1000), input_ids=ids, return_loss=True).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def save_complete(folder: Path, model: CGDMERModel, **fe_kwargs):
    """What a user shares: model + processor + zero-shot pipeline (`save_model_dir`)."""
    processor = CGDMERProcessor(CGDMERFeatureExtractor(**fe_kwargs), load_default_tokenizer())
    save_model_dir(folder, model, processor)
    pipe = pipeline("zero-shot-ecg-classification", model=model, feature_extractor=processor.feature_extractor,
                    tokenizer=processor.tokenizer)
    return processor, pipe


def outputs(model, processor, pipe, ecg: np.ndarray) -> dict[str, np.ndarray]:
    """What the comparisons look at: preprocessed input, ECG and text embeddings, pipeline scores."""
    enc = processor(ecg=ecg, sampling_rate=RATE, text=LABELS, return_tensors="pt")
    with torch.no_grad():
        ecg_embeds = model.get_ecg_features(enc["ecg_values"], enc["lead_mask"],
                                            enc["ecg_attention_mask"]).pooler_output
        text_embeds = model.get_text_features(enc["input_ids"], enc["attention_mask"]).pooler_output
    scores = {r["label"]: r["score"] for r in pipe(ecg, sampling_rate=RATE, candidate_labels=LABELS)}
    return {"ecg_values": enc["ecg_values"].numpy(), "ecg": ecg_embeds.numpy(), "text": text_embeds.numpy(),
            "scores": np.array([scores[label] for label in LABELS])}


def folder_state(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Two versions of a tiny trained model saved as complete folders, a test ECG, and reference outputs."""
    root = tmp_path_factory.mktemp("hub")
    ecg = np.random.default_rng(0).standard_normal((12, 10 * RATE)).cumsum(axis=1) * 0.01
    np.save(root / "ecg.npy", ecg)
    (root / "results.json").write_text(json.dumps(RESULTS))
    reference = {}
    for version, seed in (("v1", 0), ("v2", 1)):
        model = trained_tiny_model(seed)
        processor, pipe = save_complete(root / version, model)
        reference[version] = outputs(model, processor, pipe, ecg)
    assert not np.allclose(reference["v1"]["ecg"], reference["v2"]["ecg"])
    return root, reference


# ---- model card -------------------------------------------------------------------------------------------
def test_model_card_metadata_and_body(shared):
    root, _ = shared
    card = make_model_card(root / "v1", root / "results.json", repo_id=REPO, revision="abc1234")
    data = ModelCard(str(card)).data.to_dict()  # round trip through the YAML header
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == "feature-extraction"
    assert {"ecg", "electrocardiogram", "biosignal", "multimodal", "medical"} <= set(data["tags"])
    assert data["license"] == "cc-by-4.0" and data["metrics"] == ["roc_auc"]
    results = data["model-index"][0]["results"]
    assert [r["metrics"][0]["value"] for r in results] == [0.8125, 0.6]
    assert results[0]["dataset"] == {"name": "PTB-XL", "type": "ptb-xl", "config": "super", "split": "test"}
    text = card.text
    for expected in (
        "| Sampling rate | 100 Hz", "10 s = 1000 samples per lead",
        "12 leads: I, II, III, aVR, aVL, aVF, V1, V2, V3, V4, V5, V6", "millivolts",
        "Butterworth band-pass 0.5-40 Hz, order 2", "`zscore`", "PTB-XL", "CC BY 4.0", "macro ROC-AUC",
        "| PTB-XL super, linear probe 10 % | PTB-XL (super) | test | roc_auc | 0.8125 |",
        f'AutoModel.from_pretrained("{REPO}", trust_remote_code=True, revision=revision)',
        'revision = "abc1234"', f'pipeline("zero-shot-ecg-classification", model="{REPO}"',
        "Not for clinical use", "never executes code from this repository unless you pass `trust_remote_code=True`",
        "`pipeline_cgdmer.py`", "`processing_cgdmer.py`", "`feature_extraction_cgdmer.py`", "`modeling_cgdmer.py`",
    ):
        assert expected in text, expected
    assert "{{" not in text and "{%" not in text


def test_model_card_follows_the_saved_preprocessing(tmp_path):
    save_complete(tmp_path, trained_tiny_model(0), notch_frequency=50.0, normalization="robust",
                  bandpass_low=None, bandpass_high=35.0)
    text = make_model_card(tmp_path).text
    assert "| Powerline notch | 50 Hz (Q = 30)" in text
    assert "Butterworth low-pass 35 Hz" in text and "0.5-40" not in text
    assert "`robust`: per lead" in text
    assert "No evaluation results were supplied" in text
    assert f'AutoModel.from_pretrained("{tmp_path.name}"' in text and 'revision = "<commit-sha>"' in text


def test_load_results_formats_and_errors(tmp_path):
    rows = load_results([{"task": "t", "dataset": "CPSC 2018", "score": 1}])
    assert rows[0]["value"] == 1.0 and rows[0]["metric"] == "roc_auc" and rows[0]["dataset_type"] == "cpsc-2018"
    assert load_results(None) == []
    with pytest.raises(ValueError, match="result 0 .* needs a finite numeric 'value'"):
        load_results({"results": [{"task": "t", "dataset": "d", "value": "high"}]})
    with pytest.raises(ValueError, match="result 1 needs 'task' and 'dataset'"):
        load_results([{"task": "t", "dataset": "d", "value": 0.5}, {"value": 0.5}])
    with pytest.raises(FileNotFoundError, match="not found"):
        load_results(tmp_path / "missing.json")


def test_load_results_reads_raw_evaluate_output():
    runs = [{"task": "linear-probe", "encoder": encoder, "fraction": 0.1, "seed": seed, "roc_auc": auc}
            for encoder, seed, auc in (("pretrained", 0, 0.8), ("pretrained", 1, 0.9), ("random", 0, 0.6))]
    rows = load_results({"label_set": "super", "data": "ptbxl", "results": runs})
    assert [(r["task"], r["dataset"], r["dataset_config"]) for r in rows] == [
        ("PTB-XL super, linear probe 10 %", "PTB-XL", "super")]
    assert rows[0]["value"] == pytest.approx(0.85)


# ---- folder validation (bad input; no network) -------------------------------------------------------------
def test_validate_complete_folder(shared):
    root, _ = shared
    assert validate_model_dir(root / "v1")["model_type"] == "cgdmer"
    assert code_files(root / "v1") == ["configuration_cgdmer.py", "feature_extraction_cgdmer.py",
                                       "modeling_cgdmer.py", "pipeline_cgdmer.py", "processing_cgdmer.py"]


@pytest.mark.parametrize("damage, error, message", [
    ("no_weights", FileNotFoundError, "the weights file model.safetensors is missing"),
    ("truncated", ValueError, "model.safetensors is unreadable \\(truncated or corrupt\\)"),
    ("pickle", ValueError, "pickle files \\['pytorch_model.bin'\\]"),
    ("no_processor", FileNotFoundError, "the feature extractor .* is missing"),
    ("no_tokenizer", FileNotFoundError, "the tokenizer .* is missing"),
    ("no_code", FileNotFoundError, "processing_cgdmer.py .* is missing"),
    ("mismatch", ValueError, "sampling_rate=250 does not match the model's ecg_config.sampling_rate=100"),
    ("not_cgdmer", ValueError, "not a CG-DMER config"),
])
def test_validate_rejects_incomplete_folders(shared, tmp_path, damage, error, message):
    import shutil

    root, _ = shared
    folder = tmp_path / "model"
    shutil.copytree(root / "v1", folder)
    weights = folder / "model.safetensors"
    if damage == "no_weights":
        weights.unlink()
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "pickle":
        (folder / "pytorch_model.bin").write_bytes(b"\x80\x04")
    elif damage == "no_processor":
        (folder / "preprocessor_config.json").unlink()
        (folder / "processor_config.json").unlink()
    elif damage == "no_tokenizer":
        (folder / "tokenizer.json").unlink()
    elif damage == "no_code":
        (folder / "processing_cgdmer.py").unlink()
    elif damage in ("mismatch", "not_cgdmer"):
        name = "preprocessor_config.json" if damage == "mismatch" else "config.json"
        config = json.loads((folder / name).read_text())
        config.update({"sampling_rate": 250} if damage == "mismatch" else {"model_type": "bert"})
        (folder / name).write_text(json.dumps(config))
    before = folder_state(folder)
    with pytest.raises(error, match=message):
        push_model_dir(folder, REPO)  # fails before any network call
    assert folder_state(folder) == before
    assert cli_main(["push", str(folder), "--repo-id", REPO]) == 2


def test_push_rejects_bad_repo_ids_and_missing_folders(shared, tmp_path, capsys):
    root, _ = shared
    before = folder_state(root / "v1")
    for repo_id in ("org/na me", "a/b/c", "org/x--y", ""):
        with pytest.raises(ValueError, match="Invalid repo id"):
            push_model_dir(root / "v1", repo_id)
    with pytest.raises(FileNotFoundError, match="Model folder not found"):
        push_model_dir(tmp_path / "nothing", REPO)
    assert cli_main(["push", str(root / "v1"), "--repo-id", "bad repo"]) == 2
    assert "cgdmer push: error: Invalid repo id 'bad repo'" in capsys.readouterr().err
    assert folder_state(root / "v1") == before


def test_cli_dry_run_prints_the_card(shared, capsys):
    root, _ = shared
    assert cli_main(["push", str(root / "v1"), "--repo-id", REPO, "--dry-run", "--license", "apache-2.0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("---\n") and "license: apache-2.0" in out and f'"{REPO}"' in out


# ---- end to end against the loopback Hub ------------------------------------------------------------------
PRELUDE = """
import json, os, sys
from pathlib import Path
import numpy as np
ROOT = Path(sys.argv[1])
OUT = {}
"""

PUSH = """
import contextlib, io
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError
from transformers import AutoModel, AutoProcessor, pipeline
from cgdmer_hf.cli import main
from cgdmer_hf.hub import push_model_dir

api = HfApi()
OUT["cli_rc"] = main(["push", str(ROOT / "v1"), "--repo-id", "org/cgdmer-tiny",
                      "--results", str(ROOT / "results.json")])
OUT["sha1"] = api.model_info("org/cgdmer-tiny").sha
OUT["sha2"] = push_model_dir(ROOT / "v2", "org/cgdmer-tiny", commit_message="v2").oid
OUT["files"] = api.list_repo_files("org/cgdmer-tiny")
OUT["commits"] = [c.commit_id for c in api.list_repo_commits("org/cgdmer-tiny")]
OUT["private_rc"] = main(["push", str(ROOT / "v1"), "--repo-id", "org/private-tiny", "--private", "--revision", "dev"])

model = AutoModel.from_pretrained(ROOT / "v1")
processor = AutoProcessor.from_pretrained(ROOT / "v1")
model.push_to_hub("org/api-tiny")
processor.push_to_hub("org/api-tiny")
pipeline("zero-shot-ecg-classification", model=model, feature_extractor=processor.feature_extractor,
         tokenizer=processor.tokenizer).push_to_hub("org/api-tiny")

stderr = io.StringIO()
with contextlib.redirect_stderr(stderr):  # the server answers 500 to this commit
    OUT["broken_rc"] = main(["push", str(ROOT / "v1"), "--repo-id", "org/broken"])
OUT["broken_err"] = stderr.getvalue()
try:
    push_model_dir(ROOT / "v1", "org/broken")  # the server answers 500 again
except HfHubHTTPError as err:
    OUT["broken_exc"] = str(err)

# Damaged repos, uploaded bypassing the validation of push_model_dir.
ops = lambda skip: [CommitOperationAdd(p.name, str(p)) for p in sorted((ROOT / "v1").iterdir()) if p.name != skip]
api.create_repo("org/no-weights")
api.create_commit("org/no-weights", ops("model.safetensors"), commit_message="no weights")
weights = (ROOT / "v1" / "model.safetensors").read_bytes()
api.create_repo("org/truncated")
api.create_commit("org/truncated", ops("model.safetensors") + [
    CommitOperationAdd("model.safetensors", weights[: len(weights) // 2])], commit_message="truncated weights")
"""

DOWNLOAD = """
from huggingface_hub import snapshot_download
OUT["snapshot"] = snapshot_download("org/cgdmer-tiny")
OUT["snapshot_v1"] = snapshot_download("org/cgdmer-tiny", revision=json.loads((ROOT / "push.json").read_text())["sha1"])
for repo in ("org/api-tiny", "org/no-weights", "org/truncated"):
    snapshot_download(repo)
"""

LOAD = """
import torch
from transformers import AutoModel, AutoProcessor, pipeline
try:
    import cgdmer_hf  # registers the classes; hidden (None in sys.modules) in the "without package" run
    PACKAGE = True
except ImportError:
    PACKAGE = False
LABELS = %(labels)r
ecg = np.load(ROOT / "ecg.npy")
sha1 = json.loads((ROOT / "push.json").read_text())["sha1"]
kw = {} if PACKAGE else {"trust_remote_code": True}
# With the package, its registered pipeline serves the task despite `custom_pipelines` in the config.
pipe_kw = kw

def outputs(source, **extra):
    model = AutoModel.from_pretrained(source, **kw, **extra)
    processor = AutoProcessor.from_pretrained(source, **kw, **extra)
    pipe = pipeline("zero-shot-ecg-classification", model=source, **pipe_kw, **extra)
    OUT.setdefault("modules", []).extend(type(o).__module__ for o in (model, processor, pipe))
    enc = processor(ecg=ecg, sampling_rate=%(rate)d, text=LABELS, return_tensors="pt")
    with torch.no_grad():
        ecg_embeds = model.get_ecg_features(enc["ecg_values"], enc["lead_mask"],
                                            enc["ecg_attention_mask"]).pooler_output
        text_embeds = model.get_text_features(enc["input_ids"], enc["attention_mask"]).pooler_output
    scores = {r["label"]: r["score"] for r in pipe(ecg, sampling_rate=%(rate)d, candidate_labels=LABELS)}
    return {"ecg_values": enc["ecg_values"].numpy(), "ecg": ecg_embeds.numpy(), "text": text_embeds.numpy(),
            "scores": np.array([scores[label] for label in LABELS])}

def error_of(fn):
    try:
        fn()
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return None

if not PACKAGE:
    OUT["no_trust"] = error_of(lambda: AutoModel.from_pretrained("org/cgdmer-tiny"))
    OUT["code_imported_without_trust"] = [m for m in sys.modules
                                          if m.startswith("transformers_modules") or m.endswith("_cgdmer")]
snapshot = json.loads((ROOT / "download.json").read_text())["snapshot"]
results = {"main": outputs("org/cgdmer-tiny"), "old": outputs("org/cgdmer-tiny", revision=sha1),
           "api": outputs("org/api-tiny"), "local": outputs(snapshot)}
np.savez(ROOT / f"load_{PACKAGE}.npz", **{f"{k}/{name}": v for k, out in results.items() for name, v in out.items()})
OUT["no_weights"] = error_of(lambda: AutoModel.from_pretrained("org/no-weights", **kw))
OUT["truncated"] = error_of(lambda: AutoModel.from_pretrained("org/truncated", **kw))
""" % {"labels": LABELS, "rate": RATE}


def run_script(name: str, body: str, root: Path, env: dict[str, str], hide_package: bool = False) -> dict:
    header = "import sys; sys.modules['cgdmer_hf'] = None\n" if hide_package else ""
    code = header + textwrap.dedent(PRELUDE) + textwrap.dedent(body) + (
        f"\n(ROOT / {name + '.json'!r}).write_text(json.dumps(OUT))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(root)], env=env, cwd=root, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode:
        raise AssertionError(f"{name} script failed:\n{proc.stderr[-4000:]}")
    return json.loads((root / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def e2e(shared):
    """Run push -> download -> offline loads (with and without the package) once, against a loopback Hub."""
    root, _ = shared
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    base.update(HF_TOKEN="dummy-token", HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_TELEMETRY="1",
                TOKENIZERS_PARALLELISM="false", PYTHONWARNINGS="ignore")
    before = folder_state(root / "v1")
    with LoopbackHub() as hub:
        online = dict(base, HF_ENDPOINT=hub.endpoint, HF_HUB_OFFLINE="0", HF_HOME=str(root / "home-push"))
        hub.fail_next("commit", 500, repo="org/broken")
        hub.fail_next("commit", 500, repo="org/broken")
        push = run_script("push", PUSH, root, online)
        fresh = dict(online, HF_HOME=str(root / "home-fresh"))  # a fresh cache
        download = run_script("download", DOWNLOAD, root, fresh)
        snapshot = {"main": hub.files(REPO), "v1": hub.files(REPO, push["sha1"]),
                    "dev": hub.files("org/private-tiny", "dev"), "api": hub.files("org/api-tiny")}
        repos = {name: (repo.private, dict(repo.branches), len(repo.commits)) for name, repo in hub.repos.items()}
        requests = list(hub.requests)
    offline = dict(fresh, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")  # server gone: cache only
    with_package = run_script("load", LOAD, root, offline)
    without_package = run_script("load", LOAD, root, offline, hide_package=True)
    return dict(root=root, push=push, download=download, files=snapshot, repos=repos, requests=requests,
                with_package=with_package, without_package=without_package, before=before)


def test_push_uploads_a_complete_repo(e2e):
    push, files = e2e["push"], e2e["files"]
    assert push["cli_rc"] == 0
    expected = {"README.md", "config.json", "model.safetensors", "configuration_cgdmer.py", "modeling_cgdmer.py",
                "feature_extraction_cgdmer.py", "processing_cgdmer.py", "pipeline_cgdmer.py",
                "preprocessor_config.json", "processor_config.json", "tokenizer.json", "tokenizer_config.json"}
    assert expected <= set(push["files"]) and not any(f.endswith((".bin", ".pt", ".pkl")) for f in push["files"])
    config = json.loads(files["main"]["config.json"])
    assert config["auto_map"]["AutoModel"] == "modeling_cgdmer.CGDMERModel"
    assert config["custom_pipelines"]["zero-shot-ecg-classification"]["impl"].startswith("pipeline_cgdmer.")
    assert files["v1"]["model.safetensors"] == (e2e["root"] / "v1" / "model.safetensors").read_bytes()
    card = ModelCard(files["v1"]["README.md"].decode())
    assert card.data.library_name == "transformers" and card.data.eval_results[0].metric_value == 0.8125
    assert folder_state(e2e["root"] / "v1") == e2e["before"]  # the local folder is untouched (no README written)
    assert not (e2e["root"] / "v1" / "README.md").exists()


def test_second_push_creates_a_new_revision(e2e):
    push, files = e2e["push"], e2e["files"]
    assert push["sha1"] != push["sha2"] and push["commits"][:2] == [push["sha2"], push["sha1"]]
    assert files["main"]["model.safetensors"] != files["v1"]["model.safetensors"]
    assert files["main"]["model.safetensors"] == (e2e["root"] / "v2" / "model.safetensors").read_bytes()


def test_private_push_to_a_branch(e2e):
    private, branches, _ = e2e["repos"]["org/private-tiny"]
    assert e2e["push"]["private_rc"] == 0 and private
    assert "model.safetensors" in e2e["files"]["dev"]
    assert branches["dev"] != branches["main"]  # main keeps only the initial commit


def test_transformers_push_to_hub_of_model_processor_and_pipeline(e2e):
    paths = {p for _, p in e2e["requests"] if p.startswith("/api/models/org/api-tiny/commit")}
    assert paths == {"/api/models/org/api-tiny/commit/main"}
    assert e2e["repos"]["org/api-tiny"][2] == 4  # initial commit + model + processor + pipeline
    files = e2e["files"]["api"]
    assert {"model.safetensors", "processor_config.json", "tokenizer.json", "pipeline_cgdmer.py",
            "processing_cgdmer.py", "README.md"} <= set(files)


def test_server_error_during_upload(e2e):
    push = e2e["push"]
    assert push["broken_rc"] == 1
    assert push["broken_err"].count("\n") == 1 and "500" in push["broken_err"]
    assert "nothing was committed and the local folder is unchanged" in push["broken_exc"]
    assert e2e["repos"]["org/broken"][2] == 1  # only the repo's initial commit
    assert folder_state(e2e["root"] / "v1") == e2e["before"]


@pytest.mark.parametrize("loader", ["with_package", "without_package"])
def test_offline_loads_match_the_original(e2e, shared, loader):
    """Cache-only loads by repo id (main and the pinned old revision), of the push_to_hub repo and of the
    local snapshot folder, give the original outputs; with the package no remote code is imported."""
    root, reference = shared
    result = e2e[loader]
    loaded = np.load(root / f"load_{loader == 'with_package'}.npz")
    for key, version in (("main", "v2"), ("old", "v1"), ("api", "v1"), ("local", "v2")):
        for name in ("ecg_values", "ecg", "text", "scores"):
            np.testing.assert_allclose(loaded[f"{key}/{name}"], reference[version][name], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{loader} {key} {name}")
    modules = set(result["modules"])
    if loader == "with_package":
        assert modules == {"cgdmer_hf.modeling_cgdmer", "cgdmer_hf.processing_cgdmer", "cgdmer_hf.pipeline_cgdmer"}
    else:
        assert all(m.startswith("transformers_modules.") for m in modules)
        assert "trust_remote_code" in result["no_trust"]
        assert result["code_imported_without_trust"] == []


@pytest.mark.parametrize("loader", ["with_package", "without_package"])
def test_missing_weights_error_names_the_file(e2e, loader):
    assert "model.safetensors" in e2e[loader]["no_weights"]


@pytest.mark.parametrize("loader", ["with_package", "without_package"])
def test_truncated_weights_error_names_the_file(e2e, loader):
    error = e2e[loader]["truncated"]
    assert error is not None and "model.safetensors" in error
