"""Losslessness of every verification rule by distribution tests on hand-made p and q. The rules decide many
nodes at once, so 100,000 independent trials are one call of ``children`` and one of ``node``."""

import pytest
import torch

from core.sampling import uniforms
from core.speculative.expected import ExpectedTally, expected_acceptance, spechub_acceptance
from core.speculative.rules import RRS, RULES, Rule, rule

P = torch.tensor([0.30, 0.25, 0.20, 0.12, 0.08, 0.05])
Q = torch.tensor([0.05, 0.10, 0.40, 0.05, 0.30, 0.10])  # a draft that disagrees with p on purpose
# a reduced draft vocabulary: q has no mass on the two tokens p favours most (they come from the residual)
Q_REDUCED = torch.tensor([0.0, 0.0, 0.45, 0.10, 0.30, 0.15])
N = 100_000
CRITICAL = 20.5  # chi-square, 5 degrees of freedom, p = 0.001


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def emitted(verifier: Rule, p, q, k: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n independent nodes: each draws its k children from q and is decided against p; the emitted token
    (the accepted child, or the rule's residual draw) and whether a child was accepted, per node."""
    gen = torch.Generator().manual_seed(seed)
    P_, Q_ = p.expand(n, -1), q.expand(n, -1)
    kids, offered = verifier.children(Q_, k, uniforms(gen, n * k, p.device).view(n, k))
    accepted, x = verifier.node(P_, Q_, kids, offered, uniforms(gen, n * (k + 1), p.device).view(n, k + 1))
    took = accepted >= 0
    tokens = torch.where(took, kids.gather(1, accepted.clamp(min=0)[:, None])[:, 0], x)
    return tokens, took


def histogram(name, k, p=P, q=Q, seed=0, n=N, verifier=None):
    tokens, took = emitted(verifier or rule(name), p, q, k, n, seed)
    return torch.bincount(tokens, minlength=len(p)).float(), float(took.float().mean())


@pytest.mark.parametrize("name, k", [("match", 2), ("rrs", 1), ("rrs", 3), ("rrsw", 2), ("rrsw", 3), ("spechub", 2)])
def test_rule_emits_tokens_distributed_as_p(name, k):
    counts, rate = histogram(name, k)
    assert chi_square(counts, P) < CRITICAL
    exact = expected_acceptance(P, Q, k).get(name)
    if exact is not None:  # each rule's exact acceptance probability against the same 100,000 trials
        exact = float(exact)
        assert abs(rate - exact) < 4 * (exact * (1 - exact) / N) ** 0.5, (name, k, rate, exact)


@pytest.mark.parametrize("name, k", [("rrs", 1), ("rrs", 2), ("rrsw", 2), ("spechub", 2)])
def test_q_with_no_mass_where_p_favours_stays_lossless_and_exact(name, k):
    """A reduced draft vocabulary: q is zero on tokens 0 and 1, which hold 55% of p. They can only be emitted
    from the residual; the emitted tokens must still follow p, and acceptance its exact rate."""
    counts, rate = histogram(name, k, q=Q_REDUCED, seed=5)
    assert chi_square(counts, P) < CRITICAL
    exact = float(expected_acceptance(P, Q_REDUCED, k)[name])
    assert abs(rate - exact) < 4 * (exact * (1 - exact) / N) ** 0.5, (name, k, rate, exact)
    assert exact < 1 - 0.55 + 1e-6  # at most the mass p puts where q can draw


def test_a_q_with_one_token_of_mass_is_verified_by_every_rule():
    """SpecHub and RRSw then draw one child only (the rest is never offered); still lossless."""
    one = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    for name in ("rrsw", "spechub"):
        counts, rate = histogram(name, 2, q=one, seed=7)
        assert chi_square(counts, P) < CRITICAL
        assert abs(rate - 0.20) < 0.01  # accepted exactly when p draws token 2


def test_exact_acceptance_by_hand_and_its_order():
    """k = 1: every rule is beta(p, q) = sum min(p, q); RRS with two draws: 1 - (1 - b1)(1 - b2) with the
    residual between; the multi-draft rules beat a single draft."""
    one = expected_acceptance(P, Q, 1)
    b1 = float(torch.minimum(P, Q).sum())
    assert float(one["rrs"]) == pytest.approx(b1) and float(one["rrsw"]) == pytest.approx(b1)
    assert one["spechub"] is None
    r1 = torch.clamp(P - Q, min=0)
    r1 = r1 / r1.sum()
    b2 = float(torch.minimum(r1, Q).sum())
    two = {k: float(v) for k, v in expected_acceptance(P, Q, 2).items()}
    assert two["rrs"] == pytest.approx(1 - (1 - b1) * (1 - b2))
    assert min(two["rrs"], two["rrsw"], two["spechub"]) > b1
    assert expected_acceptance(P, Q, 3)["rrsw"] is None  # no closed form above two drafts


def test_identical_p_and_q_are_always_accepted_and_many_nodes_at_once():
    assert float(expected_acceptance(P, P, 2)["rrs"]) == pytest.approx(1.0)
    rows = expected_acceptance(torch.stack([P, P]), torch.stack([Q, P]), 2)
    assert float(rows["rrs"][0]) == pytest.approx(float(expected_acceptance(P, Q, 2)["rrs"]))
    assert float(rows["rrsw"][1]) == pytest.approx(1.0)


def test_the_tally_pools_verified_nodes_by_depth_on_the_device_and_reads_once():
    from types import SimpleNamespace

    from core.config import SamplingConfig
    from core.speculative.tree import TreeTopology

    topo = TreeTopology.full(1, 3)
    tree = SimpleNamespace(topology=topo, q=torch.stack([Q, Q, Q]))
    logits = torch.log(torch.stack([P, P, P, P]))
    tally = ExpectedTally(torch.device("cpu"))
    for count in (2, 4):  # a step that accepted one node (two verified), one that accepted all (three)
        tally.add(tree, SimpleNamespace(path=torch.arange(4), count=torch.tensor(count)), logits, SamplingConfig(1.0))
    out = tally.summary()
    assert out["rrs"]["nodes_by_depth"] == [2, 2, 1]
    assert out["rrs"]["by_depth"][0] == pytest.approx(float(expected_acceptance(P, Q, 1)["rrs"]))


def test_a_deliberately_wrong_rule_fails_the_same_test():
    """RRS that forgets to subtract q after a rejection (samples the residual from p itself)."""

    class Forgetful(RRS):
        def node(self, p, q, kids, offered, u):
            accepted, _ = super().node(p, q, kids, offered, u)
            from core.sampling import draw

            return accepted, draw(p, u[:, -1])

    counts, _ = histogram("rrs", 2, verifier=Forgetful())
    assert chi_square(counts, P) > CRITICAL


def test_spechub_closed_form_by_hand():
    """The 100,000-trial check of this figure is test_rule_emits_tokens_distributed_as_p[spechub-2]."""
    expected = float(spechub_acceptance(P[None], Q[None])[0])
    # hand-computed: hub a = 2, s = q without a renormalised
    s = torch.tensor([0.05, 0.10, 0.0, 0.05, 0.30, 0.10]) / 0.60
    both = torch.minimum(P, s)
    both[2] = 0
    m = float(torch.clamp(s - P, min=0).sum())
    assert expected == pytest.approx(float(both.sum()) + min(0.20, m))
    assert float(expected_acceptance(P, Q, 2)["spechub"]) == pytest.approx(expected)


def test_multi_draft_rules_accept_more_than_one_draft():
    _, single = histogram("rrs", 1, seed=2, n=10_000)
    _, pair_rrsw = histogram("rrsw", 2, seed=2, n=10_000)
    _, pair_hub = histogram("spechub", 2, seed=2, n=10_000)
    assert single < pair_rrsw and single < pair_hub


def test_spechub_children_always_contain_the_hub_and_rrsw_children_are_distinct():
    gen = torch.Generator().manual_seed(0)
    n = 200
    pairs, offered = rule("spechub").children(Q.expand(n, -1), 2, uniforms(gen, 2 * n, Q.device).view(n, 2))
    hub = int(Q.argmax())
    assert bool(offered.all()) and all(hub in pair and len(set(pair)) == 2 for pair in pairs.tolist())
    triples, offered = rule("rrsw").children(Q.expand(n, -1), 3, uniforms(gen, 3 * n, Q.device).view(n, 3))
    assert bool(offered.all()) and all(len(set(t)) == 3 for t in triples.tolist())


def test_greedy_accepts_exactly_the_argmax():
    p = torch.tensor([[0.1, 0.6, 0.3], [0.1, 0.6, 0.3]])
    kids = torch.tensor([[2, 1], [0, 2]])
    accepted, x = rule("greedy").node(p, p, kids, torch.ones(2, 2, dtype=torch.bool), torch.zeros(2, 3))
    assert accepted.tolist() == [1, -1] and x.tolist() == [1, 1]
    top, _ = rule("greedy").children(torch.tensor([[0.2, 0.5, 0.3]]), 2, torch.zeros(1, 2))
    assert top.tolist() == [[1, 2]]


def test_rules_are_objects_in_one_registry():
    assert [r.name for r in RULES] == ["greedy", "match", "rrs", "rrsw", "spechub"]
    assert all(r.lossless for r in RULES) and {r.name for r in RULES if r.exact} == {"rrs", "rrsw", "spechub"}
    with pytest.raises(ValueError, match="Unknown verification rule"):
        rule("magic")
    with pytest.raises(ValueError, match="set k = 2"):
        rule("spechub").check(3)
