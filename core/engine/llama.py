"""A compact decoder forward for llama-family checkpoints (Llama, SmolLM, Qwen2, Mistral).

The weights are the transformers model's own modules (projections, norms, MLP,
rotary embedding); this module owns what the decoding methods need and the stock
forward does not give cheaply: a preallocated slot-indexed KV cache, an explicit
tree / padding mask, and explicit layer ranges (early exit, pipeline stages).

Attention per layer, for new tokens at slots [start, start+T):
    q, k, v = W_q x, W_k x, W_v x;  q, k = RoPE(q, k, positions)
    K, V = cache[0 : start+T] after writing k, v at [start, start+T)
    o = softmax(q K^T / sqrt(d) + mask) V      (grouped-query: H_q / H_kv heads share K, V)
where mask lets new token i see every valid committed slot and the new tokens j
allowed by the tree mask (causal by default).
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from transformers.activations import ACT2FN
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from core.engine.base import EngineOutput, Stepping, check_kv_budget, kv_bytes
from core.engine.kv_cache import AutogradKVCache, KVCache
from core.engine.linear import module_projections, projections

SUPPORTED = ("llama", "mistral", "qwen2")
MAX_PREFIXES = 4  # reused prefixes kept per model (the SoT and SGD skeleton instructions: ~140 and ~390 tokens)
PREFIXES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {(prefix ids, layers): (k, v, hidden)}


def supports(model: torch.nn.Module) -> bool:
    return getattr(model.config, "model_type", None) in SUPPORTED


class LlamaParts:
    """The per-model half of the engine: a llama-family model's dimensions and forward pieces (fused projections,
    RoPE, attention, MLP, final norm + LM head), shared read-only by every engine of the model and by the graph
    engine's captured steps (``core.engine.graph.step_body``)."""

    def __init__(self, model: torch.nn.Module, trainable: bool = False) -> None:
        cfg = model.config
        self.model = model
        self.decoder = model.model
        self.layers = self.decoder.layers
        self.n_layers = len(self.layers)
        self.n_heads = cfg.num_attention_heads
        self.n_kv_heads = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.scale = self.head_dim**-0.5
        self.proj = module_projections(model) if trainable else projections(model)  # trainable: autograd reaches
        # the modules' own weights (training a draft layer through ``run_layers``)
        self.act = ACT2FN[cfg.hidden_act]

    def qkv(self, layer: int, x: torch.Tensor, cos_sin) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q [B, H_q, T, D] and k, v [B, H_kv, T, D] of x [B, T, H], RoPE applied to q and k."""
        proj = self.proj.layers[layer]
        B, T, _ = x.shape
        q, k, v = proj.qkv(x).split(proj.qkv_split, dim=-1)
        q = q.view(B, T, -1, self.head_dim).transpose(1, 2)
        k = k.view(B, T, -1, self.head_dim).transpose(1, 2)
        v = v.view(B, T, -1, self.head_dim).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, *cos_sin)
        return q, k, v

    def attend(self, layer: int, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask) -> torch.Tensor:
        """o = W_o softmax(q K^T / sqrt(d) + mask) V, [B, T, H]; causal when there is no mask and T > 1."""
        B, _, T, _ = q.shape
        o = F.scaled_dot_product_attention(
            q,
            keys,
            values,
            attn_mask=mask,
            is_causal=mask is None and T > 1,
            scale=self.scale,
            enable_gqa=self.n_heads != self.n_kv_heads,
        )
        return self.proj.layers[layer].o(o.transpose(1, 2).reshape(B, T, -1))

    def mlp(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """down(act(gate x) * up x)."""
        proj = self.proj.layers[layer]
        gate, up = proj.gate_up(x).split(proj.inner, dim=-1)
        return proj.down(self.act(gate) * up)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Final norm + LM head, in float32 (verification always compares float32 logits)."""
        return self.proj.lm_head(self.decoder.norm(h)).float()


_PARTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def llama_parts(model: torch.nn.Module, trainable: bool = False) -> LlamaParts:
    """The model's ``LlamaParts``, built once and kept while the model lives (a trainable one each time)."""
    if trainable:
        return LlamaParts(model, trainable=True)
    if model not in _PARTS:
        _PARTS[model] = LlamaParts(model)
    return _PARTS[model]


class LlamaEngine(Stepping):
    """Per-run engine: shared weights (``LlamaParts``), own KV cache of ``batch`` rows and ``max_len`` slots."""

    supports_layer_ranges = True
    supports_trees = True
    supports_rows = True

    def __init__(self, model: torch.nn.Module, batch: int = 1, max_len: int = 2048, trainable: bool = False) -> None:
        self.parts = parts = llama_parts(model, trainable)
        self.model, self.decoder, self.layers, self.n_layers = model, parts.decoder, parts.layers, parts.n_layers
        self.n_kv_heads, self.head_dim = parts.n_kv_heads, parts.head_dim
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.max_len = max_len
        self.trainable = trainable
        self._attach(batch)

    def _attach(self, batch: int) -> None:
        """This run's KV cache of ``batch`` rows and ``max_len`` slots, each row's next position (``row_len``),
        and the uniforms of a sampled ``decode``."""
        itemsize = torch.empty(0, dtype=self.dtype).element_size()
        check_kv_budget(
            kv_bytes(self.n_layers, batch, self.n_kv_heads, self.head_dim, self.max_len, itemsize), batch, self.max_len
        )
        cache = AutogradKVCache if self.trainable else KVCache
        self.cache = cache(self.n_layers, batch, self.n_kv_heads, self.head_dim, self.max_len, self.device, self.dtype)
        self.row_len = torch.zeros(batch, dtype=torch.long, device=self.device)  # [B]
        self.uniform = torch.zeros(batch, dtype=torch.float64, device=self.device)  # [B]
        self.next: torch.Tensor | None = None  # [B, 1] the tokens ``decode`` feeds next

    # -- cache bookkeeping -------------------------------------------------
    @property
    def length(self) -> int:
        return self.cache.length

    def check_room(self, start: int, n: int) -> None:
        if start + n > self.max_len:
            raise ValueError(f"The KV cache holds {self.max_len} positions; writing {n} at {start} would overflow it.")

    def commit(self, n: int) -> None:
        """Accept the last ``n`` written slots (written at [length, length+n))."""
        s = slice(self.cache.length, self.cache.length + n)
        self.row_len += self.cache.valid[:, s].sum(dim=1)
        self.cache.length += n

    def rollback(self, length: int) -> None:
        dropped = slice(length, self.cache.length)
        self.row_len -= self.cache.valid[:, dropped].sum(dim=1)
        self.cache.rollback(length)

    def keep(self, slots: list[int] | torch.Tensor) -> None:
        """Commit a subset of written slots (a tree's accepted path; a tensor on the engine's device keeps the
        host from reading or uploading anything) as the next slots."""
        start = self.cache.length
        self.cache.keep(slots)
        self.row_len += self.cache.valid[:, start : self.cache.length].sum(dim=1)

    def prefill_shared(self, tokens: torch.Tensor, layers: range | None = None, reuse: bool = False) -> torch.Tensor:
        """Prefill a prefix [1, P] that every row starts with: one row's forward, its K/V copied to all rows
        (an empty engine only). Rows then continue with their own suffixes. Returns the prefix's last
        hidden states [1, P, H]. ``reuse``: the prefix is one that many runs share (a fixed instruction): its
        K/V are kept with the model (``PREFIXES``) and the next run with it copies them instead of a forward."""
        if self.cache.length:
            raise ValueError("A shared prefix must be the first thing written to the cache.")
        key = (tuple(tokens[0].tolist()), None if layers is None else (layers.start, layers.stop)) if reuse else None
        kept = PREFIXES.get(self.model, {}).get(key) if reuse else None
        k, v, hidden = kept if kept is not None else self._prefix_kv(tokens, layers)
        if reuse and kept is None:
            memo = PREFIXES.setdefault(self.model, {})
            if len(memo) >= MAX_PREFIXES:
                memo.pop(next(iter(memo)))  # the oldest
            memo[key] = (k, v, hidden)
        n = tokens.shape[1]
        self.cache.k[:, :, :, :n] = k  # broadcast over the batch rows
        self.cache.v[:, :, :, :n] = v
        self.cache.valid[:, :n] = True
        self.commit(n)
        return hidden

    def _prefix_kv(self, tokens: torch.Tensor, layers: range | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The prefix's K/V [L, 1, H_kv, P, D] each and last hidden states [1, P, H], from a one-row forward."""
        full, row_len = self.cache, self.row_len
        one = KVCache(self.n_layers, 1, self.n_kv_heads, self.head_dim, tokens.shape[1], self.device, self.dtype)
        self.cache, self.row_len = one, row_len[:1].clone()
        try:
            out = LlamaEngine.forward(self, tokens, layers=layers, last_only=True)  # eager: no step shape of a
            # temporary cache
        finally:
            self.cache, self.row_len = full, row_len
        return one.k, one.v, out.last_hidden

    def select_rows(self, rows: list[int]) -> None:
        """Continue with batch rows ``rows`` only (the others finished)."""
        self.cache.select_rows(rows)
        index = torch.as_tensor(rows, dtype=torch.long, device=self.device)
        self.row_len, self.uniform = self.row_len[index], self.uniform[index]

    # -- forward -------------------------------------------------------------
    def positions(self, start: int, valid_new: torch.Tensor, offsets: torch.Tensor | None) -> torch.Tensor:
        """Position ids [B, T]: each row's committed length plus ``offsets`` [B or 1, T] (a tree node's depth, a
        token's distance from the committed length), by default the count of valid tokens from the committed
        length on (a chain continuing at ``start``; left padding skipped)."""
        if offsets is None:
            offsets = start - self.cache.length + torch.cumsum(valid_new.long(), dim=1) - 1
        return self.row_len[:, None] + offsets

    def _mask(self, start: int, T: int, tree_mask: torch.Tensor | None, always: bool = False) -> torch.Tensor | None:
        """Boolean attention mask [B, 1, T, start+T] (True = attend), or None when plain causal suffices
        (unless ``always``).

        Committed slots [0, length) are always visible. ``tree_mask`` [T, start+T-length] says
        which uncommitted slots [length, start+T) each new token sees (a draft tree's
        ancestors); without it, new tokens see every earlier slot and each other causally.
        """
        if not always and tree_mask is None and not self.cache.padded and (T == 1 or start == 0):
            return None  # SDPA alone: all slots (one new token) or is_causal (a fresh prefill)
        on = {"dtype": torch.bool, "device": self.device}
        if tree_mask is None:
            prefix = torch.ones(T, start, **on)
            structure = torch.ones(T, T, **on).tril()
        else:
            base = self.cache.length
            if tuple(tree_mask.shape) != (T, start + T - base):
                raise ValueError(
                    f"tree_mask must be [{T}, {start + T - base}] (new tokens x uncommitted slots), "
                    f"got {list(tree_mask.shape)}."
                )
            prefix = torch.ones(T, base, **on)
            structure = tree_mask.to(self.device)
        allowed = torch.cat([prefix, structure], dim=1)  # [T, start+T]
        valid = self.cache.valid[:, : start + T]  # [B, start+T]
        # a padding query row would attend to nothing (NaN); let it see itself
        itself = torch.cat([torch.zeros(T, start, **on), torch.eye(T, **on)], dim=1)
        return ((allowed[None] & valid[:, None, :]) | itself[None])[:, None]

    def _attention(self, layer: int, x: torch.Tensor, cos_sin, start: int, mask) -> torch.Tensor:
        q, k, v = self.parts.qkv(layer, x, cos_sin)
        keys, values = self.cache.write(layer, start, k, v)
        return self.parts.attend(layer, q, keys, values, mask)

    def run_layers(
        self,
        h: torch.Tensor,
        positions: torch.Tensor,
        start: int,
        layers: range,
        tree_mask: torch.Tensor | None = None,
        output_hidden: tuple[int, ...] = (),
    ) -> tuple[torch.Tensor, dict]:
        """Run decoder layers ``layers`` on hidden states h [B, T, H] at slots [start, start+T)."""
        T = h.shape[1]
        mask = self._mask(start, T, tree_mask)
        cos_sin = self.decoder.rotary_emb(h, positions)
        hidden = {layers.start: h} if layers.start in output_hidden else {}
        for i in layers:
            block = self.layers[i]
            h = h + self._attention(i, block.input_layernorm(h), cos_sin, start, mask)
            h = h + self.parts.mlp(i, block.post_attention_layernorm(h))
            if i + 1 in output_hidden:
                hidden[i + 1] = h
        return h, hidden

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Final norm + LM head, in float32 (verification always compares float32 logits)."""
        return self.parts.logits(h)

    @torch.inference_mode()
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
        """One forward of T new tokens per row.

        tokens [B, T], or hidden_in [B, T, H] (needed when ``layers`` starts after 0; a feature-level
        draft feeds its fused inputs this way at layer 0); start: first
        slot to write (default: committed length); offsets [B or 1, T]: positions relative to each row's
        committed length (default: continue each row; a tree gives its nodes' depths); tree_mask
        [T, start+T-length] bool over the uncommitted slots (default causal), on the engine's device;
        pad_mask [B, T] bool marks real tokens (False = left padding); layers: a range of
        decoder layers (default all); output_hidden: layer indices whose hidden states to
        return; last_only: logits of the last position only.
        """
        layers = layers if layers is not None else range(self.n_layers)
        start = self.cache.length if start is None else start
        if hidden_in is not None:
            h = hidden_in
        elif layers.start == 0:
            h = self.decoder.embed_tokens(tokens)
        else:
            raise ValueError("A layer range that starts after layer 0 needs hidden_in.")
        B, T, _ = h.shape
        self.check_room(start, T)
        if pad_mask is not None:
            self.cache.valid[:, start : start + T] = pad_mask
            self.cache.padded = self.cache.padded or not bool(pad_mask.all())  # a prefill's one read
        else:
            self.cache.valid[:, start : start + T] = True
        positions = self.positions(start, self.cache.valid[:, start : start + T], offsets)
        h, hidden = self.run_layers(h, positions, start, layers, tree_mask, output_hidden)
        if layers.stop < self.n_layers:
            return EngineOutput(logits=None, last_hidden=h, hidden=hidden)
        out = h[:, -1:] if last_only else h
        return EngineOutput(logits=self.logits(out), last_hidden=h, hidden=hidden)
