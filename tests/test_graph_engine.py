"""The graph engine's static forward (static buffers, shape buckets, attention over the whole cache under a
mask) against the llama engine, on the CPU where it runs eagerly; its CUDA capture is checked in test_gpu.py."""

import pytest
import torch

from core.config import GenerationConfig
from core.engine import engine_class, make_engine
from core.engine.graph import BUCKETS, GraphEngine, bucket
from core.engine.llama import LlamaEngine
from core.registry import METHODS
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


def test_buckets_cover_1_to_64_tokens_and_nothing_more():
    assert [bucket(n) for n in (1, 2, 3, 5, 9, 33, 64)] == [1, 2, 4, 8, 16, 64, 64] and bucket(65) is None
    assert BUCKETS == tuple(sorted(BUCKETS))


def test_prefill_and_decode_steps_equal_the_llama_engine(tiny):
    eager, graph = both(tiny, max_len=96)
    x = ids(80, tiny.config.vocab_size)
    for start, stop in [(0, 5), (5, 6), (6, 7), (7, 10), (10, 74), (74, 80)]:  # 64 tokens: the largest bucket
        same(eager.forward(x[:, start:stop]), graph.forward(x[:, start:stop]))
        eager.commit(stop - start)
        graph.commit(stop - start)
    assert {key[1] for key in graph.static} == {1, 4, 8, 64}
    last = eager.forward(x[:, :1], last_only=True), graph.forward(x[:, :1], last_only=True)
    same(*last)


def test_a_longer_prefill_runs_eagerly_on_the_same_cache(tiny):
    eager, graph = both(tiny, max_len=128)
    x = ids(100, tiny.config.vocab_size)
    same(eager.forward(x[:, :90]), graph.forward(x[:, :90]))  # 90 tokens: no bucket
    assert not graph.static
    eager.commit(90)
    graph.commit(90)
    same(eager.forward(x[:, 90:93]), graph.forward(x[:, 90:93]))


def test_tree_forward_keep_and_rollback_equal_the_llama_engine(tiny):
    topo = TreeTopology.full(2, 2)
    x = ids(12, tiny.config.vocab_size)
    tree = ids(topo.size, tiny.config.vocab_size, seed=3)
    eager, graph = both(tiny, max_len=64)
    for engine in (eager, graph):
        engine.forward(x)
        engine.commit(12)
    positions = torch.tensor([topo.node_depth]) + 12
    same(*(e.forward(tree, tree_mask=topo.mask, positions=positions) for e in (eager, graph)))
    for engine in (eager, graph):
        engine.keep([12, 13, 16])  # root, its first child, that child's second child
    step = ids(1, tiny.config.vocab_size, seed=4)
    same(eager.forward(step), graph.forward(step))
    for engine in (eager, graph):
        engine.rollback(13)
    same(eager.forward(step), graph.forward(step))


def test_layer_ranges_and_hidden_state_inputs_equal_the_llama_engine(tiny):
    """A self-draft's first layers from tokens, then the verifier's rest from those hidden states."""
    x = ids(9, tiny.config.vocab_size)
    eager, graph = both(tiny, max_len=32)
    first = [e.forward(x, layers=range(0, 1)) for e in (eager, graph)]
    assert first[0].logits is None and first[1].logits is None
    same(*first)
    rest = [
        e.forward(hidden_in=f.last_hidden, layers=range(1, e.n_layers))
        for e, f in zip((eager, graph), first, strict=True)
    ]
    same(*rest)
    assert {(key[2], key[3]) for key in graph.static} == {(0, 1), (1, graph.n_layers)}


def test_padded_rows_and_select_rows_equal_the_llama_engine(tiny):
    vocab = tiny.config.vocab_size
    x = ids(7, vocab, rows=3)
    pad = torch.ones(3, 7, dtype=torch.bool)
    pad[1, :3] = False  # row 1 is left-padded
    eager, graph = both(tiny, batch=3, max_len=32)
    same(eager.forward(x, pad_mask=pad), graph.forward(x, pad_mask=pad))
    for engine in (eager, graph):
        engine.commit(7)
        engine.select_rows([0, 1])
    assert not graph.static  # buffers and graphs of the old cache are gone
    step = ids(1, vocab, seed=5, rows=2)
    same(eager.forward(step), graph.forward(step))


def test_the_graph_engine_is_chosen_on_cuda_only(tiny):
    assert engine_class(tiny) is LlamaEngine and type(make_engine(tiny, max_len=8)) is LlamaEngine


@pytest.mark.parametrize("name", ["ar", "rrs", "bpd", "sot"])
def test_methods_give_the_same_tokens_on_the_graph_engine(tiny, name, monkeypatch):
    """Every engine a run makes is the graph engine (eager on this CPU): the answer is the llama engine's, and
    the run's forwards went through the static buffers."""
    prompt, gen = "Tell me about the sea", GenerationConfig(12)
    options = {"layer": 2} if name in ("rrs", "sot") else {}
    before = [e for e in METHODS[name].run(tiny, prompt, gen, **options) if isinstance(e, RunFinished)][0]
    static_steps = []
    step = GraphEngine._static_step
    monkeypatch.setattr(GraphEngine, "_static_step", lambda self, *a: static_steps.append(1) or step(self, *a))
    monkeypatch.setattr("core.engine.engine_class", lambda model: GraphEngine)
    after = [e for e in METHODS[name].run(tiny, prompt, gen, **options) if isinstance(e, RunFinished)][0]
    assert after.output_ids == before.output_ids and len(before.output_ids) >= 12
    assert len(static_steps) >= 6
