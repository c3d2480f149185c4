"""Losslessness of every verification rule by distribution tests on hand-made p and q."""

import pytest
import torch

from core.speculative.expected import ExpectedTally, expected_acceptance
from core.speculative.verify import NodeVerdict, draw_children, spechub_acceptance, verify_node

P = torch.tensor([0.30, 0.25, 0.20, 0.12, 0.08, 0.05])
Q = torch.tensor([0.05, 0.10, 0.40, 0.05, 0.30, 0.10])  # a draft that disagrees with p on purpose
# a reduced draft vocabulary: q has no mass on the two tokens p favours most (they come from the residual)
Q_REDUCED = torch.tensor([0.0, 0.0, 0.45, 0.10, 0.30, 0.15])
N = 100_000
CRITICAL = 20.5  # chi-square, 5 degrees of freedom, p = 0.001


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def emitted(rule, p, q, k, gen, verify=verify_node):
    children = draw_children(rule, q, k, gen)
    verdict = verify(rule, p, q, children, gen)
    return (children[verdict.accepted], True) if verdict.accepted is not None else (verdict.residual_token, False)


def histogram(rule, k, verify=verify_node, p=P, q=Q, seed=0, n=N):
    gen = torch.Generator().manual_seed(seed)
    counts, accepted = [0] * len(p), 0  # Python counts: a tensor update per draw costs as much as a rule's step
    for _ in range(n):
        tok, acc = emitted(rule, p, q, k, gen, verify)
        counts[tok] += 1
        accepted += acc
    return torch.tensor(counts, dtype=torch.float32), accepted / n


@pytest.mark.slow
@pytest.mark.parametrize("rule, k", [("match", 2), ("rrs", 1), ("rrs", 3), ("rrsw", 2), ("rrsw", 3), ("spechub", 2)])
def test_rule_emits_tokens_distributed_as_p(rule, k):
    counts, rate = histogram(rule, k)
    assert chi_square(counts, P) < CRITICAL
    exact = expected_acceptance(P, Q, k).get(rule)
    if exact is not None:  # each rule's exact acceptance probability against the same 100,000 draws
        assert abs(rate - exact) < 4 * (exact * (1 - exact) / N) ** 0.5, (rule, k, rate, exact)


@pytest.mark.slow
@pytest.mark.parametrize("rule, k", [("rrs", 1), ("rrs", 2), ("rrsw", 2), ("spechub", 2)])
def test_q_with_no_mass_where_p_favours_stays_lossless_and_exact(rule, k):
    """A reduced draft vocabulary: q is zero on tokens 0 and 1, which hold 55% of p. They can only be emitted
    from the residual; the emitted tokens must still follow p, and acceptance its exact rate."""
    counts, rate = histogram(rule, k, q=Q_REDUCED, seed=5)
    assert chi_square(counts, P) < CRITICAL
    exact = expected_acceptance(P, Q_REDUCED, k)[rule]
    assert abs(rate - exact) < 4 * (exact * (1 - exact) / N) ** 0.5, (rule, k, rate, exact)
    assert exact < 1 - 0.55 + 1e-6  # at most the mass p puts where q can draw


def test_exact_acceptance_by_hand_and_its_order():
    """k = 1: every rule is beta(p, q) = sum min(p, q); RRS with two draws: 1 - (1 - b1)(1 - b2) with the
    residual between; the multi-draft rules beat a single draft."""
    one = expected_acceptance(P, Q, 1)
    b1 = float(torch.minimum(P, Q).sum())
    assert one["rrs"] == pytest.approx(b1) and one["rrsw"] == pytest.approx(b1) and one["spechub"] is None
    r1 = torch.clamp(P - Q, min=0)
    r1 = r1 / r1.sum()
    b2 = float(torch.minimum(r1, Q).sum())
    two = expected_acceptance(P, Q, 2)
    assert two["rrs"] == pytest.approx(1 - (1 - b1) * (1 - b2))
    assert min(two["rrs"], two["rrsw"], two["spechub"]) > b1
    assert expected_acceptance(P, Q, 3)["rrsw"] is None  # no closed form above two drafts


def test_identical_p_and_q_are_always_accepted_and_tally_pools_by_depth():
    assert expected_acceptance(P, P, 2)["rrs"] == pytest.approx(1.0)
    tally = ExpectedTally()
    tally.add(0, {"rrs": 0.5, "rrsw": 0.7, "spechub": None})
    tally.add(0, {"rrs": 0.7, "rrsw": 0.9, "spechub": None})
    tally.add(2, {"rrs": 0.1, "rrsw": 0.2, "spechub": None})
    out = tally.summary()
    assert "spechub" not in out
    assert out["rrs"]["by_depth"] == [pytest.approx(0.6), None, pytest.approx(0.1)]
    assert out["rrs"]["nodes_by_depth"] == [2, 0, 1] and out["rrsw"]["mean"] == pytest.approx(0.6)


@pytest.mark.slow
def test_a_deliberately_wrong_rule_fails_the_same_test():
    """RRS that forgets to subtract q after a rejection (samples the residual from p itself)."""

    def wrong(rule, p, q, children, gen):
        for j, x in enumerate(children):
            if float(torch.rand((), generator=gen)) < min(1.0, float(p[x] / q[x])):
                return NodeVerdict(j, None)
        return NodeVerdict(None, int(torch.multinomial(p, 1, generator=gen)))

    counts, _ = histogram("rrs", 2, verify=wrong)
    assert chi_square(counts, P) > CRITICAL


def test_spechub_closed_form_by_hand():
    """The 100,000-draw check of this figure is test_rule_emits_tokens_distributed_as_p[spechub-2]."""
    expected = spechub_acceptance(P, Q)
    # hand-computed: hub a = 2, s = q without a renormalised
    s = torch.tensor([0.05, 0.10, 0.0, 0.05, 0.30, 0.10]) / 0.60
    both = torch.minimum(P, s)
    both[2] = 0
    m = float(torch.clamp(s - P, min=0).sum())
    assert expected == pytest.approx(float(both.sum()) + min(0.20, m))
    assert expected_acceptance(P, Q, 2)["spechub"] == expected


def test_multi_draft_rules_accept_more_than_one_draft():
    _, single = histogram("rrs", 1, seed=2, n=10_000)
    _, pair_rrsw = histogram("rrsw", 2, seed=2, n=10_000)
    _, pair_hub = histogram("spechub", 2, seed=2, n=10_000)
    assert single < pair_rrsw and single < pair_hub


def test_spechub_children_always_contain_the_hub_and_rrsw_children_are_distinct():
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        pair = draw_children("spechub", Q, 2, gen)
        assert int(Q.argmax()) in pair and len(set(pair)) == 2
        assert len(set(draw_children("rrsw", Q, 3, gen))) == 3


def test_greedy_accepts_exactly_the_argmax():
    p = torch.tensor([0.1, 0.6, 0.3])
    assert verify_node("greedy", p, p, [2, 1], None).accepted == 1
    assert verify_node("greedy", p, p, [0, 2], None) == NodeVerdict(None, 1)
    assert draw_children("greedy", torch.tensor([0.2, 0.5, 0.3]), 2, None) == [1, 2]


def test_unknown_rule_and_bad_spechub_width_are_refused():
    with pytest.raises(ValueError, match="Unknown verification rule"):
        draw_children("magic", Q, 2, torch.Generator())
    with pytest.raises(ValueError, match="exactly 2"):
        draw_children("spechub", Q, 3, torch.Generator())
