"""The graph engine's static steps (buffers per step shape in a shared workspace, slots, positions and mask derived
on the device from the counters, attention over the whole cache) against the llama engine, on the CPU where
they run eagerly; with ``capture=True`` the capture flow too (warm-up, state put back, replay). Its CUDA
capture is checked in test_gpu.py."""

import gc

import pytest
import torch

from core.config import GenerationConfig, SamplingConfig
from core.engine import engine_class, graph, make_engine
from core.engine.graph import BUCKETS, BUILDS, GraphEngine, bucket, capacity
from core.engine.llama import LlamaEngine
from core.registry import METHODS
from core.sampling import Sampler, make_generator
from core.speculative.tree import TreeTopology
from core.trace import RunFinished

ATOL = 2e-5


def ids(n, vocab, seed=1, rows=1):
    return torch.randint(0, vocab, (rows, n), generator=torch.Generator().manual_seed(seed))


def both(tiny, **kw):
    return LlamaEngine(tiny.model, **kw), GraphEngine(tiny.model, **kw)


def same(a, b):
    torch.testing.assert_close(b.logits, a.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(b.last_hidden, a.last_hidden, atol=ATOL, rtol=0)


def shapes(engine: GraphEngine) -> set[tuple]:
    return set(engine.ws.steps)


def test_buckets_cover_1_to_64_tokens_and_nothing_more():
    assert [bucket(n) for n in (1, 2, 3, 5, 9, 33, 64)] == [1, 2, 4, 8, 16, 64, 64] and bucket(65) is None
    assert BUCKETS == tuple(sorted(BUCKETS))
    assert [capacity(n) for n in (1, 1024, 1025, 3000)] == [1024, 1024, 2048, 4096]


def test_prefill_and_decode_steps_equal_the_llama_engine(tiny):
    eager, graph = both(tiny, max_len=96)
    x = ids(80, tiny.config.vocab_size)
    before = shapes(graph)  # the workspace is shared with earlier runs on this model
    for start, stop in [(0, 5), (5, 6), (6, 7), (7, 10), (10, 74), (74, 80)]:  # 64 tokens: the largest bucket
        same(eager.forward(x[:, start:stop]), graph.forward(x[:, start:stop]))
        eager.commit(stop - start)
        graph.commit(stop - start)
    assert {key[2] for key in shapes(graph) - before} <= {1, 4, 8, 64}
    assert {1, 4, 8, 64} <= {key[2] for key in shapes(graph)}
    last = eager.forward(x[:, :1], last_only=True), graph.forward(x[:, :1], last_only=True)
    same(*last)


def test_a_longer_prefill_runs_eagerly_on_the_same_cache(tiny):
    eager, graph = both(tiny, max_len=128)
    x = ids(100, tiny.config.vocab_size)
    graph.ws.steps.clear()
    same(eager.forward(x[:, :90]), graph.forward(x[:, :90]))  # 90 tokens: no bucket
    assert not graph.ws.steps
    eager.commit(90)
    graph.commit(90)
    same(eager.forward(x[:, 90:93]), graph.forward(x[:, 90:93]))


@pytest.mark.parametrize("capture", [False, True])
def test_tree_forward_keep_and_rollback_equal_the_llama_engine(tiny, capture):
    topo = TreeTopology.full(2, 2)
    x = ids(12, tiny.config.vocab_size)
    tree = ids(topo.size, tiny.config.vocab_size, seed=3)
    eager, graph = LlamaEngine(tiny.model, max_len=64), GraphEngine(tiny.model, max_len=64, capture=capture)
    for engine in (eager, graph):
        engine.forward(x)
        engine.commit(12)
    offsets = torch.tensor([topo.node_depth])
    for _ in range(2):  # the first builds (captures) the shape, the second replays it
        same(*(e.forward(tree, tree_mask=topo.mask, offsets=offsets) for e in (eager, graph)))
    for engine in (eager, graph):
        engine.keep(torch.tensor([12, 13, 16]))  # root, its first child, that child's second child
    step = ids(1, tiny.config.vocab_size, seed=4)
    same(eager.forward(step), graph.forward(step))
    for engine in (eager, graph):
        engine.rollback(13)
    same(eager.forward(step), graph.forward(step))
    assert int(graph.ws.length) == 13 and graph.row_len.tolist() == [13]


def test_levels_written_past_the_committed_length_see_their_ancestors(tiny):
    """A self-draft's levels: each level at its own ``at``, seeing the levels before it through the tree mask."""
    topo = TreeTopology.full(2, 2)
    x, tree = ids(9, tiny.config.vocab_size), ids(topo.size, tiny.config.vocab_size, seed=2)
    eager, graph = both(tiny, max_len=48)
    for engine in (eager, graph):
        engine.forward(x)
        engine.commit(9)
    for d in range(3):
        level = topo.level(d)
        where = {
            "start": 9 + level.start,
            "offsets": torch.full((1, len(level)), d),
            "tree_mask": topo.mask[level.start : level.stop, : level.stop],
        }
        same(*(e.forward(tree[:, level.start : level.stop], **where) for e in (eager, graph)))
    assert {key[3] for key in shapes(graph)} >= {0, 1, 3}


def test_layer_ranges_and_hidden_state_inputs_equal_the_llama_engine(tiny):
    """A self-draft's first layers from tokens, then the verifier's rest from those hidden states."""
    x = ids(9, tiny.config.vocab_size)
    eager, graph = both(tiny, max_len=32)
    graph.ws.steps.clear()
    first = [e.forward(x, layers=range(0, 1)) for e in (eager, graph)]
    assert first[0].logits is None and first[1].logits is None
    same(*first)
    rest = [
        e.forward(hidden_in=f.last_hidden, layers=range(1, e.n_layers))
        for e, f in zip((eager, graph), first, strict=True)
    ]
    same(*rest)
    assert {(key[4], key[5]) for key in shapes(graph)} == {(0, 1), (1, graph.n_layers)}


def test_padded_rows_and_select_rows_equal_the_llama_engine(tiny):
    vocab = tiny.config.vocab_size
    x = ids(7, vocab, rows=3)
    pad = torch.ones(3, 7, dtype=torch.bool)
    pad[1, :3] = False  # row 1 is left-padded
    eager, graph = both(tiny, batch=3, max_len=32)
    same(eager.forward(x, pad_mask=pad), graph.forward(x, pad_mask=pad))
    for engine in (eager, graph):
        engine.commit(7)
        engine.select_rows([2, 1])
    step = ids(1, vocab, seed=5, rows=2)
    for _ in range(2):
        same(eager.forward(step), graph.forward(step))
        eager.commit(1)
        graph.commit(1)
    assert graph.cache.k.data_ptr() == graph.ws.cache.full[0].data_ptr()  # rows moved in place: graphs stay valid
    assert any(key[1] == 2 for key in shapes(graph))


@pytest.mark.parametrize("capture, least", [(False, 1), (True, 1), (True, 8)])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_decode_equals_the_llama_engines_decode(tiny, capture, least, temperature, monkeypatch):
    """``decode``: forward, choice and next input in one step (the graph writes its own input); the same tokens
    as the llama engine's eager decode, greedy and sampled with the same seed; also with every step padded to 8
    tokens (DECODING_LAB_MIN_BUCKET: AR on the verification's kernels)."""
    monkeypatch.setenv("DECODING_LAB_MIN_BUCKET", str(least))
    x = ids(6, tiny.config.vocab_size)
    out = []
    for engine in (LlamaEngine(tiny.model, max_len=40), GraphEngine(tiny.model, max_len=40, capture=capture)):
        sampler = Sampler(SamplingConfig(temperature), make_generator(3, torch.device("cpu")))
        tokens = [engine.decode(sampler, x).item()]
        tokens += [engine.decode(sampler).item() for _ in range(12)]
        assert engine.length == 6 + 12
        out.append(tokens)
    assert out[0] == out[1]


def test_a_workspace_is_held_by_one_engine_at_a_time_and_reused_after(tiny):
    graph._POOL.pop(tiny.model, None)
    a = GraphEngine(tiny.model, max_len=100)
    b = GraphEngine(tiny.model, max_len=100)
    assert a.ws is not b.ws  # both alive: two workspaces
    first = a.ws
    del a
    gc.collect()
    c = GraphEngine(tiny.model, max_len=200)  # the same capacity: the freed workspace, reset
    assert c.ws is first and c.length == 0 and int(c.ws.length) == 0
    assert GraphEngine(tiny.model, max_len=1500).ws is not first  # another capacity, another workspace
    del b, c


def test_the_graph_engine_is_chosen_on_cuda_only(tiny):
    assert engine_class(tiny) is LlamaEngine and type(make_engine(tiny, max_len=8)) is LlamaEngine


@pytest.mark.parametrize("name", ["ar", "rrs", "pld", "bpd", "speed", "sot"])
def test_methods_give_the_same_tokens_on_the_graph_engine_and_a_second_run_captures_nothing(tiny, name, monkeypatch):
    """Every engine a run makes is the graph engine, with the capture flow (``capture=True``, eager on this
    CPU): the answer is the llama engine's; the second run of the same settings builds no step shape (each is
    captured once per model, row count and shape, and reused)."""
    prompt, gen = "Tell me about the sea", GenerationConfig(12)
    options = {"layer": 2} if name in ("rrs", "sot", "speed") else {}
    before = [e for e in METHODS[name].run(tiny, prompt, gen, **options) if isinstance(e, RunFinished)][0]

    class Captured(GraphEngine):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw, capture=True)

    monkeypatch.setattr("core.engine.engine_class", lambda model: Captured)
    graph._POOL.pop(tiny.model, None)  # no workspace of another test's runs
    builds = []
    for _ in range(2):
        count = BUILDS.count
        after = [e for e in METHODS[name].run(tiny, prompt, gen, **options) if isinstance(e, RunFinished)][0]
        builds.append(BUILDS.count - count)
        assert after.output_ids == before.output_ids and len(before.output_ids) >= 12
    assert builds[0] > 0 and builds[1] == 0, builds


@pytest.mark.slow
def test_the_compiled_decode_gives_the_eager_decodes_tokens(tiny):
    """``compiled=True``: the AR step through torch.compile (inductor; on CUDA its own CUDA graph), the
    alternative to the hand-captured graph that the GPU report times; the same tokens as the eager decode. (With
    the plain projections: inductor does not lower the CPU's oneDNN-prepacked ones, which CUDA never uses.)"""
    graph._POOL.pop(tiny.model, None)
    x = ids(6, tiny.config.vocab_size)
    out = []
    for engine in (LlamaEngine(tiny.model, max_len=40), GraphEngine(tiny.model, max_len=40, capture=True, compiled=True, trainable=True)):
        sampler = Sampler(SamplingConfig(0.0), make_generator(3, torch.device("cpu")))
        out.append([engine.decode(sampler, x).item()] + [engine.decode(sampler).item() for _ in range(10)])
    assert out[0] == out[1]
