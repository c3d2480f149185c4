"""Batched decoding of several independent prompts by one ``RowModel``: a whole model (``WholeModel``: the
heads' self-distillation, EAGLE's data) or a cheaper view of one (SGD's pool members, ``core.skeleton.pool``).

``decode_rows``: rows of different prompt lengths are left-padded into one batch (the
engine's per-row positions and validity mask keep each row exactly as if alone); the rows'
common prefix is prefilled once and its K/V copied to every row; every step is one batched
forward over the rows still running; a row stops on its own EOS or token budget and leaves
the batch (its KV rows are dropped), so later steps get cheaper. Models whose engine has no
rows (the transformers fallback) decode their rows one after another.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from core.config import SamplingConfig
from core.engine import engine_class, make_engine
from core.engine.base import EngineOutput
from core.engine.sync import host, upload
from core.sampling import Sampler
from core.text import token_flags

if TYPE_CHECKING:
    from core.models import LoadedModel

MIN_ITEM_TOKENS = 3  # one_item: a point's expansion writes at least this many tokens before it may end


class RowModel(Protocol):
    """What ``decode_rows`` decodes with: a loaded model, the layers each forward runs and how a forward's
    output becomes next-token logits."""

    model: LoadedModel
    layers: range | None  # None: every layer

    def logits(self, engine, out: EngineOutput) -> torch.Tensor:
        """[B, V] next-token logits at each row's last position."""
        ...


@dataclass
class WholeModel:
    """Every layer and the model's own LM head."""

    model: LoadedModel
    layers: None = None

    def logits(self, engine, out: EngineOutput) -> torch.Tensor:
        return out.logits[:, -1]


@dataclass
class RowToken:
    row: int
    token: int
    done: bool
    item_end: bool = False  # one_item: the row ended because it began the next list item (its number was emitted)
    hidden: torch.Tensor | None = None  # with_hidden: the row's last hidden states [n, H] of the positions fed
    # since its previous token (the first token: every prompt position; the shared prefix too), float on the CPU


def _left_pad(prompts: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    real = torch.tensor([[False] * (width - len(p)) + [True] * len(p) for p in prompts])
    return ids, real


def decode_rows(
    member: RowModel,
    prompts: list[list[int]],
    budgets: list[int],
    sampling: SamplingConfig,
    rng: torch.Generator,
    with_hidden: bool = False,
    one_item: bool = False,
) -> Iterator[list[RowToken]]:
    """Decode every prompt; yield, per batched forward, the new token of each row still running.
    ``with_hidden``: each RowToken also carries the hidden states that produced it (self-distillation).
    ``one_item``: a row writes one list item: it ends, like at EOS, when it begins the next one ("2." after a
    space, a line break or a colon; ``new_item``), as a SoT point's expansion should, and not before its
    first MIN_ITEM_TOKENS tokens (``no_early_end``)."""
    if not engine_class(member.model).supports_rows:
        for row, prompt in enumerate(prompts):  # the transformers fallback engine holds one row
            for tokens in _decode_batch(member, [prompt], [budgets[row]], sampling, rng, with_hidden, one_item):
                yield [RowToken(row, t.token, t.done, t.item_end, t.hidden) for t in tokens]
        return
    yield from _decode_batch(member, prompts, budgets, sampling, rng, with_hidden, one_item)


def item_enders(model, width: int) -> torch.Tensor:
    """[width] flags: the model's EOS tokens and every digits-only token (the number that begins the next
    item). Line breaks stay allowed: a point's text often starts on the line after its title."""
    flags = torch.zeros(width, dtype=torch.bool)
    digits = token_flags(model.tokenizer, ("\n",))[1][:width]
    flags[: len(digits)] = digits
    flags[[t for t in model.eos_ids if t < width]] = True
    return flags.to(model.device)


def no_early_end(logits: torch.Tensor, counts: list[int], enders: torch.Tensor) -> torch.Tensor:
    """Rows that have written fewer than MIN_ITEM_TOKENS tokens may not end or begin the next item yet, so a
    point's expansion is never empty (a small model often answers a point's opening with the next number)."""
    young = upload([c < MIN_ITEM_TOKENS for c in counts], logits.device, torch.bool)
    return logits.masked_fill(young[:, None] & enders[None, :], float("-inf"))


ITEM = re.compile(r"(?:^|[\s:*(])\d{1,2}\.\s*$")  # " 2." / "\n3." / ": 4.": a numbered list item begins


def new_item(tokenizer, recent: list[int], token: int) -> bool:
    """Does ``token`` complete the number of a new list item ("2." after a space, a line break or a colon),
    given the row's ``recent`` tokens? (Years and decimals, "2019." and "3.5", do not count.)"""
    piece = tokenizer.decode([token])
    return piece.lstrip().startswith(".") and bool(ITEM.search(tokenizer.decode(recent[-3:] + [token])))


def shared_prefix(prompts: list[list[int]]) -> int:
    """Length of the longest common prefix of the prompts, leaving every row at least one token."""
    n = min(len(p) for p in prompts) - 1
    for i in range(max(n, 0)):
        if any(p[i] != prompts[0][i] for p in prompts):
            return i
    return max(n, 0)


def _decode_batch(
    member: RowModel,
    prompts: list[list[int]],
    budgets: list[int],
    sampling: SamplingConfig,
    rng,
    with_hidden: bool,
    one_item: bool = False,
) -> Iterator[list[RowToken]]:
    """Prefill: the rows' common prefix once (``prefill_shared``), then each row's own suffix, left-padded
    (the padding sits between the shared prefix and the suffix; positions skip it)."""
    model = member.model
    common = shared_prefix(prompts) if len(prompts) > 1 else 0
    ids, real = _left_pad([p[common:] for p in prompts], pad=next(iter(model.eos_ids), 0))
    engine = make_engine(model, batch=len(prompts), max_len=common + ids.shape[1] + max(budgets) + 1)
    kwargs = {"layers": member.layers} if member.layers is not None else {}
    pad = {"pad_mask": real.to(model.device)} if engine.supports_rows else {}
    prefix = torch.zeros(1, 0, model.config.hidden_size)
    if common:
        prefix = engine.prefill_shared(torch.tensor([prompts[0][:common]], device=model.device), member.layers)
    out = engine.forward(ids.to(model.device), last_only=True, **pad, **kwargs)
    engine.commit(ids.shape[1])
    active, counts = list(range(len(prompts))), [0] * len(prompts)
    recent: list[list[int]] = [[] for _ in prompts]
    enders, sampler = None, Sampler(sampling, rng)
    u = torch.zeros(len(prompts), dtype=torch.float64, device=model.device)
    while active:
        logits = member.logits(engine, out)
        if one_item:
            enders = item_enders(model, logits.shape[-1]) if enders is None else enders
            logits = no_early_end(logits, [counts[row] for row in active], enders)
        sampler.refill(u[: len(active)])
        chosen = host(sampler.choose(logits, u[: len(active)]))  # the step's one read, every row's token
        step = []
        for i, row in enumerate(active):
            tok = chosen[i]
            item_end = one_item and new_item(model.tokenizer, recent[row], tok)
            if item_end:
                tok = next(iter(model.eos_ids))  # the next item is another point's: this one ends here
            recent[row] = recent[row][-3:] + [tok]
            counts[row] += 1
            hidden = None
            if with_hidden:
                hidden = out.last_hidden[i, real[row]] if counts[row] == 1 else out.last_hidden[i, -1:]
                hidden = torch.cat([prefix[0], hidden]) if counts[row] == 1 else hidden
            done = tok in model.eos_ids or counts[row] >= budgets[row]
            step.append(RowToken(row, tok, done, item_end, hidden))
        yield step
        running = [i for i, t in enumerate(step) if not t.done]
        if not running:
            return
        if len(running) < len(active):
            engine.select_rows(running)
            active = [active[i] for i in running]
        feed = upload([[step[i].token] for i in running], model.device)
        out = engine.forward(feed, last_only=True, **kwargs)
        engine.commit(1)
