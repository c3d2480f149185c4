"""Shared fixtures. Nothing here downloads: the hub is switched off for the whole run."""

import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from core.config import ModelSpec  # noqa: E402
from core.models import load_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny():
    return load_model(ModelSpec("tiny-random-llama", device="cpu", dtype="float32"))


@pytest.fixture(scope="session")
def embedded():
    return load_model(ModelSpec("embedded", device="cpu", dtype="float32"))
