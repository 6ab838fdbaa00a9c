"""Test setup: offline Hugging Face stack with a throw-away cache, set before transformers is imported."""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="cgdmer-test-hf-home-")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CGDMER_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full data in ../shared/data; tests that need it skip with a message when it is absent."""
    if not (SHARED_DATA / "ptbxl_index.csv").exists():
        pytest.skip(f"../shared/data not found at {SHARED_DATA} (set CGDMER_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models train as fast on one thread, and one thread does not stall when other processes share the cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_zero_shot_model_dir(tmp_path_factory) -> Path:
    """A saved tiny `CGDMERModel` with its processor (default tokenizer), for pipeline tests."""
    import torch

    from cgdmer_hf import CGDMERConfig, CGDMERModel
    from cgdmer_hf.feature_extraction_cgdmer import CGDMERFeatureExtractor
    from cgdmer_hf.processing_cgdmer import CGDMERProcessor
    from cgdmer_hf.reports import load_default_tokenizer

    tokenizer = load_default_tokenizer()
    torch.manual_seed(0)
    config = CGDMERConfig.from_preset("tiny", text_config=dict(vocab_size=len(tokenizer)))
    # A bias of 0 keeps scores away from 0 so that differences are visible in float32.
    config.logit_bias_init_value = 0.0
    path = tmp_path_factory.mktemp("zs_model")
    CGDMERModel(config).save_pretrained(path)
    CGDMERProcessor(CGDMERFeatureExtractor(), tokenizer).save_pretrained(path)
    return path
