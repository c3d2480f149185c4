"""A reduced draft vocabulary (FR-Spec, EAGLE-3): the N tokens the model itself generates most often.

A draft that projects its hidden state onto every one of the V = 49,152 rows of the LM head pays
21% of the embedded model's weights per drafted token. The model's own answers use few of them:
coverage(N), the share of generated tokens (self-distillation corpus, ``core.heads.corpus``)
that are among the N most frequent, reaches ~97% long before N = V. A draft head restricted to
those N rows costs N / V of the full head.

q is then zero outside the N tokens. Verification stays lossless: the rules only need q > 0
where a child was drawn, and a token p favours that q lacks is reached through the residual
(tests/test_verify.py checks this with chi-square tests).
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.engine.linear import make_linear
from core.heads.modules import ASSETS, Projection

if TYPE_CHECKING:
    from core.models import LoadedModel

VOCAB = ASSETS / "vocab"
COVERAGE_TARGET = 0.97  # the smallest N whose tokens cover this share of generated tokens
CURVE_SIZES = (256, 512, 1024, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768)


def vocab_path(model_key: str) -> Path:
    return VOCAB / f"{model_key}.json"


def coverage_curve(tokens: list[int], vocab_size: int, sizes: tuple[int, ...] = CURVE_SIZES) -> dict:
    """Token frequencies of ``tokens``, most frequent first, and coverage(N) = share of ``tokens`` among the
    N most frequent, for N in ``sizes`` (and the whole vocabulary)."""
    counts = np.bincount(np.asarray(tokens, dtype=np.int64), minlength=vocab_size)
    order = np.argsort(-counts, kind="stable")
    covered = np.cumsum(counts[order]) / max(len(tokens), 1)
    sizes = tuple(n for n in sizes if n < vocab_size) + (vocab_size,)
    return {
        "order": order.tolist(),
        "n": list(sizes),
        "coverage": [float(covered[n - 1]) for n in sizes],
        "distinct": int((counts > 0).sum()),
        "covered": covered,
    }


def smallest_size(covered: np.ndarray, target: float) -> int:
    """The smallest N with coverage(N) >= target (``covered[i]`` = coverage of the i + 1 most frequent)."""
    if not 0 < target <= 1:
        raise ValueError(f"The coverage target must be in (0, 1], got {target}.")
    return int(np.searchsorted(covered, target - 1e-12) + 1)


def build_vocab(tokens: list[int], vocab_size: int, target: float = COVERAGE_TARGET, meta: dict | None = None) -> dict:
    """The asset: the chosen N, its token ids (most frequent first), the coverage curve and provenance."""
    curve = coverage_curve(tokens, vocab_size)
    n = smallest_size(curve["covered"], target)
    return {
        "size": n,
        "target": target,
        "ids": curve["order"][:n],
        "curve": {"n": curve["n"], "coverage": curve["coverage"]},
        "coverage": float(curve["covered"][n - 1]),
        "distinct_generated": curve["distinct"],
        "generated_tokens": len(tokens),
        **(meta or {}),
    }


@dataclass
class DraftVocab:
    """The N token ids a draft may propose, and the projection onto them."""

    ids: torch.Tensor  # [N] long
    vocab_size: int  # V of the target
    coverage: float

    @property
    def size(self) -> int:
        return int(self.ids.numel())

    def __hash__(self) -> int:  # one object per model and file version (``load_draft_vocab``)
        return id(self)

    def expand(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits over the N tokens [..., N] -> over the vocabulary [..., V], -inf outside (q = 0 there)."""
        full = logits.new_full((*logits.shape[:-1], self.vocab_size), float("-inf"))
        return full.index_copy_(-1, self.ids, logits)


_HEADS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def reduced_projection(model: LoadedModel, vocab: DraftVocab) -> Projection:
    """The target's frozen final norm + the N rows of its LM head, expanded to [..., V] logits (float32)."""
    net, key = model.model, vocab
    heads = _HEADS.setdefault(net, {})
    if key not in heads:
        heads[key] = make_linear(net.lm_head.weight[vocab.ids])
    head, norm = heads[key], net.model.norm
    return lambda h: vocab.expand(head(norm(h)).float())


VOCAB_CHOICES = ("reduced", "full")


def draft_projection(model: LoadedModel, choice: str) -> tuple[Projection | None, DraftVocab | None]:
    """What a draft head projects onto: ``reduced`` (the shipped reduced vocabulary, where the model has one)
    or ``full``; (None, None) means the engine's own full LM head."""
    if choice not in VOCAB_CHOICES:
        raise ValueError(f"Unknown draft vocabulary {choice!r}; use {' or '.join(VOCAB_CHOICES)}.")
    vocab = load_draft_vocab(model) if choice == "reduced" else None
    return (reduced_projection(model, vocab) if vocab else None), vocab


def describe_vocab(vocab: DraftVocab | None) -> str:
    return f"{vocab.size:,}-token draft vocabulary" if vocab else "full vocabulary"


_VOCABS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def load_draft_vocab(model: LoadedModel) -> DraftVocab | None:
    """The shipped reduced vocabulary of ``model``, or None (its drafts then project onto every token); read
    once per model and file version and shared by every run."""
    path = vocab_path(model.key)
    if not path.is_file():
        return None
    key = (path, path.stat().st_mtime_ns)
    cached = _VOCABS.setdefault(model.model, {})
    if key not in cached:
        blob = json.loads(path.read_text())
        if max(blob["ids"]) >= model.config.vocab_size:
            raise ValueError(f"{path.name} names tokens beyond this model's vocabulary; rebuild it for {model.key}.")
        ids = torch.tensor(blob["ids"], dtype=torch.long, device=model.device)
        cached.clear()
        cached[key] = DraftVocab(ids, model.config.vocab_size, blob["coverage"])
    return cached[key]
