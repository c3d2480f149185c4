"""Verification rules as objects, every one in ``RULES`` (docs/methods.md, "Draft trees").

Symbols: p is the target's next-token distribution at a tree node, q the draft's; a node has children x_1..x_k
drawn from q as each rule specifies. A rule accepts at most one child; if none, the step ends with a token drawn
from the final residual r. Every rule here is lossless: the emitted token (accepted child, or residual draw) is
distributed exactly as p.

- ``greedy`` (temperature 0): children are q's top-k; accept the child equal to argmax p.
- ``match`` (deterministic drafts at any temperature, e.g. BPD's lattice paths): children are fixed tokens;
  draw x ~ p and accept the child equal to x, else emit x. Lossless because the emitted token is the draw from p
  itself; at T = 0 it is ``greedy``.
- ``rrs`` (recursive rejection sampling, with replacement): x_j i.i.d. ~ q; r = p; accept x_j w.p.
  min(1, r(x_j)/q(x_j)); on rejection r = norm(max(r - q, 0)).
- ``rrsw`` (without replacement): x_j ~ q_j = q without x_1..x_{j-1}, renormalised; accept w.p.
  min(1, r(x_j)/q_j(x_j)); on rejection r = norm(max(r - q_j, 0)).
- ``spechub`` (k = 2): hub a = argmax q; x_1 ~ q; x_2 ~ q without a if x_1 = a, else x_2 = a. The pair is
  {a, j} with j ~ s, s(j) = q(j) / (1 - q(a)). Accept j w.p. min(1, p(j)/s(j)); else accept a w.p.
  min(1, p(a)/M), M = sum_{j != a} max(s(j) - p(j), 0); else draw from the residual res(x) = max(p(x) - s(x), 0)
  for x != a, res(a) = p(a) - min(p(a), M).

A single chain (Leviathan et al.) is ``rrs`` with k = 1.

Everything runs on the device with no read: a rule draws a level's children for M nodes at once (``children``:
q [M, V] and uniforms u [M, k]) and decides M nodes at once (``node``: p, q [M, V], the children [M, k], which of
them were really drawn, uniforms [M, k + 1]), so the tree walk (``walk``) and the distribution tests use the
same code. Weights stay unnormalised with their totals where a division could meet zero (an exhausted residual
simply rejects). A new rule is one class here and one line in ``RULES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from core.sampling import draw, target_probs, uniforms


def pick(v: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """v[m, index[m]] for v [M, V] and index [M] (a gather: no read)."""
    return v.gather(1, index[:, None])[:, 0]


def first_match(kids: torch.Tensor, offered: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The first offered child equal to x, per row, or -1: kids, offered [M, k], x [M]."""
    hit = offered & (kids == x[:, None])
    k = kids.shape[1]
    index = torch.arange(k, device=kids.device).expand_as(hit)
    return torch.where(hit, index, k).amin(1).masked_fill(~hit.any(1), -1)


class Rule:
    """A verification rule: how a node's k children are drawn from q and how one of them is accepted."""

    name: ClassVar[str]
    title: ClassVar[str]
    lossless: ClassVar[bool] = True
    uses_q: ClassVar[bool] = True  # False: q only shapes the draft (greedy, match)
    exact: ClassVar[bool] = False  # its exact acceptance is computed (``core.speculative.expected``)

    def check(self, k: int) -> None:
        """Refuse a tree this rule cannot verify (one sentence)."""

    def children(self, q: torch.Tensor, k: int, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k children [M, k] of M nodes from q [M, V] with uniforms u [M, k], and which were really drawn (a
        rule may draw fewer distinct ones than k; the rest repeat the last and are never offered)."""
        top = torch.topk(q, k, dim=-1).indices
        return top, torch.ones_like(top, dtype=torch.bool)

    def node(self, p, q, kids, offered, u) -> tuple[torch.Tensor, torch.Tensor]:
        """At M nodes: the accepted child's index [M] (-1: none) and the token to emit when none is accepted
        [M]. p, q [M, V]; kids, offered [M, k]; u [M, k + 1]."""
        raise NotImplementedError

    def evaluate(self, tree, logits: torch.Tensor, sampling, rng: torch.Generator) -> Walk:
        """The step's third call: the rule from the root down (``walk``)."""
        p = target_probs(logits, sampling)
        k = max(tree.topology.k, 1)
        u = uniforms(rng, (tree.topology.depth + 1) * (k + 1), logits.device).view(-1, k + 1)
        return walk(self, tree, p, u)


class Greedy(Rule):
    name, title, uses_q = "greedy", "greedy (T = 0)", False

    def node(self, p, q, kids, offered, u):
        best = p.argmax(-1)
        return first_match(kids, offered, best), best

    def evaluate(self, tree, logits, sampling, rng) -> Walk:
        """Every node at once (``greedy_tree``): a_i = argmax p_i; the same path as the walk."""
        return greedy_tree(tree, logits)


class Match(Rule):
    name, title, uses_q = "match", "match (draw from p, keep the child that matches)", False

    def node(self, p, q, kids, offered, u):
        x = draw(p, u[:, 0])
        return first_match(kids, offered, x), x


class RRS(Rule):
    name, title, exact = "rrs", "RRS (with replacement)", True

    def children(self, q, k, u):
        drawn = draw(q[:, None, :].expand(-1, k, -1), u)
        return drawn, torch.ones_like(drawn, dtype=torch.bool)

    def node(self, p, q, kids, offered, u):
        """r, the residual, is kept as weights with total r_total: r <- max(r - r_total q, 0) is
        r_total * (norm(r) - q)^+, the normalised residual scaled, and draws need no normalising."""
        return self._sequential(p, q, kids, offered, u, distinct=False)

    @staticmethod
    def _sequential(p, q, kids, offered, u, distinct: bool):
        """The children in turn: accept x_j if u_j r_total q_j(x_j) < r(x_j) q_j_total; on rejection r <-
        max(r - (r_total / q_total) q_j, 0), and (without replacement) q_j loses x_j."""
        M, k = kids.shape
        r, r_total = p, torch.ones(M, dtype=p.dtype, device=p.device)
        qj, q_total = q, torch.ones(M, dtype=q.dtype, device=q.device)
        accepted = torch.full((M,), -1, dtype=torch.long, device=p.device)
        for j in range(k):
            x = kids[:, j]
            q_x = pick(qj, x)
            test = u[:, j] * r_total * q_x < pick(r, x) * q_total
            open_ = offered[:, j] & (accepted < 0)
            accepted = torch.where(open_ & test, j, accepted)
            rejected = open_ & ~test
            residual = (r - qj * (r_total / q_total)[:, None]).clamp_(min=0)
            r = torch.where(rejected[:, None], residual, r)
            r_total = torch.where(rejected, residual.sum(-1), r_total)
            if distinct:
                qj = torch.where(rejected[:, None], qj.scatter(1, x[:, None], 0.0), qj)
                q_total = torch.where(rejected, q_total - q_x, q_total)
        return accepted, draw(r, u[:, k])


class RRSw(Rule):
    name, title, exact = "rrsw", "RRS without replacement", True

    def children(self, q, k, u):
        """Each draw from what is left: fewer than k distinct children when q has fewer tokens with mass."""
        left, out = q.clone(), []
        support = torch.count_nonzero(q, dim=-1)
        for j in range(k):
            x = draw(left, u[:, j])
            x = torch.where(support > j, x, out[-1]) if j else x
            out.append(x)
            left.scatter_(1, x[:, None], 0.0)
        kids = torch.stack(out, 1)
        return kids, torch.arange(k, device=q.device)[None] < support[:, None]

    def node(self, p, q, kids, offered, u):
        return RRS._sequential(p, q, kids, offered, u, distinct=True)


class SpecHub(Rule):
    name, title, exact = "spechub", "SpecHub (k = 2)", True

    def check(self, k: int) -> None:
        if k != 2:
            raise ValueError("SpecHub verifies pairs: set k = 2.")

    def children(self, q, k, u):
        self.check(k)
        hub = q.argmax(-1)
        first = draw(q, u[:, 0])
        rest = q.scatter(1, hub[:, None], 0.0)
        second = draw(rest, u[:, 1])
        off_hub = first != hub
        kids = torch.stack([torch.where(off_hub, first, hub), torch.where(off_hub, hub, second)], 1)
        offered = torch.stack([torch.ones_like(off_hub), off_hub | (rest.sum(-1) > 0)], 1)
        return kids, offered

    def node(self, p, q, kids, offered, u):
        """The pair {a, j}; a single child (q all on the hub) is plain rejection sampling of the hub."""
        hub = q.argmax(-1)
        j_index = torch.where(kids[:, 0] != hub, 0, 1)
        j = pick(kids, j_index)
        q_hub, p_hub = pick(q, hub), pick(p, hub)
        s, m = spechub_parts(p, q, hub)
        # u < p(j) / s(j) with s(j) = q(j) / (1 - q(a)); then u < p(a) / M
        take_j = u[:, 0] * pick(q, j) < pick(p, j) * (1 - q_hub)
        take_hub = u[:, 1] * m < p_hub
        accepted = torch.where(take_j, j_index, torch.where(take_hub, 1 - j_index, -1))
        residual = (p - s).clamp_(min=0).scatter(1, hub[:, None], (p_hub - m).clamp(min=0)[:, None])
        x = draw(residual, u[:, 2])
        single = ~offered[:, 1]
        one, x_one = RRS._sequential(p, q, kids[:, :1], offered[:, :1], u[:, [0, 2]], distinct=False)
        return torch.where(single, one, accepted), torch.where(single, x_one, x)


def spechub_parts(p: torch.Tensor, q: torch.Tensor, hub: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(s [M, V] over the non-hub tokens, s(a) = 0; M [M] = sum_{j != a} max(s(j) - p(j), 0)) for p, q [M, V]."""
    s = q.scatter(1, hub[:, None], 0.0)
    total = s.sum(-1, keepdim=True)
    s = s / torch.where(total > 0, total, torch.ones_like(total))
    return s, (s - p).clamp(min=0).sum(-1)


RULES: list[Rule] = [Greedy(), Match(), RRS(), RRSw(), SpecHub()]
BY_NAME = {r.name: r for r in RULES}


def rule(name: str) -> Rule:
    if name not in BY_NAME:
        raise ValueError(f"Unknown verification rule {name!r}; known: {', '.join(BY_NAME)}.")
    return BY_NAME[name]


@dataclass
class Walk:
    """A step's evaluation, on the device until the step's one read: the accepted path [D + 1] (root first;
    entries past ``count`` are 0), ``count`` [] (nodes on it, root included), the ``final`` token [] that ends
    the step, ``examined`` [D + 1] (how many of each path node's children the rule looked at) and ``p_token``
    [N] (p of each node's token under its parent's p; -1 where p was not computed)."""

    path: torch.Tensor
    count: torch.Tensor
    final: torch.Tensor
    examined: torch.Tensor
    p_token: torch.Tensor


def walk(rule: Rule, tree, p: torch.Tensor, u: torch.Tensor) -> Walk:
    """The rule from the root down, one level per iteration, on the device: at the current node its offered
    children are decided by ``rule.node``; an accepted child becomes the next node, a rejection (or a leaf)
    ends the walk with the node's emitted token (a residual draw, or at a leaf a draw from p: the bonus).
    p [N, V]; u [D + 1, k + 1]."""
    topo, device = tree.topology, p.device
    t = topo.tensors(device)
    D = topo.depth
    offered = tree.offered if tree.offered is not None else torch.ones(topo.size, dtype=torch.bool, device=device)
    q = tree.q if tree.q is not None and tree.q.shape[0] else p  # [N_int, V]: a leaf's row is never read
    node = torch.zeros(1, dtype=torch.long, device=device)
    alive = torch.ones(1, dtype=torch.bool, device=device)
    final = torch.zeros(1, dtype=torch.long, device=device)
    path = torch.zeros(D + 1, dtype=torch.long, device=device)
    examined = torch.zeros(D + 1, dtype=torch.long, device=device)
    for d in range(D + 1):
        kids = t.children.index_select(0, node)  # [1, k], -1 where there is none
        ok = (kids >= 0) & offered[kids.clamp(min=0)]
        safe = kids.clamp(min=0)
        q_node = q.index_select(0, node.clamp(max=q.shape[0] - 1))
        accepted, x = rule.node(p.index_select(0, node), q_node, tree.tokens[safe], ok, u[d : d + 1])
        took = alive & (accepted >= 0)
        final = torch.where(alive & ~took, x, final)
        examined[d : d + 1] = torch.where(alive, torch.where(accepted >= 0, accepted + 1, ok.sum(-1)), 0)
        nxt = pick(safe, accepted.clamp(min=0))
        if d < D:
            path[d + 1 : d + 2] = torch.where(took, nxt, 0)
        node = torch.where(took, nxt, node)
        alive = took
    count = 1 + (path[1:] > 0).sum()
    p_token = torch.cat([torch.ones(1, dtype=p.dtype, device=device), p[t.parent[1:], tree.tokens[1:]]])
    return Walk(path, count, final[0], examined, p_token)


def greedy_tree(tree, logits: torch.Tensor) -> Walk:
    """The greedy rule at every node of a tree at once: with a_i = argmax p_i, the target's token after node i,
    node i matches when x_i = a_{parent(i)} and no earlier offered sibling holds x_i (the walk takes the first
    equal child); it is accepted when every node from the root to it matches. At most one child of a node
    matches, so the accepted nodes form one path: its node at depth d is the accepted node of that depth."""
    topo, device = tree.topology, logits.device
    t = topo.tensors(device)
    n, D = topo.size, topo.depth
    tokens = tree.tokens
    offered = tree.offered if tree.offered is not None else torch.ones(n, dtype=torch.bool, device=device)
    best = logits.argmax(-1)  # [N]
    parent = t.parent.clamp(min=0)
    order = torch.arange(n, device=device)
    twin = (t.parent[:, None] == t.parent[None]) & (tokens[:, None] == tokens[None]) & (order[None] < order[:, None])
    match = offered & ~(twin & offered[None]).any(-1) & (tokens == best[parent])
    match[0] = True
    on_path = ~(t.mask & ~match[None]).any(-1)  # [N]
    at_depth = on_path[None, :] & (t.depth[None, :] == torch.arange(D + 1, device=device)[:, None])  # [D + 1, N]
    path = torch.where(at_depth, order, n).amin(1).clamp(max=n - 1) * at_depth.any(1)
    count = on_path.sum()
    last = path.gather(0, (count - 1).view(1))
    kids = t.children.index_select(0, last)
    ok = (kids >= 0) & offered[kids.clamp(min=0)]
    # examined: a path node's accepted child's rank + 1; the last node's offered children (all looked at)
    rank = (t.rank + 1).index_select(0, path)
    examined = torch.cat([rank[1:], ok.sum(-1)]) * (torch.arange(D + 1, device=device) < count)
    examined = examined.scatter(0, (count - 1).view(1), ok.sum(-1))
    p_token = (tokens == best[parent]).to(logits.dtype).masked_fill(t.parent < 0, 1.0)
    return Walk(path, count, best.gather(0, last)[0], examined, p_token)
