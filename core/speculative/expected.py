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

from core.speculative.verify import spechub_acceptance

EXACT_RULES = ("rrs", "rrsw", "spechub")


def beta(r: torch.Tensor, q: torch.Tensor) -> float:
    """sum_x min(r(x), q(x)): the chance one child drawn from q is accepted against residual r."""
    return float(torch.minimum(r, q).sum())


def _residual(r: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    res = torch.clamp(r - q, min=0)
    total = res.sum()
    return res / total if total > 0 else res


def rrs_acceptance(p: torch.Tensor, q: torch.Tensor, k: int) -> float:
    """1 - prod_j (1 - beta(r_{j-1}, q)) over k i.i.d. draws."""
    r, miss = p.double(), 1.0
    q = q.double()
    for _ in range(k):
        miss *= 1.0 - beta(r, q)
        r = _residual(r, q)
    return 1.0 - miss


def rrsw_acceptance(p: torch.Tensor, q: torch.Tensor, k: int) -> float | None:
    """Exact for k <= 2 (see the module docstring); None above."""
    p, q = p.double(), q.double()
    first = beta(p, q)
    if k == 1:
        return first
    if k > 2:
        return None
    support = q > 0
    if int(support.sum()) < 2:  # q cannot draw two distinct children: one child only
        return first
    r1 = _residual(p, q)
    ratio = torch.where(support, r1 / q.clamp_min(1e-300), torch.full_like(q, float("inf")))
    order = torch.argsort(ratio)
    ratio_s, r_s, q_s = ratio[order], r1[order], q[order]
    r_cum = torch.cat([r_s.new_zeros(1), torch.cumsum(r_s, 0)])
    q_cum = torch.cat([q_s.new_zeros(1), torch.cumsum(q_s, 0)])
    xs = torch.nonzero(support).flatten()
    c = 1.0 / (1.0 - q[xs]).clamp_min(1e-300)
    idx = torch.searchsorted(ratio_s.contiguous(), c, right=True)  # y with r1/q <= c give r1(y); others c q(y)
    g = r_cum[idx] + c * (q_cum[-1] - q_cum[idx])
    second = g - torch.minimum(r1[xs], c * q[xs])
    rejected = q[xs] - torch.minimum(p[xs], q[xs])
    return first + float((rejected * second).sum())


def expected_acceptance(p: torch.Tensor, q: torch.Tensor, k: int) -> dict[str, float | None]:
    """{rule: exact P(a child is accepted)} for RRS, RRSw and SpecHub on the same p, q [V] and k children."""
    single = int((q > 0).sum()) < 2  # SpecHub then verifies the hub alone, by plain rejection sampling
    hub = rrs_acceptance(p, q, 1) if single else spechub_acceptance(p, q)
    return {"rrs": rrs_acceptance(p, q, k), "rrsw": rrsw_acceptance(p, q, k), "spechub": hub if k == 2 else None}


class ExpectedTally:
    """Sums of each rule's exact acceptance per tree depth, over a run's verified nodes."""

    def __init__(self) -> None:
        self.sums: dict[str, list[float]] = {r: [] for r in EXACT_RULES}
        self.counts: dict[str, list[int]] = {r: [] for r in EXACT_RULES}

    def add(self, depth: int, figures: dict[str, float | None]) -> None:
        for rule, value in figures.items():
            if value is None:
                continue
            sums, counts = self.sums[rule], self.counts[rule]
            while len(sums) <= depth:
                sums.append(0.0)
                counts.append(0)
            sums[depth] += value
            counts[depth] += 1

    def summary(self) -> dict:
        """{rule: {"mean", "by_depth", "nodes_by_depth"}} for the rules that had figures."""
        out = {}
        for rule in EXACT_RULES:
            counts = self.counts[rule]
            if not any(counts):
                continue
            out[rule] = {
                "mean": sum(self.sums[rule]) / sum(counts),
                "by_depth": [s / n if n else None for s, n in zip(self.sums[rule], counts, strict=True)],
                "nodes_by_depth": list(counts),
            }
        return out
