"""The model pool of Skeleton Graph Decoding: members cheapest first, chosen by a point's difficulty.

A ``PoolMember`` turns a chat prompt into an answer: a loaded model (its own tokenizer and chat
template: members share nothing but the chat format), or a cheaper view of one, its first e
layers plus its exit head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.engine import engine_class
from core.heads import head_logits, load_exit_head
from core.models import LoadedModel

CHEAP_LAYER = 24  # of the embedded model's 30: the shallowest exit that writes on topic; its exit head is shipped
DEFAULT_POOL_LAYER = 0  # sgd's default pool is the full model alone: the layer-24 member cost its waves 0.3-0.7
# nats/token of quality and bought no measurable speed on a CPU (docs/methods.md, "The cheap member")


@dataclass
class PoolMember:
    """A ``RowModel`` (``core.engine.rows``) with a name."""

    name: str
    model: LoadedModel
    layers: range | None = None  # None: every layer; range(e): the first e layers + ``head``
    head: torch.nn.Module | None = None

    def logits(self, engine, out) -> torch.Tensor:
        """[B, V] next-token logits at each row's last position."""
        if self.layers is None:
            return out.logits[:, -1]
        return head_logits(engine.logits, self.head, out.last_hidden[:, -1:])[:, -1]


def full_member(model: LoadedModel) -> PoolMember:
    return PoolMember(f"{model.key} (full)", model)


def make_pool(model: LoadedModel, extra: list[LoadedModel], layer: int) -> tuple[list[PoolMember], str | None]:
    """Members cheapest first, the full model last; without ``extra`` models, the first ``layer`` layers
    of the model with its exit head (llama engine only) as the cheap member; ``layer`` 0: the full model alone."""
    if extra:
        return [PoolMember(m.key, m) for m in extra] + [full_member(model)], None
    if layer == 0:
        return [full_member(model)], None
    if not engine_class(model).supports_layer_ranges:
        return [full_member(model)], "This model runs on the fallback engine (no layer ranges): the pool is it alone."
    head, notice = load_exit_head(model, layer)
    cheap = PoolMember(f"{model.key} layers 0-{layer - 1} + exit head", model, range(layer), head)
    return [cheap, full_member(model)], notice


def wave_members(plan: list[list[int]], member_of: list[int]) -> list[int]:
    """Each wave on one member: the most capable any of its points was given. A wave's batch costs about one
    forward per step however many rows it holds (decoding a few rows reads every weight once: memory-bound),
    while a second member's batch adds its own forward to every step of the wave; so a point whose wave
    already pays for a stronger member is moved up to it, and a cheaper member runs only a wave of easy
    points (figures: docs/methods.md, "Skeletons")."""
    out = list(member_of)
    for wave in plan:
        top = max(member_of[n] for n in wave)
        for n in wave:
            out[n] = top
    return out


def member_index(difficulty: int, size: int) -> int:
    """Difficulty 1-5 to a pool index, cheapest first: ceil((d - 1) (n - 1) / 4), so only the easiest points
    go to the cheapest member (2 members: 1 | 2-5; 3 members: 1 | 2-3 | 4-5)."""
    return min(size - 1, -(-(difficulty - 1) * (size - 1) // 4))
