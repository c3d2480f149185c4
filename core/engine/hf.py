"""Fallback engine through transformers' own forward, for architectures the compact
llama engine does not cover (e.g. Gemma 3). Slower, and narrower: one row, causal
attention only, all layers; rollback crops transformers' cache. Methods that need a
tree mask or a layer range raise ``EngineUnsupported`` with the reason.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from core.engine.base import EngineOutput, EngineUnsupported, Stepping


class HFEngine(Stepping):
    supports_layer_ranges = False
    supports_trees = False
    supports_rows = False

    def __init__(self, model: torch.nn.Module, batch: int = 1, max_len: int = 2048) -> None:
        if batch != 1:
            raise EngineUnsupported(f"The fallback engine for '{model.config.model_type}' decodes one row at a time.")
        self.model = model
        self.n_layers = model.config.get_text_config().num_hidden_layers
        self.device = next(model.parameters()).device
        self.max_len = max_len
        self.cache = DynamicCache(config=model.config)
        self.uniform = torch.zeros(1, dtype=torch.float64, device=self.device)  # [1]
        self.length = 0

    def commit(self, n: int) -> None:
        self.length += n

    def rollback(self, length: int) -> None:
        if not 0 <= length <= self.length:
            raise ValueError(f"Cannot roll back to {length}: only {self.length} positions are committed.")
        self.length = length
        self.cache.crop(length)

    def keep(self, slots) -> None:
        slots = [int(s) for s in slots]
        if slots != list(range(self.length, self.length + len(slots))):
            raise EngineUnsupported("The fallback engine keeps only a contiguous run of written positions (no trees).")
        self.commit(len(slots))

    def prefill_shared(self, tokens: torch.Tensor, layers: range | None = None, reuse: bool = False) -> torch.Tensor:
        raise EngineUnsupported("The fallback engine decodes one row at a time (no shared prefix).")

    def select_rows(self, rows: list[int]) -> None:
        if list(rows) != [0]:
            raise EngineUnsupported("The fallback engine decodes one row at a time.")

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        raise EngineUnsupported(
            f"'{self.model.config.model_type}' runs on the fallback engine, which has no exit logits."
        )

    @torch.inference_mode()
    def forward(
        self,
        tokens: torch.Tensor | None = None,
        *,
        hidden_in=None,
        start: int | None = None,
        offsets: torch.Tensor | None = None,
        tree_mask=None,
        pad_mask=None,
        layers: range | None = None,
        output_hidden: tuple[int, ...] = (),
        last_only: bool = False,
    ) -> EngineOutput:
        if tree_mask is not None or pad_mask is not None or hidden_in is not None:
            raise EngineUnsupported(
                f"'{self.model.config.model_type}' runs on the fallback engine, which has no tree or padding masks."
            )
        if layers is not None and (layers.start, layers.stop) != (0, self.n_layers):
            raise EngineUnsupported(
                f"'{self.model.config.model_type}' runs on the fallback engine, which runs all layers at once."
            )
        start = self.length if start is None else start
        if self.cache.get_seq_length() > start:
            self.cache.crop(start)
        T = tokens.shape[1]
        if start + T > self.max_len:
            raise ValueError(f"The context holds {self.max_len} positions; writing {T} at {start} would overflow it.")
        if offsets is None:
            positions = torch.arange(start, start + T, device=self.device)[None]
        else:
            positions = self.length + offsets
        out = self.model(
            input_ids=tokens,
            past_key_values=self.cache,
            position_ids=positions,
            use_cache=True,
            output_hidden_states=bool(output_hidden),
            logits_to_keep=1 if last_only else 0,
        )
        hidden = {i: out.hidden_states[i] for i in output_hidden} if output_hidden else {}
        last = out.hidden_states[-1] if output_hidden else torch.empty(0)
        return EngineOutput(logits=out.logits.float(), last_hidden=last, hidden=hidden)
