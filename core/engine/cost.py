"""The verify-cost curve v(n): the cost of one forward of n new tokens relative to a forward of one.

A draft-and-verify step pays v(n) for verifying an n-node tree, so v(n) is what sizes a tree: on a
memory-bound device a forward of 8 tokens costs little more than one of 1. Measured on the chosen
device and dtype over a fixed context (the cache holds ``context`` committed tokens, as mid-answer),
each size timed ``repeats`` times after a warm-up, the median kept (docs/methods.md, "Cost model").
"""

from __future__ import annotations

import statistics
import time

import torch

from core.engine import make_engine
from core.models import LoadedModel

SIZES = tuple(range(1, 65))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def forward_seconds(model: LoadedModel, n: int, context: int, repeats: int) -> float:
    """Median seconds of a forward of n new tokens after ``context`` committed ones (nothing is committed)."""
    engine = make_engine(model, batch=1, max_len=context + n)
    ids = torch.arange(context + n, device=model.device)[None] % model.config.vocab_size
    engine.forward(ids[:, :context], last_only=True)
    engine.commit(context)
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        _sync(model.device)
        t0 = time.perf_counter()
        engine.forward(ids[:, context:])
        _sync(model.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def verify_cost_curve(model: LoadedModel, sizes: tuple[int, ...] = SIZES, context: int = 128, repeats: int = 5) -> dict:
    """{"n": sizes, "seconds": median per size, "relative": v(n) = seconds(n) / seconds(1), "context", "repeats"}."""
    if not sizes or min(sizes) < 1:
        raise ValueError("The verify-cost curve needs sizes of at least 1 new token.")
    sizes = tuple(sorted({1, *sizes}))
    seconds = [forward_seconds(model, n, context, repeats) for n in sizes]
    return {
        "n": list(sizes),
        "seconds": seconds,
        "relative": [s / seconds[0] for s in seconds],
        "context": context,
        "repeats": repeats,
        "device": model.device.type,
        "dtype": str(model.dtype).removeprefix("torch."),
    }
