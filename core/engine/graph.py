"""A graph-captured engine: the llama engine's forward on static buffers, replayed as one CUDA graph per
shape bucket (docs/methods.md, "GPU engine").

A CUDA graph replays fixed kernels on fixed addresses, so everything a step changes lives in buffers
allocated once per bucket (``Static``): the tokens [B, T_b] (or hidden states [B, T_b, H]), their
positions [B, T_b], the cache slots their K/V go to [T_b], and an attention mask [B, 1, T_b, S] over
every slot of the cache (committed, this step's, unused). K/V are written with ``index_copy_`` at the
slot buffer and attention reads the whole cache under the mask, so no shape depends on the context
length and nothing in the step reads back to the host. A forward copies its inputs into the bucket's
buffers (T new tokens padded to T_b; a padding query sees only its own slot) and replays; it returns
copies of the first T rows of the bucket's float32 logits and hidden states.

Buckets: 1, 2, 4, 8, 16, 32 and 64 new tokens per row (decode, draft trees, BPD blocks, short prefills) for
any row count up to 16 (skeleton rows), per layer range and input kind (tokens, or hidden states: a
self-draft's first layers and the verifier's rest, SPEED's stages). A forward outside them (a longer
prefill, intermediate hidden states) runs the llama engine's eager forward on the same cache.

``make_engine`` chooses this engine on CUDA. On a CPU the static forward runs eagerly, without capture:
that is how the CPU tests hold it to the llama engine's results.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.engine.base import EngineOutput
from core.engine.llama import LlamaEngine

BUCKETS = (1, 2, 4, 8, 16, 32, 64)
MAX_GRAPH_ROWS = 16


def bucket(n: int) -> int | None:
    """The smallest bucket holding ``n`` new tokens per row, or None (the eager forward)."""
    return next((b for b in BUCKETS if b >= n), None)


@dataclass
class Static:
    """One bucket's buffers (per row count, size, layer range and input kind): inputs the step fills, outputs
    the replay writes, and the captured graph."""

    inputs: torch.Tensor  # [B, T_b] token ids, or [B, T_b, H] hidden states entering the layer range
    layers: range
    positions: torch.Tensor  # [B, T_b] long
    slots: torch.Tensor  # [T_b] long
    mask: torch.Tensor  # [B, 1, T_b, S] bool
    logits: torch.Tensor | None  # [B, T_b, V] float32; None when the range stops before the last layer
    hidden: torch.Tensor  # [B, T_b, H]
    graph: object | None = None  # torch.cuda.CUDAGraph once captured


class GraphEngine(LlamaEngine):
    """The llama engine with static buffers and, on CUDA, one captured graph per (rows, bucket)."""

    def __init__(self, model: torch.nn.Module, batch: int = 1, max_len: int = 2048, trainable: bool = False) -> None:
        super().__init__(model, batch=batch, max_len=max_len + BUCKETS[-1], trainable=trainable)  # + padding slots
        self.max_len = max_len
        self.static: dict[tuple, Static] = {}  # (rows, bucket, first layer, last, input kind, cache address, slots)
        self.capture = self.device.type == "cuda"

    def select_rows(self, rows: list[int]) -> None:
        super().select_rows(rows)
        self.static.clear()  # new cache tensors: graphs captured on the old ones would write there

    def _fits(self, inputs: torch.Tensor, output_hidden, start: int) -> bool:
        size = bucket(inputs.shape[1])
        return (
            size is not None
            and not output_hidden
            and inputs.shape[0] <= MAX_GRAPH_ROWS
            and start + size <= self.cache.max_len
        )

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
    ) -> EngineOutput:
        """``LlamaEngine.forward``; in a bucket, through the static buffers (and the bucket's graph)."""
        start = self.cache.length if start is None else start
        layers = layers if layers is not None else range(self.n_layers)
        inputs = hidden_in if hidden_in is not None else tokens
        if inputs is None or (layers.start and hidden_in is None) or not self._fits(inputs, output_hidden, start):
            return super().forward(
                tokens,
                hidden_in=hidden_in,
                start=start,
                positions=positions,
                tree_mask=tree_mask,
                pad_mask=pad_mask,
                layers=layers,
                output_hidden=output_hidden,
                last_only=last_only,
            )
        return self._static_step(inputs, layers, start, positions, tree_mask, pad_mask, last_only)

    @torch.inference_mode()
    def _static_step(self, inputs, layers: range, start: int, positions, tree_mask, pad_mask, last_only: bool):
        B, T = inputs.shape[:2]
        self.cache.check_room(start, T)
        self.cache.valid[:, start : start + T] = True if pad_mask is None else pad_mask
        self.cache.padded = self.cache.padded or (pad_mask is not None and not bool(pad_mask.all()))
        if positions is None:
            positions = self.default_positions(self.cache.valid[:, start : start + T])
        s = self._buffers(B, bucket(T), layers, inputs.dtype)
        self._fill(s, inputs, positions, start, self._mask(start, T, tree_mask, always=True))
        self._replay(s)
        out = slice(T - 1, T) if last_only else slice(0, T)
        logits = s.logits[:, out].clone() if s.logits is not None else None
        return EngineOutput(logits=logits, last_hidden=s.hidden[:, :T].clone())

    def _buffers(self, rows: int, size: int, layers: range, kind: torch.dtype) -> Static:
        cache = (self.cache.k.data_ptr(), self.cache.max_len)
        key = (rows, size, layers.start, layers.stop, kind, *cache)
        if key not in self.static:  # buffers and graphs of another cache (prefill_shared's) are dropped
            self.static = {k: v for k, v in self.static.items() if k[-2:] == cache}
            H, S = self.decoder.embed_tokens.embedding_dim, self.cache.max_len
            V = self.model.get_output_embeddings().out_features
            on = {"device": self.device}
            shape = (rows, size) if kind == torch.long else (rows, size, H)  # token ids or hidden states
            self.static[key] = Static(
                inputs=torch.zeros(shape, dtype=kind, **on),
                layers=layers,
                positions=torch.zeros(rows, size, dtype=torch.long, **on),
                slots=torch.zeros(size, dtype=torch.long, **on),
                mask=torch.zeros(rows, 1, size, S, dtype=torch.bool, **on),
                logits=torch.zeros(rows, size, V, dtype=torch.float32, **on) if layers.stop == self.n_layers else None,
                hidden=torch.zeros(rows, size, H, dtype=self.dtype, **on),
            )
        return self.static[key]

    def _fill(self, s: Static, inputs, positions, start: int, mask: torch.Tensor) -> None:
        """Copy a step's inputs into the bucket's buffers; the padding tokens write their own slots past the
        step's and attend to nothing else."""
        T, size = inputs.shape[1], s.inputs.shape[1]
        s.inputs.zero_()
        s.inputs[:, :T] = inputs
        s.positions.zero_()
        s.positions[:, :T] = positions
        s.slots.copy_(torch.arange(start, start + size, device=self.device))
        s.mask.zero_()
        s.mask[:, :, :T, : start + T] = mask
        pad = torch.arange(T, size, device=self.device)
        s.mask[:, 0, pad, start + pad] = True

    def _replay(self, s: Static) -> None:
        """Run the static forward: eagerly on a CPU; on CUDA, captured on first use (after a warm-up on a side
        stream, which also computes this step) and replayed."""
        if not self.capture:
            self._static_forward(s)
            return
        if s.graph is None:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._static_forward(s)
            torch.cuda.current_stream().wait_stream(side)
            s.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(s.graph):
                self._static_forward(s)
        s.graph.replay()

    def _static_forward(self, s: Static) -> None:
        """Every layer on the bucket's buffers: K/V written at ``slots``, attention over all S slots under
        ``mask``; logits (float32) and last hidden states into the output buffers."""
        h = self.decoder.embed_tokens(s.inputs) if s.inputs.dtype == torch.long else s.inputs
        cos_sin = self.decoder.rotary_emb(h, s.positions)
        for i in s.layers:
            block = self.layers[i]
            x = block.input_layernorm(h)
            q, k, v = self._qkv(i, x, cos_sin)
            self.cache.k[i].index_copy_(2, s.slots, k)
            self.cache.v[i].index_copy_(2, s.slots, v)
            h = h + self._attend(i, q, self.cache.k[i], self.cache.v[i], s.mask)
            h = h + self._mlp(i, block.post_attention_layernorm(h))
        s.hidden.copy_(h)
        if s.logits is not None:
            s.logits.copy_(self.logits(h))
