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


@pytest.fixture
def tiny_eagle_head(tiny, tmp_path, monkeypatch):
    """A random (untrained) EAGLE feature head for the tiny model, saved where the draft source looks for it."""
    import torch

    import core.eagle.head as feature
    from core.eagle.head import FeatureHead, save_feature_head
    from core.heads.modules import HeadInfo

    monkeypatch.setattr(feature, "HEADS", tmp_path)
    torch.manual_seed(0)
    head = FeatureHead(tiny.model)
    save_feature_head(head, HeadInfo("eagle", tiny.key, 1, 1, tiny.config.hidden_size), feature.feature_head_path(tiny.key))
    return head


@pytest.fixture
def tiny_vocab(tiny, tmp_path, monkeypatch):
    """A reduced vocabulary of 300 tokens for the tiny model."""
    import json

    import core.heads.vocab as vocab_mod

    monkeypatch.setattr(vocab_mod, "VOCAB", tmp_path)
    ids = list(range(0, 600, 2))
    vocab_mod.vocab_path(tiny.key).write_text(json.dumps({"ids": ids, "coverage": 0.9}))
    return ids
