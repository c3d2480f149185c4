"""Each rule's exact probability of accepting a child at one node, from that node's p and q.

A sampled run accepts or rejects; a few hundred steps cannot separate rules whose acceptance
differs by a few hundredths. The probability itself can be computed from the same p and q
(docs/methods.md, "Draft trees"), with beta(r, q) = sum_x min(r(x), q(x)):

- RRS (k draws with replacement): the residuals r_0 = p, r_j = norm(max(r_{j-1} - q, 0)) do not
  depend on the draws, so  P = 1 - prod_{j=1..k} (1 - beta(r_{j-1}, q)).
- RRSw (k = 2, without replacement): the first child x_1 ~ q is accepted w.p. min(1, p/q); after a
  rejection r_1 = norm(max(p - q, 0)) and the second child is drawn from q_1 = q without x_1, so
      P = beta(p, q) + sum_{x_1} (q(x_1) - min(p(x_1), q(x_1))) * beta(r_1, q_1^{x_1}),
  and beta(r_1, q_1^{x}) = G(1 / (1 - q(x))) - min(r_1(x), q(x) / (1 - q(x))) with
  G(c) = sum_y min(r_1(y), c q(y)): one sort of r_1 / q gives G for every x at once.
- SpecHub (k = 2): sum_{j != a} min(p(j), s(j)) + min(p(a), M) (``verify.spechub_acceptance``).

k = 1 is the single-chain rule (all three equal beta(p, q)). ``expected_acceptance`` returns None
for RRSw with k > 2 (the sum over draws grows as V^(k-1)) and for SpecHub with k != 2.
"""

from __future__ import annotations

import torch

from core.engine.sync import host
from core.sampling import target_probs
from core.speculative.rules import spechub_parts

EXACT_RULES = ("rrs", "rrsw", "spechub")


def beta(r: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """sum_x min(r(x), q(x)) per row [M]: the chance one child drawn from q is accepted against residual r."""
    return torch.minimum(r, q).sum(-1)


def _residual(r: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    res = torch.clamp(r - q, min=0)
    total = res.sum(-1, keepdim=True)
    return torch.where(total > 0, res / torch.where(total > 0, total, 1.0), res)


def rrs_acceptance(p: torch.Tensor, q: torch.Tensor, k: int) -> torch.Tensor:
    """1 - prod_j (1 - beta(r_{j-1}, q)) over k i.i.d. draws, per row of p, q [M, V]."""
    r, q = p.double(), q.double()
    miss = torch.ones(r.shape[:-1], dtype=torch.float64, device=r.device)
    for _ in range(k):
        miss = miss * (1.0 - beta(r, q))
        r = _residual(r, q)
    return 1.0 - miss


def rrsw_acceptance(p: torch.Tensor, q: torch.Tensor, k: int) -> torch.Tensor | None:
    """Exact for k <= 2 (see the module docstring), per row of p, q [M, V]; None above."""
    p, q = p.double(), q.double()
    first = beta(p, q)
    if k == 1:
        return first
    if k > 2:
        return None
    support = q > 0
    r1 = _residual(p, q)
    ratio = torch.where(support, r1 / q.clamp_min(1e-300), torch.full_like(q, float("inf")))
    order = torch.argsort(ratio, dim=-1)
    ratio_s, r_s, q_s = ratio.gather(-1, order), r1.gather(-1, order), q.gather(-1, order)
    zero = torch.zeros_like(q[..., :1])
    r_cum = torch.cat([zero, torch.cumsum(r_s, -1)], -1)
    q_cum = torch.cat([zero, torch.cumsum(q_s, -1)], -1)
    c = 1.0 / (1.0 - q).clamp_min(1e-300)  # per x: q_1 = q without x is q / (1 - q(x)) elsewhere
    idx = torch.searchsorted(ratio_s.contiguous(), c.contiguous(), right=True)  # y with r1/q <= c give r1(y)
    g = r_cum.gather(-1, idx) + c * (q_cum[..., -1:] - q_cum.gather(-1, idx))
    second = g - torch.minimum(r1, c * q)
    rejected = q - torch.minimum(p, q)
    two = first + (rejected * second * support).sum(-1)
    return torch.where(support.sum(-1) >= 2, two, first)  # q that cannot draw two distinct children: one child


def spechub_acceptance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Closed form per row: sum_{j != a} min(p(j), s(j)) + min(p(a), M); a q with one token of mass verifies
    the hub alone, by plain rejection sampling."""
    p, q = p.double(), q.double()
    hub = q.argmax(-1)
    s, m = spechub_parts(p, q, hub)
    pair = torch.minimum(p, s).sum(-1) + torch.minimum(p.gather(-1, hub[:, None])[:, 0], m)
    return torch.where((q > 0).sum(-1) >= 2, pair, rrs_acceptance(p, q, 1))


def expected_acceptance(p: torch.Tensor, q: torch.Tensor, k: int) -> dict[str, torch.Tensor | None]:
    """{rule: exact P(a child is accepted)} for RRS, RRSw and SpecHub on the same p, q ([V] or [M, V]) and k
    children: 0-d or [M] tensors, None where there is no closed form."""
    rows = p.dim() == 1
    p, q = (p[None], q[None]) if rows else (p, q)
    out = {"rrs": rrs_acceptance(p, q, k), "rrsw": rrsw_acceptance(p, q, k), "spechub": spechub_acceptance(p, q) if k == 2 else None}
    return {rule: (v[0] if rows and v is not None else v) for rule, v in out.items()}


class ExpectedTally:
    """Sums of each rule's exact acceptance per tree depth over a run's verified nodes, kept on the device and
    read once, at the end (``summary``)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: torch.Tensor | None = None

    def add(self, tree, walk, logits: torch.Tensor, sampling) -> None:
        """The step's verified nodes: the accepted path's internal nodes (p from the verify logits, q the
        draft's), each rule's exact acceptance there with the tree's k."""
        topo = tree.topology
        if tree.q is None or not topo.depth:
            return
        nodes = walk.path[: topo.depth]  # a full tree's internal nodes are its depths 0..D-1
        verified = (torch.arange(topo.depth, device=self.device) < walk.count).double()
        p = target_probs(logits.index_select(0, nodes), sampling)
        figures = expected_acceptance(p, tree.q.index_select(0, nodes), topo.k)
        if self.counts is None:
            self.counts = torch.zeros(topo.depth, dtype=torch.float64, device=self.device)
        self.counts += verified
        for rule, value in figures.items():
            if value is not None:
                self.sums[rule] = self.sums.get(rule, torch.zeros_like(self.counts)) + value * verified

    def summary(self) -> dict:
        """{rule: {"mean", "by_depth", "nodes_by_depth"}} for the rules that had figures (one read)."""
        if self.counts is None or not self.sums:
            return {}
        names = list(self.sums)
        table = host(torch.stack([self.counts, *(self.sums[n] for n in names)]))
        counts = [int(c) for c in table[0]]
        out = {}
        for name, sums in zip(names, table[1:], strict=True):
            out[name] = {
                "mean": sum(sums) / max(sum(counts), 1),
                "by_depth": [s / n if n else None for s, n in zip(sums, counts, strict=True)],
                "nodes_by_depth": counts,
            }
        return out
