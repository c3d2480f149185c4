"""Draft sources behind one narrow contract (``DraftSource.propose(root)``), like transformers'
``CandidateGenerator``.

A source proposes a ``DraftTree`` below the step's root: the tokens of its nodes and, at the internal nodes,
the draft distribution q their children were drawn from (each rule draws children its own way,
``core.speculative.rules``). ``propose`` takes one argument, a ``Root``: the root token, the whole context, what
was committed since the last proposal with the target's hidden states there, the nodes of the last tree the
target accepted, and the run's settings. A source reads what it needs from it and keeps the rest of its state
itself. ``labels`` names who produced each emitted token, ``describe`` yields the source's own trace events for
a step, ``summary`` adds figures to the run's end (``draft_forwards`` among them); ``DraftDefaults`` gives the
plain versions.

Sources (one module each):
- ``LevelDrafter`` over a ``DraftLM`` (here): either the target's first e layers plus an exit head (the
  self-draft: it writes layers [0, e) of the target's own KV cache and hands the hidden states after layer e to
  the verifier, which then runs layers [e, L) only), or a separate draft model sharing the target's tokenizer,
  with its own engine;
- ``PromptLookup`` (``core.speculative.copies``): a chain copied from the context;
- ``FeatureDrafter`` (``core.eagle.drafter``): EAGLE's feature head and dynamic trees;
- ``BlockDrafter`` (``core.blockwise.bpd``): BPD's heads.
A proposal stays on the device: a source reads at most once per step (a read the step needs, e.g. to size a
dynamic tree), so a step reads at most twice (docs/methods.md, "GPU engine").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import torch

from core.config import SamplingConfig
from core.engine import Engine, EngineOutput, make_engine, prefill, require
from core.engine.sync import upload
from core.heads import head_logits, load_exit_head
from core.heads.modules import Projection
from core.heads.vocab import describe_vocab, draft_projection
from core.models import LoadedModel
from core.sampling import target_probs, uniforms
from core.speculative.rules import Rule
from core.speculative.tree import TreeTopology

DRAFTS = ("self", "model", "lookup", "eagle")
# A tree's depth L when the run does not set one (docs/methods.md, "Draft trees": the figures behind each).
DEPTHS = {"self": 4, "model": 4, "lookup": 6, "eagle": 1}


def default_depth(draft: str) -> int:
    if draft not in DEPTHS:
        raise ValueError(f"Unknown draft source {draft!r}; use {', '.join(DRAFTS)}.")
    return DEPTHS[draft]


@dataclass
class DraftTree:
    """One step's draft below the root (node 0, the last committed token, not yet forwarded), in BFS order. The
    shape is the host's; the tokens and the draft's distributions live on the device."""

    topology: TreeTopology
    tokens: torch.Tensor  # [N] long
    q_token: torch.Tensor  # [N] q of each node's token under its parent's q (1 at the root)
    q: torch.Tensor | None = None  # [N_int, V] q at the internal nodes 0..N_int-1 (BFS: they come first); None:
    # a deterministic draft, which only the greedy and match rules verify
    offered: torch.Tensor | None = None  # [N] bool: the rule really drew the node (False: a padding copy); None: all
    hidden: torch.Tensor | None = None  # [1, N, H] after layer ``reuse_layers`` (self-draft)
    reuse_layers: int = 0
    trace: torch.Tensor | None = None  # [X] float figures the source's trace events want, read with the step

    def candidates(self, node: int, offered: list[bool]) -> list[int]:
        """The children of ``node`` the rule really drew, given the host's copy of ``offered``."""
        return [c for c in self.topology.children(node) if offered[c]]


@dataclass(frozen=True)
class DraftSettings:
    """A run's settings a source may read: the tree shape (None: the source shapes it), the rule (how
    children are drawn), the sampling filters and the run's generator."""

    topology: TreeTopology | None
    rule: Rule
    sampling: SamplingConfig
    rng: torch.Generator


@dataclass
class Root:
    """What a draft source may read when it proposes (``DraftSource.propose``'s one argument)."""

    token: int  # the step's root: the last committed token, not yet forwarded
    ids: list[int]  # the whole context, prompt and output, the root last
    fresh: list[int]  # the tokens committed since the last proposal, root excluded: the prompt but its last
    # token at the first step, then the last step's root and the path it accepted
    hidden: torch.Tensor | None  # [1, len(fresh), H] the target's last hidden states at them (None: none)
    accepted: list[int]  # the last tree's accepted nodes, root first ([] at the first step)
    settings: DraftSettings


class DraftSource(Protocol):
    """What the speculative step loop needs from a draft."""

    name: str

    def propose(self, root: Root) -> DraftTree:
        """A tree below ``root.token``."""

    def labels(self, tree: DraftTree, seen) -> list[str]:
        """Per emitted token (accepted nodes, then the final token), what produced it; ``seen`` is the step as
        read back (``core.speculative.speculate.Seen``)."""

    def describe(self, step: int, tree: DraftTree, seen, tokenizer, t: float) -> Iterable:
        """The source's own trace events for this step."""

    def summary(self, output: list[int]) -> dict:
        """Figures for the run's end (``RunFinished.extras``): ``draft_forwards`` at least."""


class DraftDefaults:
    """The plain ``labels``, ``describe`` and ``summary`` of a draft source."""

    forwards = 0  # draft forwards so far

    def labels(self, tree: DraftTree, seen) -> list[str]:
        return ["draft"] * (len(seen.nodes) - 1) + [seen.final_kind]

    def describe(self, step: int, tree: DraftTree, seen, tokenizer, t: float) -> Iterable:
        return ()

    def summary(self, output: list[int]) -> dict:
        return {"draft_forwards": self.forwards}


def draft_probs(logits: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """q from draft logits: the target's sampling filters; at T = 0 plain softmax (children = its top-k)."""
    return torch.softmax(logits.float(), -1) if sampling.greedy else target_probs(logits, sampling)


def q_of_tokens(topology: TreeTopology, tokens: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """[N] q of each node's token under its parent's q [N_int, V] (1 at the root)."""
    t = topology.tensors(tokens.device)
    return torch.cat([torch.ones(1, device=q.device), q[t.parent[1:], tokens[1:]]])


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


class LevelDrafter(DraftDefaults):
    """Drafts a full tree level by level through a ``DraftLM``: one forward per level (tree mask), then each
    node's children drawn from q by the rule, all on the device."""

    def __init__(self, lm: DraftLM) -> None:
        self.lm, self.name = lm, lm.name
        self.base = 0  # where the last tree's slots began in a separate draft model's cache

    def _catch_up(self, root: Root) -> None:
        """A separate draft model keeps the last tree's accepted path in its own cache (the prompt at the first
        step); a self-draft has nothing to do: the target's ``keep`` moved the shared cache."""
        if self.lm.shared:
            return
        engine = self.lm.engine
        if not root.accepted:
            prefill(engine, [*root.fresh, root.token])
        else:
            engine.keep(upload(root.accepted, engine.device) + self.base)

    def propose(self, root: Root) -> DraftTree:
        self._catch_up(root)
        settings = root.settings
        topo, engine, device = settings.topology, self.lm.engine, self.lm.engine.device
        t = topo.tensors(device)
        self.base = base = engine.length
        tokens, offered, qs, hiddens = [upload([root.token], device)], [torch.ones(1, dtype=torch.bool, device=device)], [], []
        for d in range(topo.depth + 1):
            level = topo.level(d)
            out = engine.forward(
                torch.cat(tokens)[level.start :][None],
                start=base + level.start,
                offsets=torch.full((1, len(level)), d, device=device),
                tree_mask=t.mask[level.start : level.stop, : level.stop],
                layers=self.lm.layers,
            )
            self.forwards += 1
            hiddens.append(out.last_hidden)
            if d < topo.depth:
                q = draft_probs(self.lm.logits(out)[0], settings.sampling)  # [len(level), V]
                u = uniforms(settings.rng, len(level) * topo.k, device).view(len(level), topo.k)
                kids, drawn = settings.rule.children(q, topo.k, u)
                tokens.append(kids.flatten())
                offered.append(drawn.flatten())
                qs.append(q)
        tokens_t = torch.cat(tokens)
        q = torch.cat(qs) if qs else torch.zeros(0, device=device)
        tree = DraftTree(topo, tokens_t, q_of_tokens(topo, tokens_t, q) if qs else torch.ones(1, device=device), q, torch.cat(offered))
        if self.lm.shared:  # only the target's own layers can be reused by the verifier
            tree.hidden, tree.reuse_layers = torch.cat(hiddens, dim=1), self.lm.layers.stop
        return tree


def check_same_vocabulary(target: LoadedModel, draft: LoadedModel) -> None:
    a, b = target.tokenizer.get_vocab(), draft.tokenizer.get_vocab()
    if a != b:
        raise ValueError(
            f"The draft model {draft.display_name} has a different vocabulary from the target "
            f"{target.display_name} ({len(b)} vs {len(a)} tokens); choose a draft with the same tokenizer."
        )
