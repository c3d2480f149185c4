"""The verify-cost curve v(n): the cost of one forward of n new tokens relative to a forward of one.

A draft-and-verify step pays v(n) for verifying an n-node tree, so v(n) is what sizes a tree: on a
memory-bound device a forward of 8 tokens costs little more than one of 1. Measured on the chosen
device and dtype over a fixed context (the cache holds ``context`` committed tokens, as mid-answer),
each size timed ``repeats`` times after a warm-up, the median kept (docs/methods.md, "Cost model").
"""

from __future__ import annotations

import json
import statistics
import time

import torch

from core.engine import make_engine
from core.models import LoadedModel, cache_root

SIZES = tuple(range(1, 65))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class _Probe:
    """One engine holding ``context`` committed tokens, timing forwards of n new tokens (nothing committed)."""

    def __init__(self, model: LoadedModel, n: int, context: int) -> None:
        self.device = model.device
        self.engine = make_engine(model, batch=1, max_len=context + n)
        ids = torch.arange(context + n, device=model.device)[None] % model.config.vocab_size
        self.engine.forward(ids[:, :context], last_only=True)
        self.engine.commit(context)
        self.new = ids[:, context:]
        self.engine.forward(self.new)  # warm-up

    def seconds(self) -> float:
        _sync(self.device)
        t0 = time.perf_counter()
        self.engine.forward(self.new)
        _sync(self.device)
        return time.perf_counter() - t0


def forward_seconds(model: LoadedModel, sizes: tuple[int, ...], context: int, repeats: int) -> list[float]:
    """Median seconds of a forward of n new tokens after ``context`` committed ones, for each n of ``sizes``.
    The sizes are timed round-robin, one forward each per round, so a machine that speeds up or slows down
    during the measurement shifts every size alike instead of skewing the ratios."""
    probes = [_Probe(model, n, context) for n in sizes]
    times: list[list[float]] = [[] for _ in sizes]
    for _ in range(repeats):
        for probe, out in zip(probes, times, strict=True):
            out.append(probe.seconds())
    return [statistics.median(t) for t in times]


def verify_cost_curve(model: LoadedModel, sizes: tuple[int, ...] = SIZES, context: int = 128, repeats: int = 5) -> dict:
    """{"n": sizes, "seconds": median per size, "relative": v(n) = seconds(n) / seconds(1), "context", "repeats"}."""
    if not sizes or min(sizes) < 1:
        raise ValueError("The verify-cost curve needs sizes of at least 1 new token.")
    sizes = tuple(sorted({1, *sizes}))
    seconds = forward_seconds(model, sizes, context, repeats)
    return {
        "n": list(sizes),
        "seconds": seconds,
        "relative": [s / seconds[0] for s in seconds],
        "context": context,
        "repeats": repeats,
        "device": model.device.type,
        "dtype": str(model.dtype).removeprefix("torch."),
    }


RUN_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)  # enough points to interpolate v(n) for tree sizing
_CURVES: dict[tuple, dict] = {}


def device_curve(model: LoadedModel) -> dict:
    """v(n) for this model, device and dtype: measured once per process (a few seconds; ``RUN_SIZES``,
    3 repeats) and cached on disk, so methods that size trees by it do not measure it per run."""
    key = (model.key, model.device.type, str(model.dtype))
    if key not in _CURVES:
        path = _curve_path(model)
        if path.is_file():
            _CURVES[key] = json.loads(path.read_text())
        else:
            _CURVES[key] = verify_cost_curve(model, RUN_SIZES, repeats=7)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(_CURVES[key]))
    return _CURVES[key]


def _curve_path(model: LoadedModel):
    dtype = str(model.dtype).removeprefix("torch.")
    return cache_root() / "cost" / f"{model.key}-{model.device.type}-{dtype}.json"


def relative_cost(curve: dict, n: int) -> float:
    """v(n) by linear interpolation between measured sizes (extrapolated past the largest), never below 1: a
    forward of n >= 1 tokens cannot cost less than a forward of one, so a measured v(n) < 1 is timing noise."""
    sizes, rel = curve["n"], curve["relative"]
    if n <= sizes[0] or len(sizes) == 1:
        return max(rel[0], 1.0)
    i = next((i for i in range(1, len(sizes)) if n <= sizes[i]), len(sizes) - 1)
    n0, n1, v0, v1 = sizes[i - 1], sizes[i], rel[i - 1], rel[i]
    return max(v0 + (v1 - v0) * (n - n0) / (n1 - n0), 1.0)


def known_curve(model: LoadedModel) -> dict | None:
    """v(n) of this model and device if already measured (this process or the disk cache), else None."""
    key = (model.key, model.device.type, str(model.dtype))
    return _CURVES.get(key) or (device_curve(model) if _curve_path(model).is_file() else None)


def best_size(confidence: list[float], draft_cost: float, curve: dict, max_nodes: int) -> int:
    """n (nodes kept besides the root) maximising (1 + sum of the n best confidences) / (D + v(n + 1))."""
    best, best_value, gain = 0, 1.0 / (draft_cost + relative_cost(curve, 1)), 1.0
    for n, c in enumerate(confidence[: max_nodes - 1], start=1):
        gain += c
        value = gain / (draft_cost + relative_cost(curve, n + 1))
        if value > best_value:
            best, best_value = n, value
    return best
