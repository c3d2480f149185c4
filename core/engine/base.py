"""The engine contract every decoding method is written against (``Engine``).

An engine is made per run (it owns that run's KV cache) over a shared, read-only
``LoadedModel``. ``forward`` writes the new tokens' K/V at slots [start, start+T)
(``start`` defaults to the committed length) and does not commit them: the method
decides, with ``commit``, ``rollback`` or ``keep``. What an engine can do beyond a
causal one-row forward over every layer is a capability flag, asked before use:

- ``supports_layer_ranges``: ``layers=range(a, b)``, ``hidden_in``, ``output_hidden`` and
  ``logits(h)`` (early exit, self-drafts, pipeline stages, exit heads);
- ``supports_trees``: ``tree_mask`` and ``keep`` of a non-contiguous subset (draft trees);
- ``supports_rows``: several rows with ``pad_mask``, ``prefill_shared`` and ``select_rows``.

The compact llama engine has all three; the transformers fallback none. A GPU engine
(CUDA graphs) is one more implementation of the same protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import torch

KV_BUDGET_BYTES = 3 * 2**30  # one run's KV cache; several browser sessions share a 24 GB machine


def kv_bytes(n_layers: int, batch: int, n_kv_heads: int, head_dim: int, max_len: int, itemsize: int) -> int:
    """Bytes of a KV cache: K and V for every layer, row, head, slot."""
    return 2 * n_layers * batch * n_kv_heads * head_dim * max_len * itemsize


def check_kv_budget(nbytes: int, batch: int, max_len: int) -> None:
    """Refuse, before allocating, a KV cache over ``KV_BUDGET_BYTES``."""
    if nbytes > KV_BUDGET_BYTES:
        raise ValueError(
            f"This run needs a KV cache of {nbytes / 2**30:.1f} GiB ({batch} rows x {max_len} positions), over the "
            f"limit of {KV_BUDGET_BYTES / 2**30:.0f} GiB per run: use fewer tokens or fewer rows."
        )


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


class Engine(Protocol):
    """What every engine offers (see the module docstring for the capability flags)."""

    supports_layer_ranges: ClassVar[bool]
    supports_trees: ClassVar[bool]
    supports_rows: ClassVar[bool]
    device: torch.device
    n_layers: int
    max_len: int

    @property
    def length(self) -> int:
        """Committed slots."""

    def forward(
        self,
        tokens: torch.Tensor | None = None,
        *,
        hidden_in: torch.Tensor | None = None,
        start: int | None = None,
        positions: torch.Tensor | None = None,
        tree_mask: torch.Tensor | None = None,
        pad_mask: torch.Tensor | None = None,
        layers: range | None = None,
        output_hidden: tuple[int, ...] = (),
        last_only: bool = False,
    ) -> EngineOutput: ...

    def commit(self, n: int) -> None:
        """Accept the last ``n`` written slots."""

    def rollback(self, length: int) -> None:
        """Forget every slot from ``length`` on."""

    def keep(self, slots: list[int] | torch.Tensor) -> None:
        """Commit written slots ``slots`` (ascending, all >= length) as the next slots."""

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Final norm + LM head over hidden states h [B, T, H], float32 [B, T, V]."""


def require(engine_cls: type, capability: str, what: str) -> None:
    """Raise ``EngineUnsupported`` naming ``what`` needs ``capability`` when the engine lacks it."""
    if not getattr(engine_cls, capability):
        label = capability.removeprefix("supports_").replace("_", " ")
        raise EngineUnsupported(f"{what} needs an engine with {label}; this model runs on the transformers fallback.")
