"""EAGLE: the feature-level draft, the reduced draft vocabulary, dynamic trees, the corpus that trains them."""

import json
import math

import pytest
import torch

import core.eagle.head as feature
import core.heads.vocab as vocab_mod
from core.config import GenerationConfig, SamplingConfig
from core.engine import make_engine
from core.engine.cost import best_size
from core.engine.graph import GraphEngine
from core.engine.kv_cache import AutogradKVCache
from core.engine.llama import LlamaEngine
from core.heads.corpus import (
    CorpusConfig,
    TasksConfig,
    build_corpus,
    extend_with_tasks,
    keep_questions,
    load_corpus,
    save_corpus,
    suite_grams,
    task_rounds,
    topics,
    write_corpus,
)
from core.eagle.head import FeatureHead, load_feature_head, save_feature_head
from core.eagle.training import draft_two_positions, lineage, second_pass_mask
from core.heads.modules import HeadInfo
from core.heads.tasks import first_sentence, task_prompts
from core.heads.vocab import build_vocab, coverage_curve, load_draft_vocab, reduced_projection, smallest_size
from core.metrics import summarize
from core.prompts import load_prompts
from core.registry import METHODS
from core.speculative.copies import ChainRate, graft_chain
from core.eagle import DynamicTree, FeatureDrafter
from core.trace import StepCommitted, TreeStep

PROMPT = "Hello there, how are you"


def run(model, name, prompt, gen, **options):
    return list(METHODS[name].run(model, prompt, gen, **options))


def test_coverage_curve_and_the_smallest_size():
    tokens = [5] * 50 + [7] * 30 + [9] * 15 + [11] * 5
    curve = coverage_curve(tokens, 20, sizes=(1, 2, 3))
    assert curve["order"][:4] == [5, 7, 9, 11] and curve["coverage"] == [0.5, 0.8, 0.95, 1.0]
    assert smallest_size(curve["covered"], 0.95) == 3 and smallest_size(curve["covered"], 0.96) == 4
    built = build_vocab(tokens, 20, 0.8)
    assert built["size"] == 2 and built["ids"] == [5, 7] and built["coverage"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="coverage target"):
        smallest_size(curve["covered"], 1.5)


def test_reduced_projection_is_the_full_head_on_its_tokens_and_minus_infinity_elsewhere(tiny, tiny_vocab):
    vocab = load_draft_vocab(tiny)
    h = torch.randn(1, 3, tiny.config.hidden_size)
    full = make_engine(tiny, max_len=4).logits(h)
    reduced = reduced_projection(tiny, vocab)(h)
    ids = torch.tensor(tiny_vocab)
    assert torch.allclose(reduced[..., ids], full[..., ids], atol=1e-4)
    outside = torch.ones(full.shape[-1], dtype=torch.bool)
    outside[ids] = False
    assert torch.isinf(reduced[..., outside]).all()
    assert torch.softmax(reduced, -1)[..., outside].sum() == 0


@pytest.mark.parametrize(
    "name, options",
    [("eagle", {}), ("eagle", {"topk": 3, "depth": 3, "max_nodes": 8}), ("eagle", {"lookup": 6, "max_nodes": 12})],
)
def test_eagle_is_identical_to_ar_at_temperature_0(tiny, tiny_eagle_head, name, options):
    gen = GenerationConfig(30)
    ar = summarize(run(tiny, "ar", PROMPT, gen)).output_ids
    events = run(tiny, name, PROMPT, gen, **options)
    assert summarize(events).output_ids == ar
    trees = [e for e in events if isinstance(e, TreeStep)]
    assert trees and all(len(t.tokens) <= options.get("max_nodes", 48) for t in trees)
    finished = events[-1].extras
    assert finished["draft_forwards"] > 0 and 0 <= finished["first_token_agreement"] <= 1


@pytest.mark.parametrize("depth", [None, 3])  # None: the eagle draft's default depth, 1
@pytest.mark.parametrize("name", ["spec", "rrs", "rrsw", "spechub"])
def test_rules_accept_the_eagle_draft_and_stay_identical_to_ar(tiny, tiny_eagle_head, tiny_vocab, name, depth):
    gen = GenerationConfig(24)
    ar = summarize(run(tiny, "ar", PROMPT, gen)).output_ids
    events = run(tiny, name, PROMPT, gen, draft="eagle", **({} if depth is None else {"depth": depth}))
    assert summarize(events).output_ids == ar
    trees = [e for e in events if isinstance(e, TreeStep)]
    assert {max(t.depths) for t in trees} <= {depth or 1} and max(max(t.depths) for t in trees) == (depth or 1)
    for tree in trees:
        assert all(t in tiny_vocab for t in tree.tokens[1:])  # drafts come from the reduced vocabulary only


def test_each_draft_source_has_its_own_default_depth(tiny, tiny_eagle_head):
    gen = GenerationConfig(4)
    assert run(tiny, "rrs", PROMPT, gen, draft="eagle")[0].config["depth"] == 1
    assert run(tiny, "rrs", PROMPT, gen)[0].config["depth"] == 4  # the self-draft
    assert run(tiny, "pld", PROMPT, gen)[0].config["depth"] == 6
    with pytest.raises(ValueError, match="Unknown draft source 'psychic'"):
        run(tiny, "rrs", PROMPT, gen, draft="psychic")


def test_sampled_rule_runs_report_each_rules_exact_acceptance(tiny, tiny_eagle_head):
    events = run(tiny, "rrs", PROMPT, GenerationConfig(16, SamplingConfig(1.0, seed=2)), draft="eagle", k=2)
    exact = events[-1].extras["expected_acceptance"]
    assert set(exact) == {"rrs", "rrsw", "spechub"}
    for fig in exact.values():
        assert 0 <= fig["mean"] <= 1 and fig["nodes_by_depth"][0] > 0
    # the same run at T = 0 has no such figures: every rule is greedy
    assert "expected_acceptance" not in run(tiny, "rrs", PROMPT, GenerationConfig(8), draft="eagle")[-1].extras


def test_eagle_samples_with_the_match_rule(tiny, tiny_eagle_head):
    """At T > 0 the dynamic tree (fixed tokens) is verified by match: draw from p, accept the equal child,
    lossless for any fixed draft (its chi-square test is in test_verify.py)."""
    events = run(tiny, "eagle", PROMPT, GenerationConfig(12, SamplingConfig(1.0, seed=4)))
    trees = [e for e in events if isinstance(e, TreeStep)]
    assert trees and {t.rule for t in trees} == {"match"}
    assert len(summarize(events).output_ids) == 12


REPEATS = "one two three four, one two three four, one two three four, one two three"


def test_a_copied_chain_rides_on_the_tree_and_its_accepted_tokens_are_labelled(tiny, tiny_eagle_head):
    """The tiny model's greedy answer to a repetitive prompt repeats itself, so the context holds its next
    tokens: the copied chain is accepted (labelled ``lookup``) and the answer is still AR's."""
    gen = GenerationConfig(40)
    ar = summarize(run(tiny, "ar", REPEATS, gen)).output_ids
    events = run(tiny, "eagle", REPEATS, gen, lookup=8)
    assert summarize(events).output_ids == ar
    extras = events[-1].extras
    sources = [s for e in events if isinstance(e, StepCommitted) for s in e.sources]
    assert extras["copied_tokens_accepted"] >= sources.count("lookup") > 0  # the last step may pass the budget
    assert len(extras["copied_chain_rate"]) == 8 and all(0 < a < 1 for a in extras["copied_chain_rate"])
    deep = [t for t in events if isinstance(t, TreeStep) and max(t.depths) > 2]
    assert deep  # the chain reaches below the head's two levels
    plain = run(tiny, "eagle", REPEATS, gen, lookup=0)
    assert "copied_tokens_accepted" not in plain[-1].extras
    assert summarize(events).forwards < summarize(plain).forwards  # fewer target forwards for the same answer


def test_a_copied_chain_is_verified_by_match_when_sampling(tiny, tiny_eagle_head):
    events = run(tiny, "eagle", REPEATS, GenerationConfig(16, SamplingConfig(1.0, seed=3)), lookup=6)
    assert {t.rule for t in events if isinstance(t, TreeStep)} == {"match"}
    assert len(summarize(events).output_ids) == 16


def test_graft_chain_follows_the_trees_nodes_then_appends():
    parents, tokens, depth, logc = [-1, 0, 0, 1], [9, 5, 6, 7], [0, 1, 1, 2], [0.0, -0.1, -2.0, -3.0]
    added = graft_chain([6, 8, 4], [0.5, 0.3, 0.2], parents, tokens, depth, logc)
    assert added == [4, 5]  # 6 is node 2 already; 8 and 4 hang below it
    assert parents[4:] == [2, 4] and tokens[4:] == [8, 4] and depth[4:] == [2, 3]
    assert logc[2] == pytest.approx(math.log(0.5))  # raised from -2.0 to the chain's confidence
    assert logc[4:] == pytest.approx([math.log(0.3), math.log(0.2)])
    assert graft_chain([5, 7], [0.01, 0.001], parents, tokens, depth, logc) == []
    assert logc[1] == -0.1 and logc[3] == -3.0  # the tree's own, higher confidence is kept


def test_chain_rate_counts_each_position_given_the_ones_before():
    rate = ChainRate(3)
    assert rate.confidence(3) == pytest.approx([1 / 3, 1 / 9, 1 / 27])  # the Beta(1, 2) prior
    rate.update([1, 2, 3], [1, 2, 9, 4])  # right, right, wrong
    rate.update([1, 2], [5])  # wrong at once: position 1 not tried
    assert rate.hits == [2.0, 2.0, 1.0] and rate.tries == [5.0, 4.0, 4.0]
    rate.update([], [7])  # no chain: nothing counted
    assert rate.tries == [5.0, 4.0, 4.0]
    with pytest.raises(ValueError, match="0 to 16 tokens"):
        DynamicTree(lookup=17).check()


def test_best_size_follows_the_verify_cost_curve():
    flat = {"n": [1, 64], "relative": [1.0, 1.0]}
    steep = {"n": [1, 2, 64], "relative": [1.0, 2.0, 64.0]}
    confident = [0.9, 0.8, 0.7, 0.5, 0.3, 0.1]
    assert best_size(confident, 0.2, flat, 48) == 6  # free verification: keep every node
    assert best_size(confident, 0.2, flat, 4) == 3  # the node limit counts the root
    assert best_size(confident, 0.2, steep, 48) == 1  # two tokens for two forwards: (1 + 0.9) / 2.2 > 1 / 1.2
    assert best_size([0.5, 0.4], 0.2, steep, 48) == 0  # (1 + 0.5) / 2.2 < 1 / 1.2: no tree at all
    with pytest.raises(ValueError, match="2 to 64 nodes"):
        DynamicTree(max_nodes=100).check()


def test_the_expansion_drafts_a_fixed_number_of_candidates_with_their_confidences(tiny, tiny_eagle_head):
    """The device's expansion has fixed shapes: 1 + K + (depth - 1) K^2 candidates, each child's log confidence
    its parent's plus log q, and each drafted level's K nodes the most confident of the level before."""
    from core.speculative.drafts import DraftSettings, Root
    from core.speculative.rules import rule

    shape = DynamicTree(depth=3, topk=3, max_nodes=12, lookup=0)
    head, _ = feature.shared_feature_head(tiny)
    drafter = FeatureDrafter(tiny, head, 64, shape)
    ids = [5, 6, 7, 8]
    engine = make_engine(tiny, max_len=64)
    hidden = engine.forward(torch.tensor([ids[:-1]])).last_hidden
    settings = DraftSettings(None, rule("greedy"), SamplingConfig(0.0), torch.Generator())
    root = Root(ids[-1], ids, ids[:-1], hidden, [], settings)
    f_root = drafter._feed(root)
    tokens, parents, depth, logc = drafter._expand(root, f_root).read()
    assert len(tokens) == shape.candidates == 1 + 3 + 2 * 9 and depth == [0] + [1] * 3 + [2] * 9 + [3] * 9
    assert all(logc[n] <= logc[parents[n]] + 1e-6 for n in range(1, len(tokens)))
    level2 = sorted(range(4, 13), key=lambda n: -logc[n])[:3]
    assert {parents[n] for n in range(13, 22)} == set(level2)  # the three most confident were expanded


def test_feature_head_round_trips_and_refuses_another_models_file(tiny, tiny_eagle_head, tmp_path, embedded):
    head, info = load_feature_head(tiny)
    x = torch.randn(1, 2, tiny.config.hidden_size)
    assert torch.allclose(head.fuse(x, x), tiny_eagle_head.fuse(x, x), atol=0.05)  # stored in bfloat16
    with pytest.raises((ValueError, FileNotFoundError)):
        load_feature_head(embedded, feature.feature_head_path(tiny.key))


def test_a_two_layer_head_drafts_through_both_layers_and_stays_identical_to_ar(tiny, tiny_eagle_head):
    """``--layers 2``: the file records the layer count, the draft runs both layers, the answer is AR's."""
    torch.manual_seed(1)
    two = FeatureHead(tiny.model, 2)
    save_feature_head(
        two, HeadInfo("eagle", tiny.key, 2, 1, tiny.config.hidden_size), feature.feature_head_path(tiny.key)
    )
    head, info = load_feature_head(tiny)
    assert info.layer == 2 and len(head.net.model.layers) == 2 and head.layers == range(2)
    gen = GenerationConfig(20)
    events = run(tiny, "eagle", PROMPT, gen)
    assert summarize(events).output_ids == summarize(run(tiny, "ar", PROMPT, gen)).output_ids
    assert FeatureDrafter(tiny, head, 32).name.startswith("EAGLE feature head (2 layers")
    with pytest.raises(ValueError, match="1 to 4 decoder layers, got 5"):
        FeatureHead(tiny.model, 5)


def test_corpus_questions_exclude_the_suite_and_repeats(tiny, tmp_path):
    banned = suite_grams()
    held_out = load_prompts()[4].prompt
    kept, dropped = keep_questions(
        ["1. What is the capital of a country?", "what is the capital of a country", "Hi", held_out], banned
    )
    assert kept == ["What is the capital of a country?"] and dropped == 3
    assert len(topics()) >= 300
    built = build_corpus(tiny, CorpusConfig(topics=2, questions=1, answer_tokens=6, batch=4))
    path = save_corpus(tmp_path / "c.npz", tiny, CorpusConfig(topics=2), built)
    corpus = load_corpus(tiny.key, path)
    assert corpus.seqs == [p + a for p, a in built["seqs"]]
    assert [len(f) for f in built["features"]] == [len(s) - 1 for s in corpus.seqs]
    assert corpus.meta["generated_tokens"] == len(corpus.generated_tokens())


def test_task_prompts_cover_other_kinds_of_request_and_extend_the_corpus(tiny, tmp_path):
    answers = ["Bees make honey from the nectar of flowers in spring and summer. They also pollinate crops."]
    prompts = task_prompts(topics(), answers, 40, seed=3)
    assert prompts == task_prompts(topics(), answers, 40, seed=3)  # deterministic for a seed
    assert any(p.startswith("In Python, write a function") for p in prompts)
    assert sum(" plus " in p or " times " in p for p in prompts) >= 5
    assert any(p.startswith("Write a short poem about") or p.startswith("Write the first lines") for p in prompts)
    assert (
        "Translate this sentence into French: Bees make honey from the nectar of flowers in spring and summer."
        in prompts
    )
    assert first_sentence("1. **Bold** heading: x. Short one. " + answers[0]) == answers[0].split(" They")[0]
    assert first_sentence("Too short. Also short.") is None
    built = build_corpus(tiny, CorpusConfig(topics=2, questions=1, answer_tokens=5, batch=4))
    corpus = load_corpus(tiny.key, save_corpus(tmp_path / "c.npz", tiny, CorpusConfig(topics=2), built))
    before, features = len(corpus.seqs), list(built["features"])
    added = extend_with_tasks(tiny, corpus, TasksConfig(per_kind=2, answer_tokens=4, batch=8), features)
    assert added["prompts"] and not set(added["prompts"]) & {p.prompt for p in load_prompts()}
    assert len(corpus.seqs) == before + len(added["prompts"]) == len(features) == len(corpus.meta["kinds"])
    assert corpus.meta["kinds"][before:] == ["task"] * len(added["prompts"])
    path = write_corpus(tmp_path / "c2.npz", tiny, corpus.seqs, corpus.prompt_lengths, corpus.meta)
    again = load_corpus(tiny.key, path)
    assert again.seqs == corpus.seqs and task_rounds(again.meta)[0]["tokens"] == sum(
        len(s) - n for s, n in zip(again.seqs[before:], again.prompt_lengths[before:], strict=True)
    )
    with pytest.raises(ValueError, match="seed 0"):
        extend_with_tasks(tiny, again, TasksConfig(per_kind=2, answer_tokens=4, batch=8), None)
    second = extend_with_tasks(tiny, again, TasksConfig(per_kind=2, answer_tokens=3, batch=8, seed=1), None)
    assert second["prompts"] and not set(second["prompts"]) & set(added["prompts"])  # no prompt answered twice
    assert [r["seed"] for r in task_rounds(again.meta)] == [0, 1]
    assert task_rounds({"tasks": {"seed": 0, "prompts": []}}) == [{"seed": 0, "prompts": []}]  # a one-round corpus


def test_task_kinds_select_prompts_and_advice_is_multi_part():
    answers = ["Bees make honey from the nectar of flowers in spring and summer. They also pollinate crops."]
    advice = task_prompts(topics(), answers, 12, seed=1, kinds=("advice",))
    assert len(advice) == 12 and all("{" not in p for p in advice)
    assert any(p.startswith("Compare ") for p in advice + task_prompts(topics(), answers, 40, 2, ("advice",)))
    without = task_prompts(topics(), answers, 12, seed=1, kinds=("coding", "math", "writing", "rewriting"))
    assert task_prompts(topics(), answers, 12, seed=1) == without + advice  # advice draws after the others
    with pytest.raises(ValueError, match="Unknown task kinds"):
        task_prompts(topics(), answers, 2, seed=1, kinds=("poetry",))


def test_shipped_draft_assets_record_how_they_were_made():
    blob = json.loads((vocab_mod.VOCAB / "smollm2-135m-instruct.json").read_text())
    assert 0.95 <= blob["coverage"] < 1 and blob["size"] == len(blob["ids"]) < 49152 and "command" in blob
    info = torch.load(feature.HEADS / "smollm2-135m-instruct-eagle.pt", weights_only=True)["info"]
    assert info["kind"] == "eagle" and info["losses"] and info["metrics"]["held_out_top1"] > 0
    assert info["metrics"]["held_out_top1_second"] > 0


def test_bench_pools_exact_acceptance_and_prices_drafts_in_ar_steps():
    from core.bench import summarize_runs

    def run_(method, tokens, wall, extras, forwards=10):
        base = {"id": "p", "category": "c", "output_ids": [1] * tokens, "tokens": tokens, "wall_s": wall}
        base.update(forwards=forwards, mean_accepted=None, acceptance_rate=None, ttft_s=0.1)
        return {**base, "method": method, "depth_reached": [], "depth_accepted": [], "extras": extras}

    exact = {"rrs": {"mean": 0.5, "by_depth": [0.6, 0.2], "nodes_by_depth": [3, 1]}}
    runs = [
        run_("ar", 20, 2.0, {}),  # 0.1 s per ar step
        run_(
            "rrs",
            20,
            1.0,
            {"draft_seconds": 0.2, "verify_seconds": 1.5, "draft_forwards": 4, "expected_acceptance": exact},
        ),
    ]
    out = summarize_runs(runs, ["ar", "rrs"])["rrs"]
    assert out["draft_cost_per_forward"] == pytest.approx(0.5) and out["draft_cost_per_step"] == pytest.approx(0.2)
    assert out["verify_cost_per_step"] == pytest.approx(1.5)
    assert out["expected_acceptance"]["rrs"]["by_depth"] == [pytest.approx(0.6), pytest.approx(0.2)]
    assert (
        out["expected_acceptance"]["rrs"]["mean"] == pytest.approx(0.5)
        and out["expected_acceptance"]["rrs"]["nodes"] == 4
    )
    assert summarize_runs(runs, ["ar", "rrs"])["ar"]["expected_acceptance"] is None


def test_second_pass_mask_sees_the_true_prefix_and_itself():
    assert second_pass_mask(3, "cpu").int().tolist() == [[1, 0, 0, 1, 0], [1, 1, 0, 0, 1]]


def test_training_runs_the_second_draft_position_as_a_tree_node_and_backpropagates_through_both(tiny, tiny_eagle_head):
    """The training-time test's second pass equals what a depth-1 tree node computes when drafting (the pair
    (f^_{i+1}, x_{i+2}) at position i + 1 over the committed pairs 0..i), and autograd runs back through both
    passes over one cache."""
    torch.manual_seed(1)
    H, n = tiny.config.hidden_size, 7
    f, x = torch.randn(2, n, H), torch.randint(0, 500, (2, n))
    embed = tiny.model.model.embed_tokens
    head = tiny_eagle_head.float().requires_grad_(True)
    first, second = draft_two_positions(
        head, LlamaEngine(head.net, batch=2, max_len=2 * n, trainable=True), f, x, embed
    )
    (first.square().mean() + second.square().mean()).backward()
    assert head.fc.weight.grad is not None and head.fc.weight.grad.abs().sum() > 0
    for i in (0, 3, n - 2):
        engine = LlamaEngine(head.net, batch=1, max_len=2 * n)
        with torch.no_grad():
            h = engine.forward(hidden_in=head.fuse(f[1:, : i + 1], embed(x[1:, : i + 1])), layers=range(1))
            engine.commit(i + 1)
            node = head.fuse(h.last_hidden[:, -1:], embed(x[1:, i + 1 : i + 2]))
            out = engine.forward(
                hidden_in=node, layers=range(1), offsets=torch.tensor([[0]]), tree_mask=torch.ones(1, 1).bool()
            ).last_hidden
        torch.testing.assert_close(h.last_hidden[0, -1], first[1, i].detach(), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(out[0, 0], second[1, i].detach(), rtol=1e-4, atol=1e-4)


def test_the_training_cache_refuses_a_gap():
    cache = AutogradKVCache(1, 1, 1, 2, 8, torch.device("cpu"), torch.float32)
    cache.write(0, 0, torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="must be written"):
        cache.write(0, 3, torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, 2))


def test_a_continued_head_records_every_head_it_continued_from():
    fresh = HeadInfo("eagle", "m", 1, 1, 8, "train --steps 1100", metrics={"held_out_top1": 0.32})
    more = HeadInfo("eagle", "m", 1, 1, 8, "train --init a", metrics={"held_out_top1": 0.40, "init": lineage(fresh)})
    assert lineage(more) == {
        "command": "train --init a",
        "held_out_top1": 0.40,
        "init": {"command": "train --steps 1100", "held_out_top1": 0.32},
    }


def test_eagle_gives_the_same_tokens_when_both_engines_are_graph_engines(tiny, tiny_eagle_head, monkeypatch):
    """On CUDA the target and the draft layer both run on ``GraphEngine``; here its static forward runs eagerly
    and must give the llama engine's answer, with the draft's forwards going through the static buffers."""
    gen = GenerationConfig(16)
    before = summarize(run(tiny, "eagle", PROMPT, gen)).output_ids
    hidden_steps = []
    step = GraphEngine._step
    monkeypatch.setattr(
        GraphEngine, "_step", lambda self, x, *a: hidden_steps.append(x.dim() == 3) or step(self, x, *a)
    )

    class Captured(GraphEngine):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw, capture=True)

    monkeypatch.setattr("core.engine.engine_class", lambda model: Captured)
    monkeypatch.setattr("core.eagle.drafter.llama_engine_class", lambda device: Captured)
    assert summarize(run(tiny, "eagle", PROMPT, gen)).output_ids == before
    assert sum(hidden_steps) >= 3 and len(hidden_steps) > sum(hidden_steps)  # draft (hidden) and target (ids)


def test_bench_summary_survives_a_method_with_no_decode_clock():
    """A run of one step (a 4-token skeleton answer) has no decode clock; its speedup is None, not a TypeError
    (the GPU report's dry run broke on it)."""
    from core.bench import summarize_runs

    def run_(method, decode_s):
        base = {"id": "p", "category": "c", "output_ids": [1] * 4, "tokens": 4, "wall_s": 1.0, "forwards": 1}
        base.update(mean_accepted=None, acceptance_rate=None, ttft_s=0.1, decode_s=decode_s, decode_tokens=3)
        return {**base, "method": method, "depth_reached": [], "depth_accepted": [], "extras": {}}

    out = summarize_runs([run_("ar", 0.5), run_("sot", None)], ["ar", "sot"])
    assert out["sot"]["decode_tok_s"] is None and out["sot"]["decode_speedup_vs_ar"] is None
    assert out["ar"]["decode_speedup_vs_ar"] == pytest.approx(1.0)


def test_the_dynamic_trees_size_is_a_function_of_the_settings_and_the_draft_not_a_clock(tiny, tiny_eagle_head):
    """Two runs of the same prompt and settings verify trees of the same sizes, step by step: the draft cost in
    the size rule is the step's draft forwards times a cost from the weights (``forward_cost``), not a timing."""
    from core.eagle.drafter import forward_cost

    cost = forward_cost(tiny, tiny_eagle_head, tiny.model.lm_head.out_features)
    assert 0 < cost < 1
    sizes = []
    for _ in range(2):
        events = run(tiny, "eagle", "Tell me about the sea and the sky", GenerationConfig(16))
        sizes.append([len(e.tokens) for e in events if isinstance(e, TreeStep)])
    assert sizes[0] == sizes[1] and sizes[0]
