"""Draft sources behind one interface, for single-chain and tree speculative decoding.

A source proposes a ``DraftTree`` for a topology: the token of every node and, for
every internal node, the draft distribution q its children were drawn from (each
verification rule draws children its own way, ``core.verify.draw_children``).

- ``SelfDraft``: the target's first e layers plus an exit head (or the plain final
  norm + LM head). It writes layers [0, e) of the target's own KV cache, and hands
  the hidden states after layer e to the verifier, which then runs layers [e, L) only.
- ``ModelDraft``: a separate model sharing the target's tokenizer, with its own engine.
- ``PromptLookup``: a chain copied from the context after the latest earlier match of
  its last n-gram (q is one-hot on the copied token: a deterministic draft).

Every source sees, through ``prefill`` and ``accept``, the target's last hidden state at
the last committed position ([1, 1, H]); only the BPD heads (``core.methods.blockwise``) use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from core.config import SamplingConfig
from core.engine import LlamaEngine, make_engine
from core.models import LoadedModel
from core.sampling import target_probs
from core.tree import TreeTopology
from core.verify import draw_children


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


def draft_probs(logits: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """q from draft logits: the target's sampling filters; at T = 0 plain softmax (children = its top-k)."""
    return torch.softmax(logits.float(), -1) if sampling.greedy else target_probs(logits, sampling)


def _grow(tree: DraftTree, level: range, dists: torch.Tensor, rule: str, gen: torch.Generator) -> None:
    """Record q for each node of ``level`` and append its children's tokens (BFS order).

    A rule may draw fewer distinct children than k (q with fewer than k tokens of
    non-zero mass); the topology's remaining slots are filled with a copy of the last
    child, written to the cache but never offered to the rule (``DraftTree.candidates``).
    """
    for i, node in enumerate(level):
        tree.q[node] = dists[i]
        children = draw_children(rule, dists[i], tree.topology.k, gen)
        tree.drawn[node] = len(children)
        tree.tokens += children + children[-1:] * (tree.topology.k - len(children))


class _LevelDrafter:
    """Shared by self-draft and model-draft: forward each tree level through ``engine``, draw the next."""

    engine: LlamaEngine
    layers: range | None = None

    def _level_logits(self, out, level: range) -> torch.Tensor:
        raise NotImplementedError

    def propose(
        self, root: int, topo: TreeTopology, rule: str, sampling: SamplingConfig, gen: torch.Generator
    ) -> DraftTree:
        base = self.engine.length
        tree, hiddens = DraftTree(topo, [root]), []
        device = self.engine.device
        for d in range(topo.depth + 1):
            level = topo.level(d)
            out = self.engine.forward(
                torch.tensor([tree.tokens[level.start : level.stop]], device=device),
                start=base + level.start,
                positions=torch.full((1, len(level)), base + d, device=device),
                tree_mask=topo.mask[level.start : level.stop, : level.stop],
                layers=self.layers,
            )
            hiddens.append(out.last_hidden)
            if d < topo.depth:
                _grow(tree, level, draft_probs(self._level_logits(out, level), sampling), rule, gen)
        if self.layers is not None:  # only the target's own layers can be reused by the verifier
            tree.hidden, tree.reuse_layers = torch.cat(hiddens, dim=1), self.layers.stop
        return tree


class SelfDraft(_LevelDrafter):
    """Layers [0, e) of the target plus an exit head; shares the target engine's KV cache."""

    def __init__(self, model: LoadedModel, engine: LlamaEngine, layer: int, head: torch.nn.Module | None) -> None:
        self.model, self.engine, self.head = model, engine, head
        self.layers = range(layer)
        self.name = f"self-draft (layers 0-{layer - 1} + {'exit head' if head is not None else 'final norm + LM head'})"

    def _level_logits(self, out, level):
        h = out.last_hidden
        return self.engine.logits(self.head(h) if self.head is not None else h)[0]  # the packed LM head

    def prefill(self, ids: list[int], hidden: torch.Tensor | None = None) -> None:
        """Nothing to do: the target's prefill wrote every layer of the shared cache."""

    def accept(self, tree: DraftTree, nodes: list[int], hidden: torch.Tensor | None = None) -> None:
        """Nothing to do: the target's ``keep`` moves the shared cache, early layers included."""


class ModelDraft(_LevelDrafter):
    """A separate draft model with its own engine; must share the target's vocabulary."""

    def __init__(self, target: LoadedModel, draft: LoadedModel, max_len: int) -> None:
        check_same_vocabulary(target, draft)
        self.draft = draft
        self.engine = make_engine(draft, batch=1, max_len=max_len)
        self.name = f"draft model {draft.display_name}"

    def _level_logits(self, out, level):
        return out.logits[0]

    def prefill(self, ids: list[int], hidden: torch.Tensor | None = None) -> None:
        if len(ids) > 1:
            self.engine.forward(torch.tensor([ids[:-1]], device=self.engine.device), last_only=True)
            self.engine.commit(len(ids) - 1)

    def accept(self, tree: DraftTree, nodes: list[int], hidden: torch.Tensor | None = None) -> None:
        base = self.engine.length
        self.engine.keep([base + n for n in nodes])


def check_same_vocabulary(target: LoadedModel, draft: LoadedModel) -> None:
    a, b = target.tokenizer.get_vocab(), draft.tokenizer.get_vocab()
    if a != b:
        raise ValueError(
            f"The draft model {draft.display_name} has a different vocabulary from the target "
            f"{target.display_name} ({len(b)} vs {len(a)} tokens); choose a draft with the same tokenizer."
        )


class PromptLookup:
    """n-gram prompt lookup: copy the tokens that followed the latest earlier match of the context's last n-gram."""

    def __init__(self, vocab_size: int, max_ngram: int = 3) -> None:
        self.vocab_size, self.max_ngram = vocab_size, max_ngram
        self.context: list[int] = []
        self.name = f"prompt lookup (n-gram <= {max_ngram})"

    def prefill(self, ids: list[int], hidden: torch.Tensor | None = None) -> None:
        self.context = list(ids[:-1])

    def lookup(self, context: list[int], want: int) -> list[int]:
        """Tokens after the latest earlier occurrence of the longest matching suffix n-gram (n <= max_ngram)."""
        for n in range(min(self.max_ngram, len(context) - 1), 0, -1):
            tail = context[-n:]
            for start in range(len(context) - n - 1, -1, -1):
                if context[start : start + n] == tail:
                    return context[start + n : start + n + want]
        return []

    def propose(
        self, root: int, topo: TreeTopology, rule: str, sampling: SamplingConfig, gen: torch.Generator
    ) -> DraftTree:
        chain = self.lookup(self.context + [root], topo.depth)
        q = {}
        for node, tok in enumerate(chain):  # node i's child is chain[i]: q is one-hot on it
            q[node] = torch.zeros(self.vocab_size)
            q[node][tok] = 1.0
        return DraftTree(TreeTopology.full(1, len(chain)), [root, *chain], q)

    def accept(self, tree: DraftTree, nodes: list[int], hidden: torch.Tensor | None = None) -> None:
        self.context += [tree.tokens[n] for n in nodes]
