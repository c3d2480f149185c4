"""BPD draft refinement (Kim et al. 2024): the heads' top-k lattice and its rescoring.

Symbols: m = k - 1 heads; head i (1..m) gives log q_i over the vocabulary for token
t+1+i from h_t. The lattice keeps each head's top-k tokens; a path picks one token per
head. A path x_1..x_m scores
    S(x) = sum_i log q_i(x_i) + alpha * log p_LM(x_1..x_m | context)
- global rescoring (n-gram LM): every path of the lattice is scored, the best kept;
- local rescoring (neural LM): a beam of width p walks the heads left to right, each
  beam's next token scored with the neural LM's distribution after its own prefix.
The plain BPD draft (each head's argmax) is always verified too, so refinement can only
add accepted tokens at a step; the p paths are verified in one tree forward.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.engine.sync import host, upload
from core.speculative.drafts import DraftLM
from core.speculative.tree import TreeTopology


@dataclass
class Lattice:
    """The lattice on the host (rescoring is host work)."""

    tokens: list[list[int]]  # [m][topk] ids: row i - 1 holds head i's top-k, best first
    logq: list[list[float]]  # [m][topk] the heads' log-probabilities of those tokens

    @property
    def drafted(self) -> list[int]:
        """Plain BPD's draft: each head's argmax."""
        return [row[0] for row in self.tokens]


@dataclass
class ScoredPath:
    ranks: list[int]  # per head, the rank of the chosen token in its top-k
    tokens: list[int]
    head_logq: float  # sum_i log q_i(x_i)
    lm_logp: float  # log p_LM(x | context)
    score: float


def lattice_top(logits: torch.Tensor, topk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each head's top-k on the device, from the heads' logits [m, V]: ids [m, topk] and log q [m, topk]."""
    top = torch.log_softmax(logits.float(), -1).topk(topk, dim=-1)
    return top.indices, top.values


def head_lattice(logits: torch.Tensor, topk: int) -> Lattice:
    """The lattice from the heads' logits [m, V], read to the host once."""
    ids, logq = lattice_top(logits, topk)
    flat = host(torch.cat([ids.double(), logq.double()]))
    m = ids.shape[0]
    return Lattice([[int(x) for x in row] for row in flat[:m]], flat[m:])


def _scored(lattice: Lattice, ranks: list[int], lm_logp: float, alpha: float) -> ScoredPath:
    head = sum(lattice.logq[i][r] for i, r in enumerate(ranks))
    tokens = [lattice.tokens[i][r] for i, r in enumerate(ranks)]
    return ScoredPath(list(ranks), tokens, head, lm_logp, head + alpha * lm_logp)


def global_rescore(lattice: Lattice, lm_logp: Callable[[list[int]], float], alpha: float) -> list[ScoredPath]:
    """Every path of the lattice scored with S(x), best first (n-gram LM: cheap to score them all)."""
    m, topk = len(lattice.tokens), len(lattice.tokens[0])
    paths = []
    for ranks in itertools.product(range(topk), repeat=m):
        tokens = [lattice.tokens[i][r] for i, r in enumerate(ranks)]
        paths.append(_scored(lattice, list(ranks), lm_logp(tokens), alpha))
    return sorted(paths, key=lambda s: -s.score)


def local_rescore(
    lattice: Lattice, next_logp: Callable[[list[list[int]]], torch.Tensor], alpha: float, width: int
) -> list[ScoredPath]:
    """Beam search of ``width`` over the heads; ``next_logp(prefixes)`` gives the neural LM's log-probs [B, V]
    after each prefix (called once per head with every beam, in order)."""
    beams: list[tuple[list[int], float]] = [([], 0.0)]  # (ranks, sum of alpha-weighted LM log-probs)
    for i, row in enumerate(lattice.tokens):
        prefixes = [[lattice.tokens[j][r] for j, r in enumerate(ranks)] for ranks, _ in beams]
        logp = next_logp(prefixes)
        lm = host(logp[:, upload(row, logp.device)].float())  # [B][topk]: a read per head (host beam search)
        grown = [(ranks + [r], lm_sum + lm[b][r]) for b, (ranks, lm_sum) in enumerate(beams) for r in range(len(row))]
        grown.sort(key=lambda g: -(_scored(lattice, g[0], g[1], alpha).score))
        beams = grown[:width]
    return [_scored(lattice, ranks, lm_sum, alpha) for ranks, lm_sum in beams]


def choose_paths(lattice: Lattice, scored: list[ScoredPath], p: int) -> list[list[int]]:
    """The p drafts to verify: plain BPD's draft first, then the best-scored other paths."""
    chosen = [lattice.drafted]
    for s in scored:
        if len(chosen) >= p:
            break
        if s.tokens not in chosen:
            chosen.append(s.tokens)
    return chosen


class NeuralLM:
    """A small neural LM (a ``DraftLM``) for local rescoring, run on a beam level by level with tree attention.

    Either the target's first e layers + its exit head (sharing the target engine: it writes
    slots past the committed length, which the verification forward then overwrites), or a
    separate draft model with its own engine, which keeps the committed tokens it has not
    seen yet in ``pending``.
    """

    def __init__(self, lm: DraftLM) -> None:
        self.engine, self.logits, self.layers, self.name = lm.engine, lm.logits, lm.layers, lm.name
        self.shared = lm.shared
        self.pending: list[int] = []
        self.parents: list[int] = []
        self.node_of: dict[tuple[int, ...], int] = {}

    def prefill(self, ids: list[int]) -> None:
        if not self.shared:
            self.pending = list(ids[:-1])

    def begin(self, root: int) -> None:
        self.root = root

    def next_logp(self, prefixes: list[list[int]]) -> torch.Tensor:
        device, base = self.engine.device, self.engine.length
        if not prefixes[0]:  # the root level: the committed tokens not seen yet, then the root
            ids = self.pending + [self.root]
            out = self.engine.forward(upload([ids], device), layers=self.layers, last_only=True)
            if not self.shared:
                self.engine.commit(len(ids))  # the root is committed output; the beams start after it
                self.pending = []
            self.parents, self.node_of = [-1], {(): 0}
            return torch.log_softmax(self.logits(out)[0, -1:], -1)
        first = len(self.parents)
        for prefix in prefixes:
            self.node_of[tuple(prefix)] = len(self.parents)
            self.parents.append(self.node_of[tuple(prefix[:-1])])
        topo = TreeTopology.from_parents(self.parents)
        offset = 0 if self.shared else -1  # a separate draft already committed the root
        depth = len(prefixes[0])
        out = self.engine.forward(
            upload([[p[-1] for p in prefixes]], device),
            start=base + first + offset,
            offsets=torch.full((1, len(prefixes)), depth + offset, device=device),
            tree_mask=topo.tensors(device).mask[first:, (0 if self.shared else 1) :],
            layers=self.layers,
        )
        return torch.log_softmax(self.logits(out)[0], -1)

    def accept(self, tokens: list[int]) -> None:
        """The draft tokens the target accepted this step (the root was committed at ``next_logp``)."""
        if not self.shared:
            self.pending = list(tokens)
