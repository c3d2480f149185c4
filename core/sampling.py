"""Turning logits into the target distribution p and drawing from it.

p = softmax(logits / T) restricted to the top-k tokens and then to the smallest
nucleus of mass >= top_p, renormalised. At T = 0, decoding is the argmax. Every
draw takes an explicit ``torch.Generator``: nothing here seeds globally.
"""

from __future__ import annotations

import math

import torch

from core.config import SamplingConfig


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def target_probs(logits: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    """p over the vocabulary for logits [..., V] (float32); one-hot argmax when greedy."""
    logits = logits.float()
    if cfg.greedy:
        return one_hot_argmax(logits)
    logits = logits / cfg.temperature
    if cfg.top_k and cfg.top_k < logits.shape[-1]:
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if cfg.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # keep a token if the mass strictly before it is < top_p (so the top token always stays)
        drop_sorted = (sorted_p.cumsum(dim=-1) - sorted_p) >= cfg.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def one_hot_argmax(logits: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(logits)
    return out.scatter_(-1, logits.argmax(dim=-1, keepdim=True), 1.0)


NO_MASS = "Cannot draw from a distribution with no finite, positive mass."


def draw(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Draws from probs [..., V] (any non-negative weights) by inverse CDF, on the device with no read: x = the
    first token whose cumulative weight C(x) (float64) exceeds u C(V), for uniforms u [...] in [0, 1); a token
    without weight never does (u C(V) rounded up to C(V) gives the last token with weight). Why not
    ``torch.multinomial``: for one draw it draws an exponential for every token, several times slower over a
    49,152-token vocabulary (figures: docs/methods.md, "Sampling")."""
    cdf = torch.cumsum(probs, -1, dtype=torch.float64)
    x = torch.searchsorted(cdf, (u * cdf[..., -1]).unsqueeze(-1), right=True).squeeze(-1)
    weighted = torch.arange(probs.shape[-1], device=probs.device) * (probs > 0)
    return torch.minimum(x, weighted.amax(-1))


def uniforms(generator: torch.Generator, n: int, device: torch.device) -> torch.Tensor:
    """``n`` uniforms in [0, 1), float64, from the run's generator (the stream every draw of a run comes from)."""
    return torch.rand(n, generator=generator, dtype=torch.float64, device=device)


def draws(probs: torch.Tensor, generator: torch.Generator, n: int = 1) -> list[int]:
    """``n`` independent draws from probs [V] read back to the host (``draw``), refusing a distribution with no
    mass."""
    total = float(probs.sum())
    if not (total > 0 and math.isfinite(total)):
        raise ValueError(NO_MASS)
    return draw(probs.expand(n, -1), uniforms(generator, n, probs.device)).tolist()


def draw_one(probs: torch.Tensor, generator: torch.Generator) -> int:
    """One draw from probs [V] (see ``draws``)."""
    return draws(probs, generator)[0]


class Sampler:
    """Chooses each row's next token on the device: argmax at T = 0, else a draw from p (``target_probs``) with
    a uniform from the run's generator. ``refill`` draws the step's uniforms into a buffer and runs outside a
    captured graph; ``choose`` only reads that buffer, so it can run inside one (the buffer then belongs to the
    graph, not to the run: docs/methods.md, "GPU engine")."""

    def __init__(self, cfg: SamplingConfig, generator: torch.Generator) -> None:
        self.cfg, self.generator = cfg, generator

    @property
    def key(self) -> tuple:
        """What a captured ``choose`` bakes in."""
        return (True,) if self.cfg.greedy else (self.cfg.temperature, self.cfg.top_k, self.cfg.top_p)

    def refill(self, u: torch.Tensor) -> None:
        """Fresh uniforms in u [B] (float64) for the next ``choose``; nothing at T = 0."""
        if not self.cfg.greedy:
            u.uniform_(generator=self.generator)

    def choose(self, logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Next tokens [B] for logits [B, V] and uniforms u [B]."""
        if self.cfg.greedy:
            return logits.argmax(-1)
        return draw(target_probs(logits, self.cfg), u)
