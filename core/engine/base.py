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

Every engine also has ``decode`` (``Stepping``): one autoregressive step, the token chosen on the device.
The compact llama engine has all three flags; the transformers fallback none; the graph engine is the llama
engine with its steps captured (CUDA graphs). tests/test_engine.py checks that each offers every member of
``Engine`` with its signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

import torch

if TYPE_CHECKING:
    from core.sampling import Sampler

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
    """What every engine offers (see the module docstring for the capability flags). Shapes: B rows, T new
    tokens, H hidden size, V vocabulary."""

    supports_layer_ranges: ClassVar[bool]
    supports_trees: ClassVar[bool]
    supports_rows: ClassVar[bool]
    device: torch.device
    n_layers: int
    max_len: int  # slots of the KV cache per row
    uniform: torch.Tensor  # [B] float64: the uniforms a sampled ``decode`` draws with (refilled each step)

    @property
    def length(self) -> int:
        """Committed slots."""

    def forward(
        self,
        tokens: torch.Tensor | None = None,
        *,
        hidden_in: torch.Tensor | None = None,
        start: int | None = None,
        offsets: torch.Tensor | None = None,
        tree_mask: torch.Tensor | None = None,
        pad_mask: torch.Tensor | None = None,
        layers: range | None = None,
        output_hidden: tuple[int, ...] = (),
        last_only: bool = False,
    ) -> EngineOutput:
        """T new tokens per row: tokens [B, T] (or hidden_in [B, T, H]) written at slots [start, start + T)
        (default: the committed length), not committed; offsets [B or 1, T]: positions relative to each row's
        committed length (a tree's depths; default: continue each row); tree_mask [T, start + T - length] bool
        over the uncommitted slots (default causal); pad_mask [B, T] bool, False = left padding; layers: a range
        of decoder layers (default all); output_hidden: layers whose hidden states to return; last_only: the
        last position's logits only."""

    def decode(self, sampler: Sampler, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """One autoregressive step of every row: forward ``tokens`` [B, T] (default: the [B, 1] the last step
        chose), commit them, choose each row's next token with ``sampler``; [B] on the device, nothing read."""

    def commit(self, n: int) -> None:
        """Accept the last ``n`` written slots."""

    def rollback(self, length: int) -> None:
        """Forget every slot from ``length`` on."""

    def keep(self, slots: list[int] | torch.Tensor) -> None:
        """Commit written slots ``slots`` (ascending, all >= length) as the next slots."""

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Final norm + LM head over hidden states h [B, T, H], float32 [B, T, V]."""

    def prefill_shared(self, tokens: torch.Tensor, layers: range | None = None, reuse: bool = False) -> torch.Tensor:
        """``supports_rows``: tokens [1, P], a prefix every row shares, prefilled once and its K/V copied to
        every row; returns the prefix's last hidden states [1, P, H]. ``reuse``: a prefix many runs share (a
        fixed instruction), whose K/V the model keeps for the next run."""

    def select_rows(self, rows: list[int]) -> None:
        """``supports_rows``: keep only these rows (their cache, lengths and uniforms), in this order."""


class Stepping:
    """``Engine.decode`` for an engine with ``forward`` and ``commit``: the step's tokens go in, the chosen
    tokens stay on the device as the next step's input (``next`` [B, 1]); ``uniform`` [B] is set up by the
    engine."""

    uniform: torch.Tensor
    next: torch.Tensor | None = None

    @torch.inference_mode()
    def decode(self, sampler: Sampler, tokens: torch.Tensor | None = None) -> torch.Tensor:
        if tokens is not None:
            self.next = tokens
        sampler.refill(self.uniform)
        logits = self.forward(self.next, last_only=True).logits[:, -1]
        self.commit(self.next.shape[1])
        chosen = sampler.choose(logits, self.uniform)
        self.next = chosen[:, None]
        return chosen


def require(engine_cls: type, capability: str, what: str) -> None:
    """Raise ``EngineUnsupported`` naming ``what`` needs ``capability`` when the engine lacks it."""
    if not getattr(engine_cls, capability):
        label = capability.removeprefix("supports_").replace("_", " ")
        raise EngineUnsupported(f"{what} needs an engine with {label}; this model runs on the transformers fallback.")
