"""Turning logits into the target distribution p and drawing from it.

p = softmax(logits / T) restricted to the top-k tokens and then to the smallest
nucleus of mass >= top_p, renormalised. At T = 0, decoding is the argmax. Every
draw takes an explicit ``torch.Generator``: nothing here seeds globally.
"""

from __future__ import annotations

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


def sample(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One draw per row of probs [..., V] -> ids [...]."""
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


def next_token(logits: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator) -> int:
    """The next token for one position's logits [V]: argmax at T = 0, else a draw from p."""
    if cfg.greedy:
        return int(logits.argmax())
    return int(sample(target_probs(logits, cfg), generator))
