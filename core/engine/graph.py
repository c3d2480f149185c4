"""The graph engine (docs/methods.md, "GPU engine"): every step a replay of a CUDA graph captured once per model,
row count and step shape, and reused by every later run.

A CUDA graph replays fixed kernels on fixed addresses, so what a step touches lives in a ``Workspace`` that the
runs of one model share, one run at a time: the KV cache, two device counters (the committed slots, and each
row's next position), a buffer of uniforms for sampling, and per step shape its static buffers and its graph.
Inside the graph, everything that depends on where the run stands is derived on the device from the counters:
the slots the new K/V go to (committed length + ``at`` + 0..T_b-1), the positions (each row's length + the
step's offsets) and the attention mask over every slot of the cache (committed and valid, or uncommitted and
allowed by the step's ``structure``). A step copies its inputs into the buffers and replays; nothing is built on
the host and nothing is read back. ``decode`` is a graph of its own: the forward, the choice of the next token
(argmax, or a draw with the uniforms the run refills before each replay), that token written into the graph's
own input, and the counters advanced, so an AR step costs one replay and the one read of its token.

Step shapes: 1, 2, 4, ..., 64 new tokens per row (padded up; a padding token writes its own slot past the step's
and sees nothing else), up to 16 rows, per layer range, input kind (tokens, or hidden states: a self-draft's
first layers and the verifier's rest, SPEED's stages, a feature draft) and ``at``, the first new slot's distance
past the committed length (a draft level written after the levels before it). A forward outside them (a longer
prefill, intermediate hidden states, padded rows) runs the llama engine's eager forward on the same cache.

``make_engine`` chooses this engine on CUDA. On a CPU the llama engine runs; the tests build this engine there to
hold its static steps to the llama engine's results: with ``capture=False`` each step runs its body eagerly, with
``capture=True`` the whole capture flow runs (warm-up, state put back, replay), the replay running the body. ``BUILDS`` counts the step shapes built (on CUDA, the captures) and their seconds.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
import weakref
from dataclasses import dataclass, field

import torch

from core.engine.base import EngineOutput, check_kv_budget, kv_bytes
from core.engine.kv_cache import KVCache
from core.engine.llama import LlamaEngine, LlamaParts
from core.engine.sync import upload
from core.sampling import Sampler

BUCKETS = (1, 2, 4, 8, 16, 32, 64)
MAX_GRAPH_ROWS = 16
MIN_CAPACITY = 1024  # one workspace for every run up to 1,024 positions: a short warm-up captures the graphs
# the timed runs of up to a few hundred tokens replay


def bucket(n: int, least: int = 1) -> int | None:
    """The smallest bucket holding ``n`` new tokens per row and at least ``least``, or None (the eager forward)."""
    return next((b for b in BUCKETS if b >= max(n, least)), None)


def capacity(max_len: int) -> int:
    """The slots of the workspace a run of ``max_len`` positions gets: at least ``MIN_CAPACITY``, a power of two,
    so runs of similar lengths share one (and its graphs)."""
    size = MIN_CAPACITY
    while size < max_len:
        size *= 2
    return size


class Builds:
    """How many step shapes were built (on CUDA: captured) in this process and how long that took; a run's
    clock leaves the seconds out (``core.recorder``)."""

    def __init__(self) -> None:
        self.count, self.seconds = 0, 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.seconds += seconds


BUILDS = Builds()


@dataclass
class Static:
    """One step shape's buffers (per rows, bucket T_b, ``at``, layer range, input kind): the inputs a step fills,
    the outputs a replay writes, and the captured graph."""

    inputs: torch.Tensor  # [B, T_b] token ids, or [B, T_b, H] hidden states entering the layer range
    offsets: torch.Tensor  # [B, T_b] long: positions relative to each row's committed length
    structure: torch.Tensor  # [T_b, at + T_b] bool: which uncommitted slots [length, length + at + T_b) each sees
    at: int  # the first new slot's distance past the committed length
    layers: range
    logits: torch.Tensor | None  # [B, T_b, V] float32; None when the range stops before the last layer
    hidden: torch.Tensor  # [B, T_b, H]
    out: torch.Tensor | None = None  # ``decode``: [B] the chosen tokens
    graph: object | None = None  # torch.cuda.CUDAGraph once captured


@dataclass
class Workspace:
    """What the graphs of one model, row count and capacity capture; held by one engine at a time."""

    cache: KVCache
    length: torch.Tensor  # [1] long: committed slots, the device's copy of the host's count
    row_len: torch.Tensor  # [B] long: each row's next position
    uniform: torch.Tensor  # [B] float64: a sampled step's uniforms
    slots: torch.Tensor  # [S] long: 0..S-1
    steps: dict[tuple, Static] = field(default_factory=dict)
    busy: bool = False

    def release(self) -> None:
        self.busy = False


_POOL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # module -> {(rows, capacity): [Workspace]}


def acquire(engine: GraphEngine, batch: int, size: int) -> Workspace:
    """A free workspace of ``engine``'s model for ``batch`` rows and ``size`` slots (+ the largest bucket, where
    a step's padding writes), reset for a new run; a new one when every existing one is held."""
    spaces = _POOL.setdefault(engine.model, {}).setdefault((batch, size), [])
    ws = next((w for w in spaces if not w.busy), None)
    if ws is None:
        slots = size + BUCKETS[-1]
        itemsize = torch.empty(0, dtype=engine.dtype).element_size()
        check_kv_budget(kv_bytes(engine.n_layers, batch, engine.n_kv_heads, engine.head_dim, slots, itemsize), batch, slots)
        on = {"device": engine.device}
        cache = KVCache(engine.n_layers, batch, engine.n_kv_heads, engine.head_dim, slots, engine.device, engine.dtype)
        ws = Workspace(
            cache=cache,
            length=torch.zeros(1, dtype=torch.long, **on),
            row_len=torch.zeros(batch, dtype=torch.long, **on),
            uniform=torch.zeros(batch, dtype=torch.float64, **on),
            slots=torch.arange(slots, **on),
        )
        spaces.append(ws)
    ws.busy = True
    ws.cache.reset()
    ws.length.zero_()
    ws.row_len.zero_()
    return ws


class GraphEngine(LlamaEngine):
    """The llama engine whose steps replay graphs captured in a shared ``Workspace`` (see the module
    docstring)."""

    def __init__(
        self,
        model: torch.nn.Module,
        batch: int = 1,
        max_len: int = 2048,
        trainable: bool = False,
        capture: bool | None = None,
        compiled: bool | None = None,
    ) -> None:
        super().__init__(model, batch=batch, max_len=max_len, trainable=trainable)
        self.capture = self.device.type == "cuda" if capture is None else capture
        # ``decode`` through torch.compile instead of a hand-captured graph (DECODING_LAB_COMPILE=1)
        self.compiled = os.environ.get("DECODING_LAB_COMPILE") == "1" if compiled is None else compiled
        # every step at least this wide (DECODING_LAB_MIN_BUCKET): AR's step then runs the verification's kernels,
        # which in bfloat16 may keep a method's tokens identical to AR's (docs/methods.md, "GPU engine")
        self.least = int(os.environ.get("DECODING_LAB_MIN_BUCKET", "1"))

    def _attach(self, batch: int) -> None:
        self.ws = acquire(self, batch, capacity(self.max_len))
        weakref.finalize(self, self.ws.release)
        self.cache, self.row_len, self.uniform = self.ws.cache, self.ws.row_len, self.ws.uniform

    # -- the device's copy of the committed length ---------------------------------------------------
    def commit(self, n: int) -> None:
        super().commit(n)
        self.ws.length.fill_(self.cache.length)

    def rollback(self, length: int) -> None:
        super().rollback(length)
        self.ws.length.fill_(self.cache.length)

    def keep(self, slots: list[int] | torch.Tensor) -> None:
        super().keep(slots)
        self.ws.length.fill_(self.cache.length)

    def select_rows(self, rows: list[int]) -> None:
        """Continue with rows ``rows``: moved to the front of the workspace's cache in place (graphs hold its
        addresses), the step shapes of fewer rows then apply."""
        index = upload(rows, self.device)
        self.cache.narrow_rows(index)
        self.row_len[: len(rows)] = self.row_len.index_select(0, index)
        self.row_len = self.ws.row_len[: len(rows)]
        self.uniform = self.ws.uniform[: len(rows)]

    # -- steps ---------------------------------------------------------------------------------------
    def _fits(self, rows: int, size: int | None, at: int, output_hidden, pad_mask) -> bool:
        return (
            size is not None
            and not output_hidden
            and pad_mask is None
            and rows <= MAX_GRAPH_ROWS
            and at >= 0
            and self.cache.length + at + size <= self.cache.max_len
        )

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
        """``LlamaEngine.forward``; in a step shape, a replay of its graph."""
        start = self.cache.length if start is None else start
        layers = layers if layers is not None else range(self.n_layers)
        inputs = hidden_in if hidden_in is not None else tokens
        at = start - self.cache.length
        fits = inputs is not None and not (layers.start and hidden_in is None)
        if not fits or not self._fits(inputs.shape[0], bucket(inputs.shape[1], self.least), at, output_hidden, pad_mask):
            return super().forward(
                tokens,
                hidden_in=hidden_in,
                start=start,
                offsets=offsets,
                tree_mask=tree_mask,
                pad_mask=pad_mask,
                layers=layers,
                output_hidden=output_hidden,
                last_only=last_only,
            )
        return self._step(inputs, layers, start, at, offsets, tree_mask, last_only)

    @torch.inference_mode()
    def _step(self, inputs, layers: range, start: int, at: int, offsets, tree_mask, last_only: bool) -> EngineOutput:
        B, T = inputs.shape[:2]
        self.check_room(start, T)
        self.cache.valid[:, start : start + T] = True
        kind = "tokens" if inputs.dtype == torch.long else "hidden"
        s = self._static((kind, B, bucket(T, self.least), at, layers.start, layers.stop))
        s.inputs[:, :T] = inputs
        s.offsets[:, :T] = at + self.ws.slots[:T] if offsets is None else offsets
        self._structure(s, T, tree_mask)
        self._run(s)
        out = slice(T - 1, T) if last_only else slice(0, T)
        logits = s.logits[:, out].clone() if s.logits is not None else None
        return EngineOutput(logits=logits, last_hidden=s.hidden[:, :T].clone())

    @torch.inference_mode()
    def decode(self, sampler: Sampler, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """``LlamaEngine.decode`` as one replay: forward, choice and the next input in the graph."""
        B = self.row_len.shape[0]
        if B > MAX_GRAPH_ROWS or (tokens is not None and tokens.shape[1] > 1):  # a prompt: forward, then choose
            return super().decode(sampler, tokens)
        self.check_room(self.cache.length, 1)
        s = self._static(("decode", B, bucket(1, self.least), 0, 0, self.n_layers, sampler.key))
        feed = tokens if tokens is not None else self.next  # None: the graph's input already holds it
        if feed is not None:
            s.inputs.copy_(feed)
        sampler.refill(self.uniform)
        self._run(s, sampler)
        self.cache.length += 1
        self.next = None
        return s.out.clone()

    def _structure(self, s: Static, T: int, tree_mask: torch.Tensor | None) -> None:
        """The step's visibility of uncommitted slots, padded to the bucket: the caller's tree mask [T, at + T]
        (default: every slot before the step and the new tokens causally); a padding token sees only itself."""
        size, at = s.inputs.shape[1], s.at
        s.structure.zero_()
        if tree_mask is None:
            s.structure[:T, :at] = True
            s.structure[:T, at : at + T] = self.ws.slots[:T, None] >= self.ws.slots[None, :T]  # causal
        else:
            s.structure[:T, : at + T] = tree_mask
        s.structure[T:, at + T :] = self._eye(size - T)

    def _eye(self, n: int) -> torch.Tensor:
        return self.ws.slots[:n, None] == self.ws.slots[None, :n]

    def _static(self, key: tuple) -> Static:
        if key not in self.ws.steps:
            kind, rows, size, at, first, stop = key[:6]
            H, V = self.decoder.embed_tokens.embedding_dim, self.model.get_output_embeddings().out_features
            on = {"device": self.device}
            shape = (rows, size, H) if kind == "hidden" else (rows, size)
            self.ws.steps[key] = Static(
                inputs=torch.zeros(shape, dtype=self.dtype if kind == "hidden" else torch.long, **on),
                offsets=torch.zeros(rows, size, dtype=torch.long, **on),
                structure=torch.zeros(size, at + size, dtype=torch.bool, **on),
                at=at,
                layers=range(first, stop),
                logits=torch.zeros(rows, size, V, dtype=torch.float32, **on) if stop == self.n_layers else None,
                hidden=torch.zeros(rows, size, H, dtype=self.dtype, **on),
                out=torch.zeros(rows, dtype=torch.long, **on) if kind == "decode" else None,
            )
            if kind == "decode":  # one token per row at offset 0, the rest padding
                self._structure(self.ws.steps[key], 1, None)
        return self.ws.steps[key]

    def _run(self, s: Static, sampler: Sampler | None = None) -> None:
        """The step: eagerly without capture; on CUDA captured on first use (after a warm-up on a side stream,
        the state it changes put back) and replayed."""
        if s.graph is None:
            t0 = time.perf_counter()
            if self.capture:
                self._capture(s, sampler)
            BUILDS.add(time.perf_counter() - t0 if self.capture else 0.0)
            s.graph = s.graph or "eager"
        if s.graph == "eager":
            step_body(self.parts, self.ws, s, sampler)
        else:
            s.graph.replay()

    def _capture(self, s: Static, sampler: Sampler | None) -> None:
        """Warm up (on CUDA on a side stream), put back what the warm-up changed (``decode`` advances the
        counters and writes its input), then capture. On a CPU, where nothing can be captured, a replay runs the
        body again: the tests run this same flow there."""
        kept = [t.clone() for t in (self.ws.length, self.row_len, s.inputs)]  # [1], [B], [B, T_b(, H)]
        cuda = self.device.type == "cuda"
        side = torch.cuda.Stream() if cuda else None
        if cuda:
            side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side) if cuda else contextlib.nullcontext():
            step_body(self.parts, self.ws, s, sampler)
        if cuda:
            torch.cuda.current_stream().wait_stream(side)
        for t, old in zip((self.ws.length, self.row_len, s.inputs), kept, strict=True):
            t.copy_(old)
        if self.compiled and s.out is not None:
            s.graph = CompiledStep(self.parts, self.ws, s, sampler)
            return
        if not cuda:
            s.graph = "eager"  # replayed by running the body
            return
        s.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(s.graph):
            step_body(self.parts, self.ws, s, sampler)



def step_body(parts: LlamaParts, ws: Workspace, s: Static, sampler: Sampler | None = None) -> None:
    """A step on its buffers (what a graph captures): every layer of the range, the slots, positions and mask
    derived from the workspace's counters, K/V written at the slots, attention over all S slots; the float32
    logits and last hidden states into the output buffers; for ``decode`` also the choice, written into the
    step's own input, and the counters advanced. Reads the first B rows of the workspace (``narrow_rows``
    keeps the running rows there)."""
    rows, size = s.offsets.shape
    k_all, v_all, valid_all = ws.cache.full
    valid, row_len = valid_all[:rows], ws.row_len[:rows]
    slots = ws.length + s.at + ws.slots[:size]  # [T_b]
    positions = row_len[:, None] + s.offsets  # [B, T_b]
    rel = ws.slots - ws.length  # [S]: slot - committed length
    width = s.structure.shape[1]
    pending = s.structure.index_select(1, rel.clamp(0, width - 1)) & ((rel >= 0) & (rel < width))  # [T_b, S]
    mask = (((rel < 0) & valid)[:, None, :] | pending[None])[:, None]  # [B, 1, T_b, S]
    h = parts.decoder.embed_tokens(s.inputs) if s.inputs.dtype == torch.long else s.inputs
    cos_sin = parts.decoder.rotary_emb(h, positions)
    for i in s.layers:
        block = parts.layers[i]
        k_cache, v_cache = k_all[i, :rows], v_all[i, :rows]  # [B, H_kv, S, D]
        q, k, v = parts.qkv(i, block.input_layernorm(h), cos_sin)
        k_cache.index_copy_(2, slots, k)
        v_cache.index_copy_(2, slots, v)
        h = h + parts.attend(i, q, k_cache, v_cache, mask)
        h = h + parts.mlp(i, block.post_attention_layernorm(h))
    s.hidden.copy_(h)
    if s.logits is not None:
        s.logits.copy_(parts.logits(h))
    if s.out is not None:
        chosen = sampler.choose(s.logits[:, 0], ws.uniform[:rows])
        s.out.copy_(chosen)
        s.inputs[:, 0].copy_(chosen)
        ws.length.add_(1)
        row_len.add_(1)


class CompiledStep:
    """The AR step compiled by ``torch.compile`` (mode "reduce-overhead", fullgraph: inductor's fused kernels,
    replayed by inductor as a CUDA graph, as gpt-fast does) instead of captured by hand: the alternative issue 28
    weighs against the hand-captured graph (``GraphEngine(compiled=True)``; docs/methods.md, "GPU engine").
    The workspace's tensors keep their addresses, so inductor may replay with them mutated in place."""

    def __init__(self, parts: LlamaParts, ws: Workspace, s: Static, sampler: Sampler) -> None:
        for t in (*ws.cache.full, ws.length, ws.row_len, ws.uniform, ws.slots, s.inputs, s.offsets, s.structure):
            torch._dynamo.mark_static_address(t)
        for t in (s.logits, s.hidden, s.out):
            torch._dynamo.mark_static_address(t)
        self.replay = torch.compile(
            functools.partial(step_body, parts, ws, s, sampler), mode="reduce-overhead", fullgraph=True
        )
