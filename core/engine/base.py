"""The engine contract every decoding method is written against.

An engine is made per run (it owns that run's KV cache) over a shared, read-only
``LoadedModel``. ``forward`` writes the new tokens' K/V at slots
[start, start+T) (``start`` defaults to the committed length) and does not commit
them: the method decides, with ``commit``, ``rollback`` or ``keep``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


class EngineUnsupported(RuntimeError):
    """The engine cannot do what a method asked (e.g. a tree mask on the fallback runner)."""


@dataclass
class EngineOutput:
    """Result of one forward.

    logits: [B, T, V] float32 (or [B, 1, V] with ``last_only``), None when the layer
    range stops before the last layer. hidden: layer index i -> the hidden state after
    i decoder layers, [B, T, H] (0 = embeddings). last_hidden: after the range's last layer.
    """

    logits: torch.Tensor | None
    last_hidden: torch.Tensor
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)
