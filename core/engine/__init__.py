"""Decoding engines over one loaded model: prefill, forward with tree masks and layer
ranges, a KV cache with rollback and compaction. ``make_engine`` picks the compact
llama engine when the architecture allows it (on CUDA its graph-captured form,
``core.engine.graph``), else the transformers fallback; all implement the ``Engine``
protocol (``core.engine.base``).
"""

from __future__ import annotations

import torch

from core.engine.base import Engine, EngineOutput, EngineUnsupported, require
from core.config import SamplingConfig
from core.engine.graph import BUCKETS, GraphEngine
from core.engine.hf import HFEngine
from core.engine.linear import projections
from core.engine.llama import LlamaEngine, supports
from core.models import LoadedModel
from core.sampling import Sampler, make_generator

__all__ = [
    "Engine",
    "EngineOutput",
    "EngineUnsupported",
    "engine_class",
    "engine_kind",
    "last",
    "llama_engine_class",
    "lm_logits",
    "make_engine",
    "prefill",
    "require",
    "warm_up",
]


def llama_engine_class(device: torch.device) -> type[LlamaEngine]:
    """The compact engine for a llama-family module on ``device``: graph-captured on CUDA."""
    return GraphEngine if device.type == "cuda" else LlamaEngine


def engine_class(model: LoadedModel) -> type[LlamaEngine] | type[HFEngine]:
    """The engine class a run of ``model`` gets; its capability flags can be asked before one is made."""
    return llama_engine_class(model.device) if supports(model.model) else HFEngine


ENGINE_KINDS = {LlamaEngine: "llama", GraphEngine: "llama, CUDA graphs", HFEngine: "transformers fallback"}


def engine_kind(model: LoadedModel) -> str:
    return ENGINE_KINDS[engine_class(model)]


def make_engine(model: LoadedModel, batch: int = 1, max_len: int | None = None) -> Engine:
    """A fresh per-run engine (its own KV cache) over the shared weights of ``model``."""
    return engine_class(model)(model.model, batch=batch, max_len=max_len or model.context_length)


def prefill(engine: Engine, ids: list[int], layers: range | None = None) -> torch.Tensor | None:
    """Forward and commit every prompt token but the last (which the first step feeds); return the
    hidden states at every committed position [1, P - 1, H], or None for a one-token prompt."""
    if len(ids) < 2:
        return None
    out = engine.forward(torch.tensor([ids[:-1]], device=engine.device), layers=layers, last_only=True)
    engine.commit(len(ids) - 1)
    return out.last_hidden


def last(hidden: torch.Tensor | None) -> torch.Tensor | None:
    """The last position of hidden states [B, T, H] (kept as [B, 1, H]), or None."""
    return None if hidden is None else hidden[:, -1:]


def lm_logits(model: LoadedModel):
    """The model's final norm + LM head as the engines compute it (float32 logits of hidden states [..., H]),
    without making an engine (and taking a KV cache) for it."""
    proj, norm = projections(model.model), model.model.model.norm
    return lambda h: proj.lm_head(norm(h)).float()


def warm_up(model: LoadedModel) -> None:
    """One short prefill and decode step, so a user's first run does not pay one-off start-up costs; with the
    graph engine also the capture of every token-input step shape of one row (prefills, verifications, the
    greedy decode) in the workspace most runs get, so no timed run has to capture them."""
    engine = make_engine(model, batch=1, max_len=3 * BUCKETS[-1])
    ids = torch.arange(1, 2 * BUCKETS[-1] + 1, device=model.device)[None] % model.config.vocab_size
    engine.forward(ids[:, :3])
    engine.commit(3)
    engine.forward(ids[:, 3:4])
    if isinstance(engine, GraphEngine):
        for size in BUCKETS:
            engine.forward(ids[:, :size])
        engine.decode(Sampler(SamplingConfig(), make_generator(0, model.device)), ids[:, :1])
