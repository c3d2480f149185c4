"""An n-gram language model over token ids, for BPD draft rescoring (Kim et al. 2024).

Interpolated (Jelinek-Mercer) estimate over orders 1..N with a uniform floor:
    P(x | h) = sum_{n seen} w_n c(h_{n-1} x) / c(h_{n-1})  +  w_0 / V
where h_{n-1} is the last n - 1 tokens of the context, only orders whose context
was seen take part, and the weights of those orders are renormalised (higher orders
weigh more). Counts come from the model's own self-distilled text and grow with the
running context of the current run (``add``), so the LM learns the answer as it is written.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path

from core.heads.modules import ASSETS

FLOOR_WEIGHT = 0.01


class NgramLM:
    def __init__(self, vocab_size: int, order: int = 3) -> None:
        if order < 1 or vocab_size < 1:
            raise ValueError(f"An n-gram LM needs order >= 1 and a vocabulary, got order={order}.")
        self.vocab_size, self.order = vocab_size, order
        self.counts: list[defaultdict[tuple[int, ...], Counter]] = [defaultdict(Counter) for _ in range(order)]

    def add(self, tokens: list[int], context: list[int] | None = None) -> None:
        """Count every n-gram (n <= order) ending in ``tokens``; ``context`` gives the tokens before them."""
        seq = list(context or [])[-(self.order - 1) :] if self.order > 1 else []
        start = len(seq)
        seq += list(tokens)
        for i in range(start, len(seq)):
            for n in range(self.order):
                if i - n >= 0:
                    self.counts[n][tuple(seq[i - n : i])][seq[i]] += 1

    def prob(self, context: list[int], token: int) -> float:
        total_w, mix = 0.0, 0.0
        for n in range(self.order):
            if n > len(context):
                break
            seen = self.counts[n].get(tuple(context[len(context) - n :]) if n else ())
            if seen:
                w = 2.0**n  # higher orders weigh more
                total_w += w
                mix += w * seen[token] / seen.total()
        model = mix / total_w if total_w else 0.0
        return (1 - FLOOR_WEIGHT) * model + FLOOR_WEIGHT / self.vocab_size

    def logprob(self, context: list[int], tokens: list[int]) -> float:
        """log P(tokens | context), token by token."""
        ctx, total = list(context[-(self.order - 1) :]) if self.order > 1 else [], 0.0
        for tok in tokens:
            total += math.log(self.prob(ctx, tok))
            ctx = (ctx + [tok])[-(self.order - 1) :] if self.order > 1 else []
        return total


def ngram_path(model_key: str) -> Path:
    """The self-distilled text behind BPD's n-gram rescoring (``python -m core.train ngram``)."""
    return ASSETS / "ngram" / f"{model_key}.json"
