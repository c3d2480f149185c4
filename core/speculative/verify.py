"""Verification rules for speculative decoding, as pure tensor functions.

Symbols (docs/methods.md, "Draft trees"): p is the target's next-token distribution at a tree
node, q the draft's; a node has children x_1..x_k drawn from q as each rule
specifies. A rule accepts at most one child; if none, the step ends with a token
drawn from the final residual r. Every rule here is lossless: the emitted token
(accepted child, or residual draw) is distributed exactly as p.

- ``greedy`` (temperature 0): children are q's top-k; accept the child equal to argmax p.
- ``match`` (deterministic drafts at any temperature, e.g. BPD's lattice paths): children are
  fixed tokens; draw x ~ p and accept the child equal to x, else emit x. Lossless because
  the emitted token is the draw from p itself; at T = 0 it is ``greedy``.
- ``rrs`` (recursive rejection sampling, with replacement): x_j i.i.d. ~ q; r = p; accept
  x_j w.p. min(1, r(x_j)/q(x_j)); on rejection r = norm(max(r - q, 0)).
- ``rrsw`` (without replacement): x_j ~ q_j = q without x_1..x_{j-1}, renormalised; accept
  w.p. min(1, r(x_j)/q_j(x_j)); on rejection r = norm(max(r - q_j, 0)).
- ``spechub`` (k = 2): hub a = argmax q; x_1 ~ q; x_2 ~ q without a if x_1 = a, else x_2 = a.
  The pair is {a, j} with j ~ s, s(j) = q(j) / (1 - q(a)). Accept j w.p. min(1, p(j)/s(j));
  else accept a w.p. min(1, p(a)/M), M = sum_{j != a} max(s(j) - p(j), 0); else draw from
  the residual res(x) = max(p(x) - s(x), 0) for x != a, res(a) = p(a) - min(p(a), M).

A single chain (Leviathan et al.) is ``rrs`` with k = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.sampling import draw_distinct, draw_one, draws

RULES = ("greedy", "match", "rrs", "rrsw", "spechub")


@dataclass
class NodeVerdict:
    """Outcome at one node: the index of the accepted child, or None and the residual token."""

    accepted: int | None
    residual_token: int | None


def _uniform(rng: torch.Generator, device) -> float:
    return float(torch.rand((), generator=rng, device=device))


def _accepts(u: float, r_x: float, r_total: float, q_x: float, q_total: float) -> bool:
    """u < min(1, r(x) / q(x)) for weights r, q kept unnormalised with their totals (no division,
    so an exhausted residual, total 0, simply rejects)."""
    return u * r_total * q_x < r_x * q_total


def draw_children(rule: str, q: torch.Tensor, k: int, rng: torch.Generator) -> list[int]:
    """The k children a rule drafts from q [V]."""
    if rule in ("greedy", "match"):
        return torch.topk(q, k).indices.tolist()
    if rule == "rrs":
        return draws(q, rng, k)
    if rule == "rrsw":
        return draw_distinct(q, k, rng)  # cannot draw more distinct tokens than q supports
    if rule == "spechub":
        if k != 2:
            raise ValueError("SpecHub drafts exactly 2 children per node.")
        hub = int(q.argmax())
        first = draw_one(q, rng)
        if first != hub:
            return [first, hub]
        rest = q.clone()
        rest[hub] = 0
        return [hub, draw_one(rest, rng)] if bool(rest.any()) else [hub]
    raise ValueError(f"Unknown verification rule {rule!r}; known: {', '.join(RULES)}.")


def verify_greedy(p: torch.Tensor, children: list[int]) -> NodeVerdict:
    best = int(p.argmax())
    return NodeVerdict(children.index(best), None) if best in children else NodeVerdict(None, best)


def verify_match(p: torch.Tensor, children: list[int], rng: torch.Generator) -> NodeVerdict:
    x = draw_one(p, rng)
    return NodeVerdict(children.index(x), None) if x in children else NodeVerdict(None, x)


def verify_rrs(p: torch.Tensor, q: torch.Tensor, children: list[int], rng: torch.Generator) -> NodeVerdict:
    """r, the residual, is kept as weights with total r_total: r <- max(r - r_total q, 0) is
    r_total * (norm(r) - q)^+, the normalised residual scaled, and draws need no normalising."""
    r, r_total = p, 1.0
    for j, x in enumerate(children):
        if _accepts(_uniform(rng, p.device), float(r[x]), r_total, float(q[x]), 1.0):
            return NodeVerdict(j, None)
        r = torch.sub(r, q, alpha=r_total).clamp_(min=0)
        r_total = float(r.sum())
    return NodeVerdict(None, draw_one(r, rng))


def verify_rrsw(p: torch.Tensor, q: torch.Tensor, children: list[int], rng: torch.Generator) -> NodeVerdict:
    """As ``verify_rrs``, with q_j = q without the children before x_j (weights qj, total q_total)."""
    r, r_total, qj, q_total = p, 1.0, q.clone(), 1.0
    for j, x in enumerate(children):
        q_x = float(qj[x])
        if _accepts(_uniform(rng, p.device), float(r[x]), r_total, q_x, q_total):
            return NodeVerdict(j, None)
        r = torch.sub(r, qj, alpha=r_total / q_total).clamp_(min=0)
        r_total = float(r.sum())
        qj[x] = 0
        q_total -= q_x
    return NodeVerdict(None, draw_one(r, rng))


def spechub_parts(p: torch.Tensor, q: torch.Tensor) -> tuple[int, torch.Tensor, float]:
    """(hub a, s over non-hub tokens, M = sum_{j != a} max(s(j) - p(j), 0)); s(a) = 0, so the hub adds
    nothing to M."""
    hub = int(q.argmax())
    s = q.clone()
    s[hub] = 0
    s.div_(float(s.sum()) or 1.0)
    return hub, s, float((s - p).clamp_(min=0).sum())


def spechub_acceptance(p: torch.Tensor, q: torch.Tensor) -> float:
    """Closed form: sum_{j != a} min(p(j), s(j)) + min(p(a), M)."""
    hub, s, m = spechub_parts(p, q)
    both = torch.minimum(p, s)  # s(a) = 0: the hub adds nothing
    return float(both.sum()) + min(float(p[hub]), m)


def verify_spechub(p: torch.Tensor, q: torch.Tensor, children: list[int], rng: torch.Generator) -> NodeVerdict:
    if len(children) == 1:  # q put all its mass on the hub: plain rejection sampling of the hub
        return verify_rrs(p, q, children, rng)
    hub = int(q.argmax())
    j_index = 0 if children[0] != hub else 1
    j = children[j_index]
    # u < p(j) / s(j) with s(j) = q(j) / (1 - q(a)): s over the whole vocabulary only after a rejection
    if _accepts(_uniform(rng, p.device), float(p[j]), 1.0, float(q[j]), 1.0 - float(q[hub])):
        return NodeVerdict(j_index, None)
    _, s, m = spechub_parts(p, q)
    p_hub = float(p[hub])
    if _accepts(_uniform(rng, p.device), p_hub, 1.0, m, 1.0):
        return NodeVerdict(1 - j_index, None)
    res = (p - s).clamp_(min=0)
    res[hub] = max(p_hub - m, 0.0)
    return NodeVerdict(None, draw_one(res, rng))


def verify_node(rule: str, p: torch.Tensor, q: torch.Tensor, children: list[int], rng: torch.Generator) -> NodeVerdict:
    """Apply ``rule`` at one node: p, q are [V] float32 distributions; children drawn by ``draw_children``."""
    if rule == "greedy":
        return verify_greedy(p, children)
    if rule == "match":
        return verify_match(p, children, rng)
    if rule == "rrs":
        return verify_rrs(p, q, children, rng)
    if rule == "rrsw":
        return verify_rrsw(p, q, children, rng)
    if rule == "spechub":
        return verify_spechub(p, q, children, rng)
    raise ValueError(f"Unknown verification rule {rule!r}; known: {', '.join(RULES)}.")


def greedy_tree(
    logits: torch.Tensor, tokens: torch.Tensor, parent: torch.Tensor, ancestors: torch.Tensor, offered: torch.Tensor
) -> tuple[list[bool], list[int]]:
    """The greedy rule at every node of a tree at once, on the logits' device, read back once.

    logits [N, V], tokens [N], parent [N] (root -1), ancestors [N, N] (ancestor-or-self), offered [N] (a child
    the draft really offered, not a padding copy). With a_i = argmax p_i, the target's token after node i, node
    i matches when x_i = a_{parent(i)} and no earlier offered sibling holds x_i (the walk takes the first
    equal child); it is accepted when every node from the root to it matches. At most one child of a node
    matches, so the accepted nodes form one path. Returns per node (accepted?, a_i)."""
    n = tokens.shape[0]
    best = logits.argmax(-1)
    order = torch.arange(n, device=tokens.device)
    twin = (parent[:, None] == parent[None]) & (tokens[:, None] == tokens[None]) & (order[None] < order[:, None])
    match = offered & ~(twin & offered[None]).any(-1) & (tokens == best[parent.clamp(min=0)])
    match[0] = True
    on_path = ~(ancestors & ~match[None]).any(-1)
    flags, best_ids = torch.stack([on_path.long(), best]).tolist()
    return [bool(f) for f in flags], best_ids


@dataclass
class Walk:
    nodes: list[int]  # accepted path, root first
    final_token: int
    final_kind: str  # "bonus" or "resampled"
    examined: dict[int, int]  # node -> how many of its children the rule looked at (for colouring)
    p: dict[int, torch.Tensor]  # node -> target distribution at that node
