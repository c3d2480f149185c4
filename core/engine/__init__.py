"""Decoding engines over one loaded model: prefill, forward with tree masks and layer
ranges, a KV cache with rollback and compaction. ``make_engine`` picks the compact
llama engine when the architecture allows it, else the transformers fallback.
"""

from __future__ import annotations

from core.engine.base import EngineOutput, EngineUnsupported
from core.engine.hf import HFEngine
from core.engine.llama import LlamaEngine, supports
from core.models import LoadedModel

__all__ = ["EngineOutput", "EngineUnsupported", "HFEngine", "LlamaEngine", "make_engine", "engine_kind"]


def engine_kind(model: LoadedModel) -> str:
    return "llama" if supports(model.model) else "transformers fallback"


def make_engine(model: LoadedModel, batch: int = 1, max_len: int | None = None) -> LlamaEngine | HFEngine:
    """A fresh per-run engine (its own KV cache) over the shared weights of ``model``."""
    max_len = max_len or model.context_length
    cls = LlamaEngine if supports(model.model) else HFEngine
    return cls(model.model, batch=batch, max_len=max_len)


def warm_up(model: LoadedModel) -> None:
    """One short prefill and decode step, so a user's first run does not pay one-off start-up costs."""
    import torch

    engine = make_engine(model, batch=1, max_len=8)
    engine.forward(torch.tensor([[1, 2, 3]], device=model.device))
    engine.commit(3)
    engine.forward(torch.tensor([[4]], device=model.device))
