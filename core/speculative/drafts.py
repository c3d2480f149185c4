"""Draft sources behind one contract (``DraftSource``), like transformers' ``CandidateGenerator``.

A source proposes a ``DraftTree`` for a topology: the token of every node and, for every
internal node, the draft distribution q its children were drawn from (each verification
rule draws children its own way, ``core.speculative.verify.draw_children``). The step loop
(``core.speculative.speculate.speculate``) calls ``prefill`` once, then per step ``propose`` and,
after verification, ``accept`` with the accepted path and the target's hidden state at its
last node. ``labels`` names who produced each emitted token, ``describe`` yields the source's
own trace events for a step, ``summary`` adds figures to the run's end; ``DraftDefaults``
gives the plain versions.

Sources here:
- ``LevelDrafter`` over a ``DraftLM``: either the target's first e layers plus an exit head
  (the self-draft: it writes layers [0, e) of the target's own KV cache and hands the hidden
  states after layer e to the verifier, which then runs layers [e, L) only), or a separate
  draft model sharing the target's tokenizer, with its own engine;
- ``PromptLookup`` (``core.speculative.copies``): a chain copied from the context after the latest
  earlier match of its last n-gram (q is one-hot on the copied token: a deterministic draft).
BPD's heads (``core.blockwise.bpd.BlockDrafter``) are one more source.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from core.config import SamplingConfig
from core.engine import Engine, EngineOutput, make_engine, prefill, require
from core.heads import head_logits, load_exit_head
from core.heads.modules import Projection
from core.heads.vocab import describe_vocab, draft_projection
from core.models import LoadedModel
from core.sampling import target_probs
from core.speculative.tree import TreeTopology
from core.speculative.verify import Walk, draw_children

DRAFTS = ("self", "model", "lookup", "eagle")
# A tree's depth L when the run does not set one. The eagle draft: measured on the held-out split (CPU,
# float32, 64 tokens, eagle draft, each against its own ar), depth 1 beats depth 2 for every rule: T = 0,
# k = 2, rrs 1.10x and spechub 1.13x against 1.00x / 0.99x; T = 1, k = 2, rrs / rrsw / spechub
# 1.15-1.21x / 1.13-1.14x / 1.13-1.19x against 0.96x / 0.96x / 0.92x. Its own features make the head's
# first guess its best; a second level rarely pays for its draft forward and the wider verify.
DEPTHS = {"self": 4, "model": 4, "lookup": 6, "eagle": 1}


def default_depth(draft: str) -> int:
    if draft not in DEPTHS:
        raise ValueError(f"Unknown draft source {draft!r}; use {', '.join(DRAFTS)}.")
    return DEPTHS[draft]


@dataclass
class DraftTree:
    topology: TreeTopology
    tokens: list[int]  # per node, tokens[0] = the root
    q: dict[int, torch.Tensor] = field(default_factory=dict)  # internal node -> q over its children [V]
    hidden: torch.Tensor | None = None  # [1, N, H] after layer ``reuse_layers`` (self-draft)
    reuse_layers: int = 0
    drawn: dict[int, int] = field(default_factory=dict)  # internal node -> children the rule really drew

    def candidates(self, node: int) -> list[int]:
        """The children of ``node`` that the rule drew (padding nodes of a full topology excluded)."""
        kids = self.topology.children(node)
        return list(kids)[: self.drawn.get(node, len(kids))]


class DraftSource(Protocol):
    """What the speculative step loop needs from a draft."""

    name: str

    def prefill(self, ids: list[int], hidden: torch.Tensor | None) -> None:
        """See the prompt; ``hidden`` [1, P - 1, H]: the target's last hidden states at every committed
        prompt position (None for a one-token prompt)."""

    def propose(
        self, root: int, topo: TreeTopology, rule: str, sampling: SamplingConfig, rng: torch.Generator
    ) -> DraftTree:
        """A tree below ``root`` (the last committed token, not yet forwarded)."""

    def accept(self, tree: DraftTree, nodes: list[int], hidden: torch.Tensor) -> None:
        """The verifier kept the path ``nodes``; ``hidden`` [1, len(nodes), H]: the target's last hidden
        states at those nodes (the last one produced the step's final token)."""

    def labels(self, tree: DraftTree, walk: Walk) -> list[str]:
        """Per emitted token (accepted nodes, then the final token), what produced it."""

    def describe(self, step: int, tree: DraftTree, walk: Walk, tokenizer, t: float) -> Iterable:
        """The source's own trace events for this step."""

    def summary(self, output: list[int]) -> dict:
        """Figures for the run's end (``RunFinished.extras``)."""


class DraftDefaults:
    """The plain ``labels``, ``describe`` and ``summary`` of a draft source."""

    def labels(self, tree: DraftTree, walk: Walk) -> list[str]:
        return ["draft"] * (len(walk.nodes) - 1) + [walk.final_kind]

    def describe(self, step: int, tree: DraftTree, walk: Walk, tokenizer, t: float) -> Iterable:
        return ()

    def summary(self, output: list[int]) -> dict:
        return {}


def draft_probs(logits: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """q from draft logits: the target's sampling filters; at T = 0 plain softmax (children = its top-k)."""
    return torch.softmax(logits.float(), -1) if sampling.greedy else target_probs(logits, sampling)


@dataclass
class DraftLM:
    """A small language model that drafts: the target's first e layers + exit head on the target's own
    engine (``layers = range(e)``: a shared cache), or a separate draft model with its own engine."""

    engine: Engine
    layers: range | None
    head: torch.nn.Module | None
    name: str
    project: Projection | None = None  # the reduced draft vocabulary's projection; None: the full LM head

    @property
    def shared(self) -> bool:
        return self.layers is not None

    def logits(self, out: EngineOutput) -> torch.Tensor:
        """[B, T, V] draft logits of a forward through ``layers`` (-inf outside a reduced vocabulary)."""
        if not self.shared:
            return out.logits
        return head_logits(self.project or self.engine.logits, self.head, out.last_hidden)


@dataclass(frozen=True)
class DraftChoice:
    """Which draft a run asked for: ``draft`` (self, model, lookup, eagle), the self-draft's exit ``layer``,
    the separate ``draft_model``, and the ``vocab`` exit heads project onto (reduced or full)."""

    draft: str
    layer: int
    draft_model: LoadedModel | None = None
    vocab: str = "reduced"


def make_draft_lm(model: LoadedModel, engine: Engine, choice: DraftChoice, max_len: int) -> tuple[DraftLM, str | None]:
    """``self``: the target's first ``layer`` layers + its exit head, projected onto the chosen vocabulary;
    ``model``: the draft model. Returns the LM and a notice (e.g. no trained exit head) or None."""
    draft, layer, draft_model = choice.draft, choice.layer, choice.draft_model
    if draft == "model":
        if draft_model is None:
            raise ValueError("Draft source 'model' needs a draft model.")
        check_same_vocabulary(model, draft_model)
        own = make_engine(draft_model, batch=1, max_len=max_len)
        return DraftLM(own, None, None, f"draft model {draft_model.display_name}"), None
    if draft != "self":
        raise ValueError(f"Unknown draft source {draft!r}; use {', '.join(DRAFTS)}.")
    require(type(engine), "supports_layer_ranges", "The self-draft (choose the lookup or model draft)")
    head, notice = load_exit_head(model, layer)
    project, reduced = draft_projection(model, choice.vocab)
    kind = "exit head" if head is not None else "final norm + LM head"
    name = f"self-draft (layers 0-{layer - 1} + {kind}, {describe_vocab(reduced)})"
    return DraftLM(engine, range(layer), head, name, project), notice


def grow_level(tree: DraftTree, level: range, dists: torch.Tensor, rule: str, rng: torch.Generator) -> None:
    """Record q for each node of ``level`` and append its children's tokens (BFS order).

    A rule may draw fewer distinct children than k (q with fewer than k tokens of
    non-zero mass); the topology's remaining slots are filled with a copy of the last
    child, written to the cache but never offered to the rule (``DraftTree.candidates``).
    """
    for i, node in enumerate(level):
        tree.q[node] = dists[i]
        children = draw_children(rule, dists[i], tree.topology.k, rng)
        tree.drawn[node] = len(children)
        tree.tokens += children + children[-1:] * (tree.topology.k - len(children))


class LevelDrafter(DraftDefaults):
    """Drafts a tree level by level through a ``DraftLM``: one forward per level (tree mask), then each
    node's children drawn from q by the rule."""

    def __init__(self, lm: DraftLM) -> None:
        self.lm, self.name = lm, lm.name

    def prefill(self, ids: list[int], hidden: torch.Tensor | None = None) -> None:
        """A self-draft has nothing to do (the target's prefill wrote every layer of the shared cache)."""
        if not self.lm.shared:
            prefill(self.lm.engine, ids)

    def propose(
        self, root: int, topo: TreeTopology, rule: str, sampling: SamplingConfig, rng: torch.Generator
    ) -> DraftTree:
        engine = self.lm.engine
        base, device = engine.length, engine.device
        tree, hiddens = DraftTree(topo, [root]), []
        for d in range(topo.depth + 1):
            level = topo.level(d)
            out = engine.forward(
                torch.tensor([tree.tokens[level.start : level.stop]], device=device),
                start=base + level.start,
                positions=torch.full((1, len(level)), base + d, device=device),
                tree_mask=topo.mask[level.start : level.stop, : level.stop],
                layers=self.lm.layers,
            )
            hiddens.append(out.last_hidden)
            if d < topo.depth:
                grow_level(tree, level, draft_probs(self.lm.logits(out)[0], sampling), rule, rng)
        if self.lm.shared:  # only the target's own layers can be reused by the verifier
            tree.hidden, tree.reuse_layers = torch.cat(hiddens, dim=1), self.lm.layers.stop
        return tree

    def accept(self, tree: DraftTree, nodes: list[int], hidden: torch.Tensor | None = None) -> None:
        """A self-draft has nothing to do (the target's ``keep`` moves the shared cache, early layers included)."""
        if not self.lm.shared:
            base = self.lm.engine.length
            self.lm.engine.keep([base + n for n in nodes])


def check_same_vocabulary(target: LoadedModel, draft: LoadedModel) -> None:
    a, b = target.tokenizer.get_vocab(), draft.tokenizer.get_vocab()
    if a != b:
        raise ValueError(
            f"The draft model {draft.display_name} has a different vocabulary from the target "
            f"{target.display_name} ({len(b)} vs {len(a)} tokens); choose a draft with the same tokenizer."
        )
