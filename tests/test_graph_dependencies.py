"""Skeleton Graph Decoding as a graph (issue 30): the labelled prompts, the worked-example skeleton prompt, the
dependency deciders and their calibration, forwarding shown and measured, bad skeletons, the cheap member."""

import json
import re

import pytest
import torch

from core.config import GenerationConfig, SamplingConfig
from core.metrics import summarize
from core.prompts import load_graph_prompts
from core.registry import METHODS
from core.skeleton.calibrate import implied, part_matcher, score, summarise
from core.skeleton.dependencies import DEFAULT, Literal, Margin, decider_for, from_record
from core.skeleton.format import (
    GRAPH_EXAMPLES,
    parse_or_fallback,
    parse_skeleton,
    skeleton_graph,
    skeleton_prompt,
    waves,
)
from core.skeleton.writer import _Writer, write_skeleton
from core.text import encode_prompt
from core.trace import Forwarded, SkeletonReady, dumps, loads

CHAIN = "1. Set a budget | depends on: none | difficulty: 1\n2. Pick a venue | depends on: 1 | difficulty: 2\n"
CHAIN += "3. Write the invitation | depends on: 2 | difficulty: 2"


def test_the_labelled_prompts_hold_both_kinds_in_both_splits():
    prompts = load_graph_prompts()
    assert len(prompts) >= 30 and len({p.id for p in prompts}) == len(prompts)
    for split in ("tune", "test"):
        mine = load_graph_prompts(split)
        assert {p.kind for p in mine} == {"dependent", "independent"} and all(p.split == split for p in mine)
    assert all(p.edges for p in prompts if p.kind == "dependent")
    assert not {p.prompt for p in load_graph_prompts("tune")} & {p.prompt for p in load_graph_prompts("test")}


def test_a_bad_label_is_refused_naming_the_line(tmp_path):
    bad = tmp_path / "g.jsonl"
    row = {"id": "x", "split": "tune", "kind": "dependent", "prompt": "p", "parts": ["a", "b"], "edges": [[1, 0]]}
    bad.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="line 1: an edge"):
        load_graph_prompts(path=bad)


def test_the_sgd_skeleton_prompt_shows_worked_examples_of_no_labelled_topic():
    prompt = skeleton_prompt("Plan a trip.", graph=True)
    assert "| depends on: 1, 2 | difficulty: 4" in prompt and prompt.endswith("Question: Plan a trip.")
    assert GRAPH_EXAMPLES not in skeleton_prompt("Plan a trip.", graph=True, examples=False)
    assert "depends on" not in skeleton_prompt("Plan a trip.", graph=False)
    for example in GRAPH_EXAMPLES.split("Example. ")[1:]:  # each example parses as it stands
        shown = parse_skeleton("\n".join(line for line in example.splitlines() if re.match(r"\d\.", line)), True)
        assert len(shown.points) in (3, 4) and not shown.warnings
    for p in load_graph_prompts():  # no labelled prompt is on an example's topic
        assert not {"podcast", "cook", "tea", "coffee", "microphone"} & set(re.findall(r"[a-z]+", p.prompt.lower()))


def test_the_margin_decider_keeps_points_over_tau_at_most_three_in_order():
    assert Margin(0.0).choose({1: -1.0, 2: 0.5, 3: 2.0}) == [2, 3]
    assert Margin(-5.0).choose({1: -1.0, 2: 0.5, 3: 2.0, 4: -4.0}) == [1, 2, 3]  # the three largest, in order
    assert Margin(3.0).choose({1: 2.9}) == []


def test_the_decider_comes_from_the_calibration_file(tmp_path):
    path = tmp_path / "deps.json"
    path.write_text(json.dumps({"m": {"chosen": {"name": "margin", "tau": -1.5}}, "n": {"chosen": {"name": "x"}}}))
    assert decider_for("m", path) == Margin(-1.5)
    assert decider_for("unknown", path) == DEFAULT and decider_for("m", tmp_path / "missing.json") == DEFAULT
    path.write_text("{not json")
    assert decider_for("m", path) == DEFAULT
    assert from_record({"name": "instructions"}) == Literal(False) and from_record({"name": "literal"}) == Literal()


def test_option_logprobs_equal_a_full_forward_of_each_option(tiny):
    w = _Writer(tiny, encode_prompt(tiny, "Plan a party.", 0), 64)
    w.force("1. Budget | depends on:")
    got = w.option_logprobs([" none", " 1", " 12"])
    base = list(w.written)
    prompt = encode_prompt(tiny, "Plan a party.", 0)
    for option, value in zip([" none", " 1", " 12"], got, strict=True):
        ids = tiny.tokenizer(option, add_special_tokens=False)["input_ids"]
        seq = torch.tensor([prompt + base + ids])
        logp = torch.log_softmax(tiny.model(seq).logits[0].float(), -1)
        start = len(prompt) + len(base)
        want = sum(float(logp[start - 1 + k, t]) for k, t in enumerate(ids))
        assert value == pytest.approx(want, abs=1e-3)
    assert w.written == base  # nothing was written


@pytest.mark.parametrize("decider", [Literal(True), Literal(False), Margin(-2.0)])
def test_every_decider_writes_a_parsing_skeleton_over_given_titles(tiny, decider):
    sk, forwards = write_skeleton(tiny, "Plan a party.", True, decider, given=["Budget", "Venue", "Invitation"])
    assert [p.title for p in sk.points] == ["Budget", "Venue", "Invitation"] and forwards > 0
    assert not sk.warnings and all(j < i for i, p in enumerate(sk.points) for j in p.depends)


def test_scoring_counts_implied_edges_right_and_waves_per_kind():
    dep, ind = (p for p in load_graph_prompts("tune") if p.id in ("dep-01", "ind-01"))
    assert implied(dep.edges) == {(0, 1), (1, 2), (0, 2)}
    skip = parse_skeleton(CHAIN.replace("depends on: 2", "depends on: 1"), graph=True)  # 0 -> 2 is implied
    row = score(dep, skip)
    assert row["ok"] and row["waves"] == 2 and row["right_edges"] == 2 and row["labelled_found"] == 1
    flat = parse_skeleton(CHAIN.replace("depends on: 1", "depends on: none").replace("on: 2", "on: none"), True)
    assert not score(dep, flat)["ok"] and score(ind, flat)["ok"]
    s = summarise([row, score(ind, flat)])
    assert s["precision"] == 1.0 and s["recall"] == 0.5 and s["dependent_ok"] == s["independent_ok"] == 1.0
    match = part_matcher(["Budget first", "The venue", "Music"], dep.parts)
    assert [match(i) for i in range(3)] == [0, 1, None]


def test_the_calibration_compares_three_deciders_and_stores_the_kept_one(tiny, tmp_path):
    from core.skeleton.calibrate import calibrate, report

    tune = [p for p in load_graph_prompts("tune") if p.id in ("dep-01", "ind-01")]
    test = [p for p in load_graph_prompts("test") if p.id in ("dep-11", "ind-07")]
    record = calibrate(tiny, tune, test, taus=(-2.0, 50.0), log=lambda _: None)
    assert set(record["test"]) == {"instructions", "literal", "margin"} and set(record["tune"]["margin_by_tau"]) == {
        "-2",
        "50",
    }
    assert record["chosen"]["name"] in record["test"] and record["chosen"]["tau"] in (-2.0, 50.0)
    assert record["tune"]["margin_by_tau"]["50"]["dependent_ok"] == 0.0  # no margin is that large: flat
    assert len(record["end_to_end_test"]["per_prompt"]) == 2 and "end to end" in report(tiny.key, record)
    path = tmp_path / "deps.json"
    path.write_text(json.dumps({tiny.key: record}))
    assert decider_for(tiny.key, path) == from_record(record["chosen"])


@pytest.fixture(scope="module")
def forwarded_run(tiny):
    return list(METHODS["sgd"].run(tiny, "Plan a party.", GenerationConfig(24), skeleton=CHAIN, layer=0))


def test_a_dependent_point_is_decoded_with_its_parents_text_and_the_trace_says_which(tiny, forwarded_run):
    sent = [e for e in forwarded_run if isinstance(e, Forwarded)]
    assert [(e.node, e.parents) for e in sent] == [(1, [0]), (2, [1])]
    assert sent[0].texts[0].startswith("1. Set a budget:") and sent[0].tokens > 0
    extras = summarize(forwarded_run).extras
    assert extras["forwarded_tokens"] == sum(e.tokens for e in sent) and extras["edges"] == 2
    assert extras["difficulty"] == [1, 2, 2] and len(extras["members"]) == 3
    assert loads(dumps(forwarded_run)) == forwarded_run
    off = list(METHODS["sgd-noforward"].run(tiny, "Plan a party.", GenerationConfig(24), skeleton=CHAIN, layer=0))
    assert not [e for e in off if isinstance(e, Forwarded)] and summarize(off).extras["forwarded_tokens"] == 0
    ready = next(e for e in off if isinstance(e, SkeletonReady))
    assert ready.waves == [[0], [1], [2]]  # the same waves, without the parents' text


def test_the_dag_view_shows_the_text_each_edge_forwards(forwarded_run):
    from components.explorer import dag_html
    from components.skeleton import dag_figure, forwarded_of, node_states, skeleton_of

    ready = skeleton_of(forwarded_run)
    before = dag_figure(ready, node_states(forwarded_run[:3]), forwarded_of(forwarded_run[:3]))
    after = dag_figure(ready, node_states(forwarded_run), forwarded_of(forwarded_run))
    assert not [t for t in before.data if t.name == "forwarded text (hover)"]
    edges = next(t for t in after.data if t.name == "forwarded text (hover)")
    assert len(edges.x) == 2 and "point 1 -> point 2 forwards:<br>1. Set a budget:" in edges.hovertext[0]
    assert "forwards to point 2: 1. Set a budget:" in dag_html(forwarded_run)


def test_the_bench_sums_waves_edges_and_forwarded_tokens(tiny, tmp_path):
    from core.bench import summarize_runs

    def record(extras):
        return {"method": "sgd", "id": "p", "category": "c", "output_ids": [1], "tokens": 1, "wall_s": 1.0,
                "forwards": 1, "mean_accepted": None, "acceptance_rate": None, "ttft_s": 0.1, "decode_s": None,
                "depth_reached": [], "depth_accepted": [], "extras": extras}  # fmt: skip

    a = {"waves": 3, "edges": 2, "forwarded_tokens": 30, "difficulty": [1, 2, 2], "members": ["cheap", "full", "full"]}
    b = {"waves": 1, "edges": 0, "forwarded_tokens": 0, "difficulty": [1], "members": ["cheap"]}
    out = summarize_runs([record(a), record(b)], ["sgd"])["sgd"]
    assert out["waves_total"] == 4 and out["edges_total"] == 2 and out["forwarded_tokens_total"] == 30
    assert out["prompts_in_2plus_waves"] == 1 and out["difficulty_to_member"] == {"1": {"cheap": 2}, "2": {"full": 2}}


def test_a_skeleton_of_prose_or_nothing_is_one_wave_with_a_note():
    sk = parse_or_fallback("Costs matter.\n\n**Flexibility** too", graph=True)
    assert [p.title for p in sk.points] == ["Costs matter.", "Flexibility too"] and "one wave" in sk.warnings[0]
    assert [p.title for p in parse_or_fallback("  ", graph=False).points] == ["Answer"]


@pytest.mark.slow
def test_sgd_on_the_embedded_model_makes_a_graph_of_dependent_parts_only(embedded):
    """The shipped calibration at work, as SGD runs (the model writes its own points): two dependent prompts of
    the test split decode in waves, an independent one in a single wave; the points are SoT's (SGD's first pass
    writes them after SoT's prompt, where no worked example can be copied)."""
    assert decider_for(embedded.key) == Margin(-1.0)
    chosen = {p.id: p for p in load_graph_prompts("test")}
    for pid, many in (("dep-13", True), ("dep-18", True), ("ind-09", False)):
        sk, _ = write_skeleton(embedded, chosen[pid].prompt, True)
        n_waves = len(waves(skeleton_graph(sk)))
        assert (n_waves >= 2) if many else (n_waves == 1), (pid, sk.text)
        sot, _ = write_skeleton(embedded, chosen[pid].prompt, False)
        assert [p.title for p in sk.points] == [p.title for p in sot.points]


def eight_grams(ids: list[int]) -> set[tuple[int, ...]]:
    return {tuple(ids[i : i + 8]) for i in range(len(ids) - 7)}


def quotes(model, grams: set[tuple[int, ...]]) -> list[str]:
    """The 8-token runs that read as text (at least four words): a loop of digits or symbols ("100 * 100 *")
    is repetition, which the repetition proxy measures, not a quote."""
    texts = [model.tokenizer.decode(list(g)) for g in grams]
    return [t for t in texts if len(re.findall(r"[A-Za-z]{2,}", t)) >= 4]


@pytest.mark.slow
def test_no_skeleton_answer_quotes_the_cheap_members_training_text(embedded):
    """SGD's cheap member (its first layers and an exit head) was trained on the suite's 42 prompts and wrote
    their text into other answers (a bakery's risks talked of renting a home). Trained on the broad corpus, no
    sot or sgd answer, nor the cheap member's own continuation, repeats an 8-token run of its training text that
    is not in the prompt."""
    from core.heads.corpus import corpus_sample, load_corpus
    from core.heads.modules import exit_head_path
    from core.skeleton.pool import CHEAP_LAYER, make_pool
    from core.engine.rows import decode_rows

    info = torch.load(exit_head_path(embedded.key, CHEAP_LAYER), weights_only=True)["info"]
    assert info["metrics"]["data"] == "corpus"
    corpus = load_corpus(embedded.key)
    seen = set()
    for i in corpus_sample(corpus, info["metrics"]["corpus_sequences"]):
        seen |= eight_grams(corpus.seqs[i][corpus.prompt_lengths[i] :])
    # one labelled dependent question of the test split, and the bakery whose answer used to quote renting a home
    questions = [p.prompt for p in load_graph_prompts("test") if p.id == "dep-15"]
    questions.append("What are the main risks of opening a bakery? Cover money, staff and competition.")
    for q in questions:
        own = eight_grams(embedded.tokenizer(q, add_special_tokens=False)["input_ids"])
        for name in ("sot", "sgd"):
            with_member = {"layer": CHEAP_LAYER} if name == "sgd" else {}  # sgd's default pool is the full model
            events = list(METHODS[name].run(embedded, q, GenerationConfig(96), **with_member))
            quoted = quotes(embedded, (eight_grams(summarize(events).output_ids) & seen) - own)
            assert not quoted, (name, q, quoted)
        cheap = make_pool(embedded, [], CHEAP_LAYER)[0][0]  # the member alone, where it would run
        ids = encode_prompt(embedded, q, 48, answer_prefix="1. Costs:")
        out = [s[0].token for s in decode_rows(cheap, [ids], [48], SamplingConfig(0.0), torch.Generator())]
        quoted = quotes(embedded, (eight_grams(out) & seen) - eight_grams(ids))
        assert not quoted, ("cheap member", q, quoted)
