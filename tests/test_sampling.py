"""p from logits (temperature, top-k, top-p) and draws from it, checked by distribution."""

import math

import pytest
import torch

from core.config import SamplingConfig
from core.sampling import Sampler, draw, draw_one, draws, make_generator, target_probs, uniforms
from core.speculative.rules import RRSw

LOGITS = torch.log(torch.tensor([0.40, 0.25, 0.15, 0.10, 0.06, 0.04]))


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> float:
    n = counts.sum()
    keep = probs > 0
    assert counts[~keep].sum() == 0, "a token of probability 0 was drawn"
    expected = probs[keep] * n
    return float(((counts[keep] - expected) ** 2 / expected).sum())


def draw_counts(probs: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    ids = draws(probs, make_generator(seed, torch.device("cpu")), n)
    return torch.bincount(torch.tensor(ids), minlength=probs.numel()).float()


# chi-square critical value at p = 0.001 for up to 5 degrees of freedom
CRITICAL = 20.5


@pytest.mark.parametrize(
    "cfg, expected",
    [
        (SamplingConfig(temperature=1.0), [0.40, 0.25, 0.15, 0.10, 0.06, 0.04]),
        (SamplingConfig(temperature=1.0, top_k=2), [0.40 / 0.65, 0.25 / 0.65, 0, 0, 0, 0]),
        (SamplingConfig(temperature=1.0, top_p=0.7), [0.40 / 0.8, 0.25 / 0.8, 0.15 / 0.8, 0, 0, 0]),
    ],
)
def test_target_probs_are_the_filtered_distribution(cfg, expected):
    torch.testing.assert_close(target_probs(LOGITS, cfg), torch.tensor(expected), atol=1e-6, rtol=0)


def test_temperature_sharpens_and_greedy_is_one_hot():
    p_half = target_probs(LOGITS, SamplingConfig(temperature=0.5))
    raw = torch.tensor([0.40, 0.25, 0.15, 0.10, 0.06, 0.04]) ** 2
    torch.testing.assert_close(p_half, raw / raw.sum(), atol=1e-6, rtol=0)
    assert target_probs(LOGITS, SamplingConfig()).tolist() == [1, 0, 0, 0, 0, 0]
    sampler = Sampler(SamplingConfig(), make_generator(0, torch.device("cpu")))
    assert sampler.choose(LOGITS[None], torch.zeros(1, dtype=torch.float64)).tolist() == [0]


def test_the_sampler_draws_every_row_from_its_own_p_with_the_runs_stream():
    """``Sampler``: refill the uniforms (outside a graph), choose reads them; rows draw independently."""
    cfg = SamplingConfig(temperature=1.0)
    sampler, u = Sampler(cfg, make_generator(4, torch.device("cpu"))), torch.zeros(50_000, dtype=torch.float64)
    sampler.refill(u)
    logits = torch.stack([LOGITS, LOGITS.flip(0)]).repeat(25_000, 1)  # rows alternate between two p
    chosen = sampler.choose(logits, u)
    for row in (0, 1):
        p = target_probs(logits[row], cfg)
        counts = torch.bincount(chosen[row::2], minlength=6).float()
        assert chi_square(counts, p) < CRITICAL
    again = torch.zeros(50_000, dtype=torch.float64)
    Sampler(cfg, make_generator(4, torch.device("cpu"))).refill(again)
    assert torch.equal(u, again)  # the same seed, the same draws


@pytest.mark.parametrize("cfg", [SamplingConfig(temperature=1.0), SamplingConfig(temperature=0.7, top_k=4, top_p=0.9)])
def test_draws_follow_p(cfg):
    p = target_probs(LOGITS, cfg)
    assert chi_square(draw_counts(p, 100_000), p) < CRITICAL


def test_the_distribution_check_rejects_a_wrong_sampler():
    p = target_probs(LOGITS, SamplingConfig(temperature=1.0))
    wrong = target_probs(LOGITS, SamplingConfig(temperature=1.2))  # a sampler that forgot the temperature
    assert chi_square(draw_counts(wrong, 100_000), p) > CRITICAL


def test_explicit_generators_are_reproducible_and_leave_global_rng_alone():
    p = target_probs(LOGITS, SamplingConfig(temperature=1.0))
    state = torch.random.get_rng_state()
    a = draws(p, make_generator(5, torch.device("cpu")), 50)
    b = draws(p, make_generator(5, torch.device("cpu")), 50)
    c = draws(p, make_generator(6, torch.device("cpu")), 50)
    assert a == b and a != c
    assert torch.equal(state, torch.random.get_rng_state())
    assert math.isclose(float(p.sum()), 1.0, rel_tol=1e-6)


def test_several_draws_follow_unnormalised_weights_and_never_hit_a_massless_token():
    weights = torch.tensor([0.0, 3.0, 0.0, 1.0, 6.0, 0.0])  # zeros first, between and last
    ids = draws(weights, make_generator(1, torch.device("cpu")), 100_000)
    assert len(ids) == 100_000
    counts = torch.bincount(torch.tensor(ids), minlength=weights.numel()).float()
    assert chi_square(counts, weights / weights.sum()) < CRITICAL


def test_distinct_draws_are_sampling_without_replacement():
    """RRSw's children: 30,000 nodes' pairs at once, each a draw without replacement."""
    w = torch.tensor([0.5, 0.3, 0.2, 0.0])
    rng = make_generator(2, torch.device("cpu"))
    n = 30_000
    kids, offered = RRSw().children(w.expand(n, -1), 2, uniforms(rng, 2 * n, w.device).view(n, 2))
    pairs = [tuple(x) for x in kids.tolist()]
    order = [(a, b) for a in range(3) for b in range(3) if a != b]
    counts = torch.tensor([float(pairs.count(pair)) for pair in order])
    exact = torch.tensor([float(w[a] * w[b] / (1 - w[a])) for a, b in order])  # P(a first) P(b | a gone)
    assert chi_square(counts, exact) < CRITICAL  # 6 ordered pairs: 5 degrees of freedom
    assert bool(offered.all())
    five, offered = RRSw().children(w[None], 5, uniforms(rng, 5, w.device)[None])
    assert offered.tolist() == [[True, True, True, False, False]]  # only 3 tokens have mass
    assert len(set(five[0, :3].tolist())) == 3 and five[0, 3:].tolist() == [five[0, 2].item()] * 2


def test_draws_on_the_device_take_their_uniforms_and_skip_massless_tokens():
    """``draw``: u at the edges still lands on a token with weight (u C(V) rounded up to C(V))."""
    weights = torch.tensor([[0.0, 3.0, 0.0, 1.0, 6.0, 0.0]]).expand(3, -1)
    u = torch.tensor([0.0, 0.5, 1.0 - 1e-17], dtype=torch.float64)
    assert draw(weights, u).tolist() == [1, 4, 4]


def test_single_draws_follow_p_and_skip_massless_tokens():
    weights = torch.tensor([0.0, 3.0, 0.0, 1.0, 6.0, 0.0])
    rng = make_generator(3, torch.device("cpu"))
    counts = torch.bincount(torch.tensor([draw_one(weights, rng) for _ in range(20_000)]), minlength=6).float()
    assert chi_square(counts, weights / weights.sum()) < CRITICAL


@pytest.mark.parametrize("bad", [torch.zeros(5), torch.tensor([0.5, float("nan"), 0.5])])
def test_a_distribution_without_mass_is_refused_in_words(bad):
    rng = make_generator(0, torch.device("cpu"))
    for drawer in (draws, draw_one):
        with pytest.raises(ValueError, match="no finite, positive mass"):
            drawer(bad, rng)
