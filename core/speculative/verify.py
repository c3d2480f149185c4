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

from core.sampling import draw, draw_distinct, draw_one

RULES = ("greedy", "match", "rrs", "rrsw", "spechub")


@dataclass
class NodeVerdict:
    """Outcome at one node: the index of the accepted child, or None and the residual token."""

    accepted: int | None
    residual_token: int | None


def _norm(x: torch.Tensor) -> torch.Tensor:
    total = x.sum()
    return x / total if total > 0 else x


def _uniform(rng: torch.Generator, device) -> float:
    return float(torch.rand((), generator=rng, device=device))


def draw_children(rule: str, q: torch.Tensor, k: int, rng: torch.Generator) -> list[int]:
    """The k children a rule drafts from q [V]."""
    if rule in ("greedy", "match"):
        return torch.topk(q, k).indices.tolist()
    if rule == "rrs":
        return draw(q, rng, k).tolist()
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
        return [hub, draw_one(_norm(rest), rng)] if rest.sum() > 0 else [hub]
    raise ValueError(f"Unknown verification rule {rule!r}; known: {', '.join(RULES)}.")


def verify_greedy(p: torch.Tensor, children: list[int]) -> NodeVerdict:
    best = int(p.argmax())
    return NodeVerdict(children.index(best), None) if best in children else NodeVerdict(None, best)


def verify_match(p: torch.Tensor, children: list[int], rng: torch.Generator) -> NodeVerdict:
    x = draw_one(p, rng)
    return NodeVerdict(children.index(x), None) if x in children else NodeVerdict(None, x)


def verify_rrs(p: torch.Tensor, q: torch.Tensor, children: list[int], rng: torch.Generator) -> NodeVerdict:
    r = p.clone()
    for j, x in enumerate(children):
        if _uniform(rng, p.device) < min(1.0, float(r[x] / q[x])):
            return NodeVerdict(j, None)
        r = _norm(torch.clamp(r - q, min=0))
    return NodeVerdict(None, draw_one(r, rng))


def verify_rrsw(p: torch.Tensor, q: torch.Tensor, children: list[int], rng: torch.Generator) -> NodeVerdict:
    r, qj = p.clone(), q.clone()
    for j, x in enumerate(children):
        if _uniform(rng, p.device) < min(1.0, float(r[x] / qj[x])):
            return NodeVerdict(j, None)
        r = _norm(torch.clamp(r - qj, min=0))
        qj[x] = 0
        qj = _norm(qj)
    return NodeVerdict(None, draw_one(r, rng))


def spechub_parts(p: torch.Tensor, q: torch.Tensor) -> tuple[int, torch.Tensor, float]:
    """(hub a, s over non-hub tokens, M = sum_{j != a} max(s(j) - p(j), 0))."""
    hub = int(q.argmax())
    s = q.clone()
    s[hub] = 0
    s = _norm(s)
    leftover = torch.clamp(s - p, min=0)
    leftover[hub] = 0
    return hub, s, float(leftover.sum())


def spechub_acceptance(p: torch.Tensor, q: torch.Tensor) -> float:
    """Closed form: sum_{j != a} min(p(j), s(j)) + min(p(a), M)."""
    hub, s, m = spechub_parts(p, q)
    both = torch.minimum(p, s)
    both[hub] = 0
    return float(both.sum()) + min(float(p[hub]), m)


def verify_spechub(p: torch.Tensor, q: torch.Tensor, children: list[int], rng: torch.Generator) -> NodeVerdict:
    hub, s, m = spechub_parts(p, q)
    if len(children) == 1:  # q put all its mass on the hub: plain rejection sampling of the hub
        return verify_rrs(p, q, children, rng)
    j_index = 0 if children[0] != hub else 1
    j = children[j_index]
    if _uniform(rng, p.device) < min(1.0, float(p[j] / s[j])):
        return NodeVerdict(j_index, None)
    if m > 0 and _uniform(rng, p.device) < min(1.0, float(p[hub]) / m):
        return NodeVerdict(1 - j_index, None)
    res = torch.clamp(p - s, min=0)
    res[hub] = max(float(p[hub]) - min(float(p[hub]), m), 0.0)
    return NodeVerdict(None, draw_one(_norm(res), rng))


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


@dataclass
class Walk:
    nodes: list[int]  # accepted path, root first
    final_token: int
    final_kind: str  # "bonus" or "resampled"
    examined: dict[int, int]  # node -> how many of its children the rule looked at (for colouring)
    p: dict[int, torch.Tensor]  # node -> target distribution at that node
