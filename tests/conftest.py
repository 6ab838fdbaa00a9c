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
