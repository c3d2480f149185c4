"""Losslessness of every verification rule by distribution tests on hand-made p and q."""

import pytest
import torch

from core.speculative.verify import NodeVerdict, draw_children, spechub_acceptance, verify_node

P = torch.tensor([0.30, 0.25, 0.20, 0.12, 0.08, 0.05])
Q = torch.tensor([0.05, 0.10, 0.40, 0.05, 0.30, 0.10])  # a draft that disagrees with p on purpose
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
    counts, accepted = torch.zeros(len(p)), 0
    for _ in range(n):
        tok, acc = emitted(rule, p, q, k, gen, verify)
        counts[tok] += 1
        accepted += acc
    return counts, accepted / n


@pytest.mark.slow
@pytest.mark.parametrize("rule, k", [("match", 2), ("rrs", 1), ("rrs", 3), ("rrsw", 2), ("rrsw", 3), ("spechub", 2)])
def test_rule_emits_tokens_distributed_as_p(rule, k):
    counts, _ = histogram(rule, k)
    assert chi_square(counts, P) < CRITICAL


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


@pytest.mark.slow
def test_spechub_acceptance_matches_its_closed_form():
    _, rate = histogram("spechub", 2, seed=1)
    expected = spechub_acceptance(P, Q)
    sigma = (expected * (1 - expected) / N) ** 0.5
    assert abs(rate - expected) < 4 * sigma
    # hand-computed: hub a = 2, s = q without a renormalised
    s = torch.tensor([0.05, 0.10, 0.0, 0.05, 0.30, 0.10]) / 0.60
    both = torch.minimum(P, s)
    both[2] = 0
    m = float(torch.clamp(s - P, min=0).sum())
    assert expected == pytest.approx(float(both.sum()) + min(0.20, m))


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
