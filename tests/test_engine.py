"""The engine's logits against transformers' own forward, and its cache operations."""

import pytest
import torch

from core.engine import EngineUnsupported, HFEngine, LlamaEngine, make_engine


def _ids(n, vocab, seed=1):
    return torch.randint(0, vocab, (1, n), generator=torch.Generator().manual_seed(seed))


def _chunked_logits(engine, ids, cuts):
    """Feed ids in chunks [0, c1), [c1, c2), ... then one token at a time; concatenate logits."""
    outs, prev = [], 0
    for cut in [*cuts, *range(cuts[-1] + 1, ids.shape[1] + 1)]:
        outs.append(engine.forward(ids[:, prev:cut]).logits)
        engine.commit(cut - prev)
        prev = cut
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("fixture, atol", [("tiny", 1e-5), pytest.param("embedded", 2e-3, marks=pytest.mark.slow)])
def test_logits_match_transformers_forward(fixture, atol, request):
    model = request.getfixturevalue(fixture)
    ids = _ids(40, model.config.vocab_size)
    with torch.no_grad():
        ref = model.model(ids).logits.float()
    got = _chunked_logits(LlamaEngine(model.model, max_len=64), ids, [17, 30])
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, atol=atol, rtol=0)


def test_make_engine_picks_llama_engine_and_sizes_cache(tiny):
    engine = make_engine(tiny, max_len=50)
    assert isinstance(engine, LlamaEngine) and engine.cache.max_len == 50
    with pytest.raises(ValueError, match="overflow"):
        engine.forward(_ids(51, 100))


def test_rollback_then_rewrite_gives_the_same_logits(tiny):
    ids = _ids(30, tiny.config.vocab_size)
    engine = LlamaEngine(tiny.model, max_len=64)
    engine.forward(ids[:, :20])
    engine.commit(20)
    first = engine.forward(ids[:, 20:30]).logits
    engine.commit(10)
    engine.rollback(20)
    assert engine.length == 20 and int(engine.row_len) == 20
    engine.forward(_ids(10, tiny.config.vocab_size, seed=7))  # junk written past the committed length
    again = engine.forward(ids[:, 20:30]).logits
    torch.testing.assert_close(again, first, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="roll back"):
        engine.rollback(25)


def test_tree_forward_and_keep_match_the_linear_path(tiny):
    """Tree: a and b are siblings after the prefix, c is a's child. Keeping [a, c] must equal decoding a, c."""
    vocab = tiny.config.vocab_size
    prefix, (a, b, c, d) = _ids(12, vocab), (11, 22, 33, 44)
    tree = LlamaEngine(tiny.model, max_len=64)
    tree.forward(prefix)
    tree.commit(12)
    mask = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 1]], dtype=torch.bool)
    offsets = torch.tensor([[0, 0, 1]])  # positions 12, 12, 13
    out = tree.forward(torch.tensor([[a, b, c]]), tree_mask=mask, offsets=offsets).logits

    linear = LlamaEngine(tiny.model, max_len=64)
    linear.forward(prefix)
    linear.commit(12)
    after_a_c = linear.forward(torch.tensor([[a, c]])).logits
    linear.commit(2)
    after_d = linear.forward(torch.tensor([[d]])).logits
    sibling = LlamaEngine(tiny.model, max_len=64)
    sibling.forward(prefix)
    sibling.commit(12)
    after_b = sibling.forward(torch.tensor([[b]])).logits

    torch.testing.assert_close(out[:, [0, 2]], after_a_c, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 1:2], after_b, atol=1e-5, rtol=0)
    tree.keep([12, 14])
    assert tree.length == 14
    torch.testing.assert_close(tree.forward(torch.tensor([[d]])).logits, after_d, atol=1e-5, rtol=0)


def test_layer_ranges_compose_and_hidden_states_match_transformers(tiny):
    ids = _ids(16, tiny.config.vocab_size)
    with torch.no_grad():
        ref = tiny.model(ids, output_hidden_states=True)
    engine = LlamaEngine(tiny.model, max_len=32)
    early = engine.forward(ids, layers=range(0, 2), output_hidden=(1, 2))
    assert early.logits is None
    torch.testing.assert_close(early.hidden[1], ref.hidden_states[1], atol=1e-5, rtol=0)
    late = engine.forward(hidden_in=early.last_hidden, layers=range(2, 4))
    torch.testing.assert_close(late.logits, ref.logits.float(), atol=1e-5, rtol=0)


def test_left_padded_batch_rows_match_single_rows(tiny):
    vocab = tiny.config.vocab_size
    short, long = _ids(5, vocab, seed=2), _ids(9, vocab, seed=3)
    batch = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long])
    pad = batch.new_ones(batch.shape, dtype=torch.bool)
    pad[0, :4] = False
    engine = LlamaEngine(tiny.model, batch=2, max_len=16)
    out = engine.forward(batch, pad_mask=pad).logits
    engine.commit(9)
    nxt = engine.forward(torch.tensor([[5], [6]])).logits
    for row, ids, tok in ((0, short, 5), (1, long, 6)):
        single = LlamaEngine(tiny.model, max_len=16)
        ref = single.forward(ids).logits
        single.commit(ids.shape[1])
        torch.testing.assert_close(out[row, -1], ref[0, -1], atol=1e-5, rtol=0)
        torch.testing.assert_close(nxt[row, -1], single.forward(torch.tensor([[tok]])).logits[0, -1], atol=1e-5, rtol=0)


def test_fallback_engine_matches_and_refuses_trees(tiny):
    ids = _ids(24, tiny.config.vocab_size)
    with torch.no_grad():
        ref = tiny.model(ids).logits.float()
    engine = HFEngine(tiny.model, max_len=64)
    got = _chunked_logits(engine, ids, [10, 20])
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    engine.rollback(20)
    torch.testing.assert_close(engine.forward(ids[:, 20:24]).logits, ref[:, 20:24], atol=1e-5, rtol=0)
    with pytest.raises(EngineUnsupported, match="tree"):
        engine.forward(ids[:, :2], tree_mask=torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(EngineUnsupported, match="all layers"):
        engine.forward(ids[:, :2], layers=range(0, 2))


def test_tree_levels_written_one_at_a_time_see_only_their_ancestors(tiny):
    """Drafting level by level: level 2 must not see level 1's other branch."""
    from core.speculative.tree import TreeTopology

    vocab = tiny.config.vocab_size
    prefix = _ids(8, vocab)
    topo = TreeTopology.full(2, 2)  # 7 nodes: root, 2 children, 4 grandchildren
    tokens = torch.tensor([[5, 11, 12, 21, 22, 23, 24]])
    offsets = torch.tensor([topo.node_depth])
    whole = LlamaEngine(tiny.model, max_len=32)
    whole.forward(prefix)
    whole.commit(8)
    ref = whole.forward(tokens, tree_mask=topo.mask, offsets=offsets).logits
    levels = LlamaEngine(tiny.model, max_len=32)
    levels.forward(prefix)
    levels.commit(8)
    outs = []
    for d in range(3):
        ids = topo.level(d)
        outs.append(
            levels.forward(
                tokens[:, ids.start : ids.stop],
                start=8 + ids.start,
                tree_mask=topo.mask[ids.start : ids.stop, : ids.stop],
                offsets=offsets[:, ids.start : ids.stop],
            ).logits
        )
    torch.testing.assert_close(torch.cat(outs, 1), ref, atol=1e-5, rtol=0)
    assert topo.path(5) == [0, 2, 5] and list(topo.children(1)) == [3, 4] and list(topo.children(4)) == []


def _members(cls) -> dict[str, object]:
    import typing

    from core.engine.base import Engine

    names = set(typing.get_type_hints(Engine)) | {
        n for n, v in vars(Engine).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))
    }
    return {n: getattr(Engine, n, None) for n in sorted(names)}


@pytest.mark.parametrize("cls_name", ["LlamaEngine", "GraphEngine", "HFEngine"])
def test_every_engine_offers_every_member_of_the_protocol_with_its_signature(tiny, cls_name):
    """Each member callers use is in ``Engine``, and every engine has it: methods with the protocol's parameters
    (names, order, kinds), attributes on an instance."""
    import inspect

    from core.engine.graph import GraphEngine

    cls = {"LlamaEngine": LlamaEngine, "GraphEngine": GraphEngine, "HFEngine": HFEngine}[cls_name]
    engine = cls(tiny.model, max_len=16)
    members = _members(cls)
    assert {"forward", "decode", "commit", "rollback", "keep", "logits", "prefill_shared", "select_rows"} <= set(
        members
    )
    assert {"length", "device", "n_layers", "max_len", "uniform", "supports_rows"} <= set(members)
    for name, spec in members.items():
        assert hasattr(engine, name), f"{cls_name} lacks {name}"
        if inspect.isfunction(spec):
            want = [(p.name, p.kind) for p in inspect.signature(spec).parameters.values()]
            got = [(p.name, p.kind) for p in inspect.signature(getattr(cls, name)).parameters.values()]
            assert got == want, f"{cls_name}.{name}{got} is not the protocol's {want}"


def test_the_fallback_engine_decodes_as_the_llama_engine_does(tiny):
    from core.config import SamplingConfig
    from core.sampling import Sampler, make_generator

    prompt = _ids(6, tiny.config.vocab_size)
    out = []
    for engine in (LlamaEngine(tiny.model, max_len=32), HFEngine(tiny.model, max_len=32)):
        sampler = Sampler(SamplingConfig(), make_generator(0, engine.device))
        tokens = [int(engine.decode(sampler, prompt)[0])] + [int(engine.decode(sampler)[0]) for _ in range(5)]
        out.append(tokens)
    assert out[0] == out[1]


def test_a_reused_prefix_is_computed_once_and_continues_exactly_as_a_fresh_one(tiny, monkeypatch):
    """``prefill_shared(reuse=True)``: the first run computes the prefix's K/V, the next copies them (no forward),
    and what follows reads the same logits either way, and the same as a prefix prefilled without reuse."""
    import core.engine.llama as llama

    monkeypatch.setattr(llama, "PREFIXES", type(llama.PREFIXES)())
    computed = []
    real = LlamaEngine._prefix_kv
    monkeypatch.setattr(LlamaEngine, "_prefix_kv", lambda self, *a: computed.append(1) or real(self, *a))
    prefix, rest = _ids(12, tiny.config.vocab_size, seed=4), _ids(3, tiny.config.vocab_size, seed=5)

    def after(reuse: bool) -> torch.Tensor:
        engine = LlamaEngine(tiny.model, max_len=32)
        engine.prefill_shared(prefix, reuse=reuse)
        return engine.forward(rest).logits

    first, second, plain = after(True), after(True), after(False)
    assert len(computed) == 2  # the first reuse and the plain prefill; the second reuse copied
    torch.testing.assert_close(first, second, atol=0, rtol=0)
    torch.testing.assert_close(first, plain, atol=0, rtol=0)
    other = _ids(12, tiny.config.vocab_size, seed=6)
    engine = LlamaEngine(tiny.model, max_len=32)
    engine.prefill_shared(other, reuse=True)  # another prefix is not confused with the kept one
    assert len(computed) == 3 and len(llama.PREFIXES[tiny.model]) == 2
